#!/usr/bin/env bash
# The local stack's shell functions do what they promise when things go
# wrong: apt failing leaves no init policy behind, a pid file whose pid now
# belongs to another program does not get that program killed, Garage is
# installed at its pinned version, and a benchmark's npm peer is installed at
# the version asked for.
#
# apt-get, cargo and npm are stand-ins on PATH that record what they were
# asked and fail or succeed as each case needs; the functions under test are
# the real ones from deploy/local/lib.sh.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
tmp="$(mktemp -d)"
children=()
cleanup() {
  for pid in "${children[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
mkdir -p "$tmp/bin" "$tmp/home"
export KILN_RUN_DIR="$tmp/run" KILN_STATE_DIR="$tmp/state" KILN_POLICY_RC_D="$tmp/policy-rc.d"
export PATH="$tmp/bin:$PATH"
# shellcheck disable=SC1091
. "$root/deploy/local/lib.sh"
set +e
fail() { echo "FAIL: $*" >&2; exit 1; }

# 1. apt-get install fails: the policy file this stack wrote is gone, and the
#    failure is reported.
cat >"$tmp/bin/apt-get" <<'EOT'
#!/bin/sh
[ "$1" = update ] && exit 0
[ -x "$KILN_POLICY_RC_D" ] || { echo "policy missing while apt ran" >&2; exit 3; }
exit 100
EOT
cat >"$tmp/bin/dpkg-query" <<'EOT'
#!/bin/sh
exit 1
EOT
chmod +x "$tmp/bin/apt-get" "$tmp/bin/dpkg-query"
(set -e; apt_install some-package) 2>/dev/null
status=$?
[ "$status" -ne 0 ] || fail "a failed apt-get install was reported as success"
[ ! -e "$KILN_POLICY_RC_D" ] || fail "policy-rc.d left behind after apt-get failed"
#    A policy the machine already had is left as it was.
echo '#!/bin/sh' >"$KILN_POLICY_RC_D"
(set -e; apt_install some-package) 2>/dev/null
[ -f "$KILN_POLICY_RC_D" ] || fail "the machine's own policy-rc.d was removed"
rm -f "$KILN_POLICY_RC_D"
echo "apt_install: no policy-rc.d left behind when apt fails"

# 2. A pid file names a pid that now belongs to another program: it lives.
sleep 300 &
children+=($!)
other=$!
mkdir -p "$KILN_RUN_DIR"
echo "$other" >"$KILN_RUN_DIR/api.pid"
stop_pidfile "$KILN_RUN_DIR/api.pid" kiln-api 2>/dev/null
kill -0 "$other" 2>/dev/null || fail "stop_pidfile killed pid $other, which is not kiln-api"
[ ! -e "$KILN_RUN_DIR/api.pid" ] || fail "the stale pid file was kept"
#    The program it names is stopped.
cp "$(type -P sleep)" "$tmp/bin/kiln-api"
"$tmp/bin/kiln-api" 300 &
children+=($!)
ours=$!
echo "$ours" >"$KILN_RUN_DIR/api.pid"
stop_pidfile "$KILN_RUN_DIR/api.pid" kiln-api 2>/dev/null
wait "$ours" 2>/dev/null
kill -0 "$ours" 2>/dev/null && fail "stop_pidfile left kiln-api (pid $ours) running"
echo "stop_pidfile: signals only the program it started"

# 3. Garage is built at the pinned version.
cat >"$tmp/bin/cargo" <<'EOT'
#!/bin/sh
echo "$*" >>"$KILN_TEST_CARGO"
mkdir -p "$HOME/.cargo/bin"
printf '#!/bin/sh\necho "garage cargo:%s [features: k2v]"\n' "$GARAGE_VERSION" >"$HOME/.cargo/bin/garage"
chmod +x "$HOME/.cargo/bin/garage"
EOT
chmod +x "$tmp/bin/cargo"
export GARAGE_VERSION
bin="$(HOME="$tmp/home" KILN_TEST_CARGO="$tmp/cargo.log" PATH="$tmp/bin:/usr/bin:/bin" garage_bin 2>"$tmp/garage.err")"
[ "$bin" = "$tmp/home/.cargo/bin/garage" ] || fail "garage_bin printed '$bin'"
grep -q -- "install garage --version =$GARAGE_VERSION --locked" "$tmp/cargo.log" \
  || fail "Garage was not installed at its pinned version: $(cat "$tmp/cargo.log")"
check_garage_version "$bin" 2>"$tmp/garage.err"
grep -q warning "$tmp/garage.err" && fail "the pinned Garage was reported as another version"
printf '#!/bin/sh\necho "garage cargo:2.4.1"\n' >"$tmp/bin/old-garage"
chmod +x "$tmp/bin/old-garage"
check_garage_version "$tmp/bin/old-garage" 2>"$tmp/garage.err"
grep -q "warning" "$tmp/garage.err" || fail "Garage 2.4.1 was taken for $GARAGE_VERSION"
echo "garage_bin: installs Garage $GARAGE_VERSION"

# 4. npm peers at the version asked for, scoped names included.
cat >"$tmp/bin/npm" <<'EOT'
#!/bin/sh
[ "$1" = init ] && { echo '{}' >package.json; exit 0; }
spec="$(for a in "$@"; do :; done; echo "$a")"
case "$spec" in
  @*) name="@${spec#@}"; name="${name%@*}"; version="${spec##*@}" ;;
  *) name="${spec%@*}"; version="${spec##*@}" ;;
esac
[ "$version" = "$spec" ] && version=9.9.9
echo "$spec" >>"$KILN_TEST_NPM"
mkdir -p "node_modules/$name"
printf '{"name":"%s","version":"%s"}\n' "$name" "$version" >"node_modules/$name/package.json"
EOT
chmod +x "$tmp/bin/npm"
export KILN_TEST_NPM="$tmp/npm.log" BENCH_NODE_HOME="$tmp/node"
mkdir -p "$BENCH_NODE_HOME/node_modules/sharp"
echo '{"name":"sharp","version":"0.33.1"}' >"$BENCH_NODE_HOME/node_modules/sharp/package.json"
ensure_node_package sharp@0.34.5 >/dev/null 2>&1
grep -qx "sharp@0.34.5" "$KILN_TEST_NPM" 2>/dev/null || fail "sharp 0.33.1 was kept when 0.34.5 was asked for"
: >"$KILN_TEST_NPM"
ensure_node_package sharp@0.34 >/dev/null 2>&1
[ ! -s "$KILN_TEST_NPM" ] || fail "sharp 0.34.5 was reinstalled for sharp@0.34"
ensure_node_package @imgproxy/imgproxy-node@1.0.6 >/dev/null 2>&1
[ -f "$BENCH_NODE_HOME/node_modules/@imgproxy/imgproxy-node/package.json" ] \
  || fail "a scoped package was not installed"
: >"$KILN_TEST_NPM"
out="$(ensure_node_package @imgproxy/imgproxy-node@1.0.6 2>/dev/null)"
[ ! -s "$KILN_TEST_NPM" ] || fail "a scoped package at its version was reinstalled"
[ "$out" = "$BENCH_NODE_HOME/node_modules" ] || fail "ensure_node_package printed '$out'"
echo "ensure_node_package: installs the version asked for"
