#!/usr/bin/env bash
# The local stack writes its secrets (.kiln/local.env, Garage's secrets and
# configuration) private from the first byte: each file is already mode 600
# when its contents are written, whatever the caller's umask, never
# readable by others for a moment before a chmod.
#
# A stand-in `cat` on PATH records the mode of the file it is writing to
# (its standard output) before writing; the real write_local_env and
# write_garage_config run under umask 022.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin"
cat >"$tmp/bin/cat" <<'EOT'
#!/bin/sh
exec 3>&1
[ -f /proc/self/fd/3 ] && stat -L -c '%a %n' /proc/self/fd/3 >>"$KILN_TEST_MODES"
exec /bin/cat "$@"
EOT
chmod +x "$tmp/bin/cat"
export KILN_TEST_MODES="$tmp/modes" KILN_RUN_DIR="$tmp/run" KILN_STATE_DIR="$tmp/state"
export PATH="$tmp/bin:$PATH"
umask 022
# shellcheck disable=SC1091
. "$root/deploy/local/lib.sh"
export KILN_DATABASE_URL=postgres://x KILN_AMQP_URL=amqp://x KILN_S3_ENDPOINT=http://x \
  KILN_S3_ACCESS_KEY_ID=x KILN_S3_SECRET_ACCESS_KEY=x
write_garage_config
write_local_env
files="$(wc -l <"$KILN_TEST_MODES")"
[ "$files" -ge 3 ] || { echo "expected 3 secret files written, saw $files" >&2; exit 1; }
if grep -qv '^600 ' "$KILN_TEST_MODES"; then
  echo "a secret file was readable by others while it was written:" >&2
  cat "$KILN_TEST_MODES" >&2
  exit 1
fi
echo "local stack secrets are written private ($files files)"
