# Shared functions for Kiln's local stack scripts (sourced, not run).
#
# Machine-wide state (Garage's data and the S3 key) lives in $KILN_STATE_DIR so
# every checkout on this machine shares one Garage; per-checkout configuration
# goes to .kiln/local.env. Where PostgreSQL or RabbitMQ already answer on their
# usual ports (or KILN_DATABASE_URL / KILN_AMQP_URL are set), they are used as-is.

set -euo pipefail

KILN_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
KILN_STATE_DIR="${KILN_STATE_DIR:-$HOME/.local/share/kiln}"
KILN_RUN_DIR="${KILN_RUN_DIR:-$KILN_ROOT/.kiln}"
KILN_ENV="$KILN_RUN_DIR/local.env"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kiln-target}"
GARAGE_DIR="$KILN_STATE_DIR/garage"
GARAGE_CONF="$GARAGE_DIR/garage.toml"
GARAGE_S3_PORT="${KILN_GARAGE_S3_PORT:-3900}"
GARAGE_RPC_PORT="${KILN_GARAGE_RPC_PORT:-3901}"
GARAGE_ADMIN_PORT="${KILN_GARAGE_ADMIN_PORT:-3903}"

log() { printf '\033[1;34m[kiln]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[kiln] %s\033[0m\n' "$*" >&2; exit 1; }
warn() { printf '\033[1;33m[kiln] %s\033[0m\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_port() { # host port seconds what
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    port_open "$1" "$2" && return 0
    sleep 0.1
  done
  die "$4 did not come up on $1:$2 within $3 s"
}

# Whether PID is a running process whose executable is called NAME. A pid
# file outlives its process, and the kernel reuses pids: a pid that now
# belongs to something else must never be signalled.
pid_is() { # pid name
  [ -n "$1" ] && [ -r "/proc/$1/comm" ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "${2:0:15}" ]
}

# Stops the process whose pid FILE holds, if it is still the program NAME
# (SIGTERM, then SIGKILL after 10 s), waits for it to exit, and removes FILE.
stop_pidfile() { # file name
  [ -f "$1" ] || return 0
  local pid; pid="$(cat "$1")"
  if pid_is "$pid" "$2"; then
    log "stopping $2 (pid $pid)"
    kill -TERM "$pid"
    for _ in $(seq 1 100); do pid_is "$pid" "$2" || break; sleep 0.1; done
    pid_is "$pid" "$2" && kill -KILL "$pid" 2>/dev/null
  elif [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    log "pid $pid in $1 now belongs to $(cat "/proc/$pid/comm" 2>/dev/null || echo another program), not $2: left alone"
  fi
  rm -f "$1"
}

random_hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# Where package scripts look for the init policy (a test points it elsewhere).
POLICY_RC_D="${KILN_POLICY_RC_D:-/usr/sbin/policy-rc.d}"

apt_install() { # packages...
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >/dev/null
  # No init system here: package scripts that try to start services are told
  # not to. The policy is ours only while apt runs: removed however apt ends
  # (a subshell's EXIT trap), and one the machine already had is kept.
  (
    if [ ! -e "$POLICY_RC_D" ]; then
      trap '$sudo rm -f "$POLICY_RC_D"' EXIT
      printf '#!/bin/sh\nexit 101\n' | $sudo tee "$POLICY_RC_D" >/dev/null
      $sudo chmod +x "$POLICY_RC_D"
    fi
    $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  )
}

ensure_packages() {
  # cmake and nasm build libjpeg-turbo (SIMD) for the image pipeline.
  local pkgs=(ca-certificates curl jq cmake nasm procps)
  [ -n "${KILN_DATABASE_URL:-}" ] || port_open 127.0.0.1 5432 || pkgs+=(postgresql postgresql-client)
  [ -n "${KILN_AMQP_URL:-}" ] || port_open 127.0.0.1 5672 || pkgs+=(rabbitmq-server)
  # Headless Chromium and fonts for social cards.
  pkgs+=(chromium fonts-noto-color-emoji fonts-dejavu-core)
  apt_install "${pkgs[@]}"
}

ensure_postgres() {
  if [ -n "${KILN_DATABASE_URL:-}" ]; then
    log "using PostgreSQL at KILN_DATABASE_URL"
    return 0
  fi
  if ! port_open 127.0.0.1 5432; then
    local version
    version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)"
    [ -n "$version" ] || die "PostgreSQL is not installed and nothing listens on 127.0.0.1:5432"
    log "starting PostgreSQL $version"
    pg_ctlcluster "$version" main start
    mkdir -p "$KILN_STATE_DIR" && touch "$KILN_STATE_DIR/started-postgres"
    wait_port 127.0.0.1 5432 30 PostgreSQL
  fi
  # Role and database, idempotently (needs local superuser access; skipped otherwise).
  if id postgres >/dev/null 2>&1; then
    local psql=(runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -d postgres)
    [ "$(id -u)" -eq 0 ] || psql=(sudo -u postgres psql -q -v ON_ERROR_STOP=1 -d postgres)
    "${psql[@]}" -c "DO \$\$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'kiln') THEN
          CREATE ROLE kiln LOGIN PASSWORD 'kiln' CREATEDB;
        END IF; END \$\$;" >/dev/null
    "${psql[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname = 'kiln'" | grep -q 1 \
      || "${psql[@]}" -c "CREATE DATABASE kiln OWNER kiln" >/dev/null
  fi
  export KILN_DATABASE_URL="postgres://kiln:kiln@127.0.0.1:5432/kiln"
}

# The node Kiln starts is named rabbit@localhost, so it boots whatever the
# machine's hostname is (Erlang refuses to start when the short hostname does
# not resolve) and keeps its own data directory.
export RABBITMQ_NODENAME="${RABBITMQ_NODENAME:-rabbit@localhost}"

# The open-file limit to give a service: `want`, or the hard limit when lower.
descriptor_limit() {
  local want="$1" hard
  hard="$(ulimit -Hn)"
  if [ "$hard" = unlimited ] || ((hard >= want)); then echo "$want"; else echo "$hard"; fi
}

rabbitmq_log_tail() {
  local log="/var/log/rabbitmq/$RABBITMQ_NODENAME.log"
  [ -f "$log" ] && tail -n 40 "$log" >&2
  return 0
}

start_rabbitmq_node() {
  # RabbitMQ wants a descriptor per queue while it recovers them: raise the
  # common default of 1024 where the hard limit allows.
  (ulimit -n "$(descriptor_limit 65536)" 2>/dev/null; rabbitmq-server -detached >/dev/null 2>&1) || true
}

# Waits up to $1 seconds for the broker's AMQP port; dies at once, with its
# log, when the node exits while starting.
wait_rabbitmq() {
  local i
  for ((i = 0; i < $1 * 10; i++)); do
    port_open 127.0.0.1 5672 && return 0
    if ((i % 50 == 49)) && ! pgrep -f "beam.*rabbit" >/dev/null; then
      rabbitmq_log_tail
      die "RabbitMQ ($RABBITMQ_NODENAME) exited while starting; its log is above"
    fi
    sleep 0.1
  done
  return 1
}

ensure_rabbitmq() {
  if [ -n "${KILN_AMQP_URL:-}" ]; then
    log "using RabbitMQ at KILN_AMQP_URL"
    return 0
  fi
  if ! port_open 127.0.0.1 5672; then
    log "starting RabbitMQ ($RABBITMQ_NODENAME)"
    start_rabbitmq_node
    mkdir -p "$KILN_STATE_DIR" && touch "$KILN_STATE_DIR/started-rabbitmq"
    # Boot takes 5-20 s. After an unclean stop with a thousand durable
    # queues, RabbitMQ 4.1 can wait at its vhost recovery barrier for good
    # (seen: 1200 queues, 400 s and counting, idle). The stack's own node
    # then has its data set aside, never deleted, and starts empty: workers
    # declare their queues again on start.
    if ! wait_rabbitmq 150; then
      local data="${RABBITMQ_MNESIA_BASE:-/var/lib/rabbitmq/mnesia}/$RABBITMQ_NODENAME"
      rabbitmq_log_tail
      [ "$RABBITMQ_NODENAME" = rabbit@localhost ] && [ -d "$data" ] ||
        die "RabbitMQ did not come up on 127.0.0.1:5672 within 150 s"
      local aside
      aside="$data.stale-$(date +%Y%m%d-%H%M%S)"
      warn "RabbitMQ is still recovering after 150 s; its data is set aside in $aside and it starts empty"
      # Only the node started here, by its own pid file: never another
      # broker that happens to run on this machine.
      [ -f "$data.pid" ] || die "RabbitMQ is stuck starting and $data.pid is missing: stop it by hand"
      kill -9 "$(cat "$data.pid")" 2>/dev/null || true
      sleep 1
      mv "$data" "$aside"
      start_rabbitmq_node
      wait_rabbitmq 150 || { rabbitmq_log_tail; die "RabbitMQ did not come up on 127.0.0.1:5672 within 150 s of a fresh start"; }
    fi
  fi
  export KILN_AMQP_URL="amqp://guest:guest@127.0.0.1:5672/%2f"
}

# A test run declares its queues in a vhost of its own, created empty here
# and deleted when the run ends: queues of failed or killed tests never pile
# up in the broker (a thousand of them made its next boot stall).
TEST_VHOST=kiln-test

use_test_vhost() {
  # A broker this stack did not start (another node name, another user's
  # cookie) may not take rabbitmqctl from here: the tests then use the
  # default vhost, and each deletes its queues when it passes.
  rabbitmqctl -q delete_vhost "$TEST_VHOST" >/dev/null 2>&1 || true
  if rabbitmqctl -q add_vhost "$TEST_VHOST" >/dev/null 2>&1 &&
    rabbitmqctl -q set_permissions -p "$TEST_VHOST" guest '.*' '.*' '.*' >/dev/null 2>&1; then
    export KILN_AMQP_URL="amqp://guest:guest@127.0.0.1:5672/$TEST_VHOST"
  else
    log "rabbitmqctl cannot reach $RABBITMQ_NODENAME: tests use the default vhost"
  fi
}

drop_test_vhost() {
  rabbitmqctl -q delete_vhost "$TEST_VHOST" >/dev/null 2>&1 || true
}

# The Garage release the local stack runs (its admin API v2 is what
# ensure_garage talks to). An installed garage of another version is used
# with a warning; none at all is built, once, at this version.
GARAGE_VERSION="${KILN_GARAGE_VERSION:-2.5.0}"

garage_bin() {
  local bin=""
  if type -P garage >/dev/null; then bin="$(type -P garage)"
  elif [ -x "$HOME/.cargo/bin/garage" ]; then bin="$HOME/.cargo/bin/garage"
  else
    log "building Garage $GARAGE_VERSION (cargo install garage --locked; about 10 minutes on 2 cores, once)"
    cargo install garage --version "=$GARAGE_VERSION" --locked --quiet >&2
    bin="$HOME/.cargo/bin/garage"
  fi
  echo "$bin"
}

# Says so when the garage found is another release than the one pinned.
check_garage_version() { # binary
  local version
  version="$("$1" --version 2>/dev/null | head -n1)"
  # `garage v2.5.0 [...]` from a release, `garage cargo:2.5.0 [...]` from cargo install.
  [[ "$version" =~ (^|[^0-9.])"$GARAGE_VERSION"([^0-9.]|$) ]] \
    || log "warning: $1 is not Garage $GARAGE_VERSION ($version)"
}

# Garage's admin API (JSON), authenticated with this stack's admin token.
garage_admin() { # endpoint
  curl -fsS --max-time 5 -H "Authorization: Bearer $GARAGE_ADMIN_TOKEN" \
    "http://127.0.0.1:$GARAGE_ADMIN_PORT/v2/$1"
}

garage_cli() { "$(garage_bin)" -c "$GARAGE_CONF" "$@"; }

write_garage_config() {
  mkdir -p "$GARAGE_DIR/meta" "$GARAGE_DIR/data"
  # Secrets are created private, never readable for a moment before a chmod.
  [ -f "$GARAGE_DIR/secrets.env" ] || (umask 077 && cat >"$GARAGE_DIR/secrets.env") <<EOT
GARAGE_RPC_SECRET=$(random_hex 32)
GARAGE_ADMIN_TOKEN=$(random_hex 32)
KILN_S3_ACCESS_KEY_ID=GK$(random_hex 12)
KILN_S3_SECRET_ACCESS_KEY=$(random_hex 32)
EOT
  chmod 600 "$GARAGE_DIR/secrets.env"
  # shellcheck disable=SC1091
  . "$GARAGE_DIR/secrets.env"
  (umask 077 && cat >"$GARAGE_CONF") <<EOT
metadata_dir = "$GARAGE_DIR/meta"
data_dir = "$GARAGE_DIR/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$GARAGE_RPC_PORT"
rpc_public_addr = "127.0.0.1:$GARAGE_RPC_PORT"
rpc_secret = "$GARAGE_RPC_SECRET"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$GARAGE_S3_PORT"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$GARAGE_ADMIN_PORT"
admin_token = "$GARAGE_ADMIN_TOKEN"
EOT
  chmod 600 "$GARAGE_CONF"
}

ensure_garage() {
  write_garage_config
  if ! port_open 127.0.0.1 "$GARAGE_S3_PORT"; then
    log "starting Garage"
    local bin
    bin="$(garage_bin)"
    check_garage_version "$bin"
    nohup "$bin" -c "$GARAGE_CONF" server >"$GARAGE_DIR/garage.log" 2>&1 &
    echo $! >"$GARAGE_DIR/garage.pid"
    wait_port 127.0.0.1 "$GARAGE_S3_PORT" 30 Garage
  fi
  # Single-node layout, applied once (read from the admin API's JSON, not
  # from the CLI's text).
  local status="" node
  for _ in $(seq 1 50); do
    status="$(garage_admin GetClusterStatus 2>/dev/null || true)"
    [ -n "$status" ] && break
    sleep 0.2
  done
  node="$(jq -r '.nodes[0].id // empty' <<<"$status")"
  [ -n "$node" ] || die "Garage does not report its node id (see $GARAGE_DIR/garage.log)"
  if [ "$(jq '[.nodes[] | select(.role != null)] | length' <<<"$status")" = 0 ]; then
    garage_cli layout assign -z local -c 10G "$node" >/dev/null
    garage_cli layout apply --version "$(($(jq '.layoutVersion' <<<"$status") + 1))" >/dev/null
  fi
  garage_cli key info "$KILN_S3_ACCESS_KEY_ID" >/dev/null 2>&1 \
    || garage_cli key import --yes -n kiln "$KILN_S3_ACCESS_KEY_ID" "$KILN_S3_SECRET_ACCESS_KEY" >/dev/null
  local bucket
  for bucket in kiln-originals kiln-cache; do
    garage_cli bucket info "$bucket" >/dev/null 2>&1 || garage_cli bucket create "$bucket" >/dev/null
    garage_cli bucket allow --read --write --owner "$bucket" --key "$KILN_S3_ACCESS_KEY_ID" >/dev/null
  done
  export KILN_S3_ENDPOINT="http://127.0.0.1:$GARAGE_S3_PORT" KILN_S3_ACCESS_KEY_ID KILN_S3_SECRET_ACCESS_KEY
}

# Benchmarks' Node.js peers live in one directory outside the clone.
BENCH_NODE_HOME="${KILN_BENCH_NODE_HOME:-${KILN_SHARP_HOME:-$HOME/.cache/kiln-bench}}"

# Installs an npm package for a test or benchmark peer at the version asked
# for (name@version; a partial version such as sharp@0.34 means 0.34.x; a
# bare name, any), replacing another version found there; prints the
# node_modules directory.
ensure_node_package() { # name@version
  command -v npm >/dev/null || apt_install nodejs npm
  local name="$1" version=""
  # The version follows the last '@' that is not a scope's leading one.
  if [[ "$1" == ?*@* ]]; then name="${1%@*}"; version="${1##*@}"; fi
  local manifest="$BENCH_NODE_HOME/node_modules/$name/package.json" installed=""
  [ -f "$manifest" ] && installed="$(jq -r '.version // empty' "$manifest")"
  if [ -z "$installed" ] || { [ -n "$version" ] && [ "$installed" != "$version" ] \
    && [[ "$installed" != "$version".* ]]; }; then
    log "installing $1 into $BENCH_NODE_HOME${installed:+ (had $installed)}" >&2
    mkdir -p "$BENCH_NODE_HOME"
    (cd "$BENCH_NODE_HOME" && { [ -f package.json ] || npm init -y >/dev/null; } && npm install --silent --save-exact "$1") >&2
  fi
  echo "$BENCH_NODE_HOME/node_modules"
}

# Python peers of the tests (thumbor's own client library, say) live in one
# directory outside the clone, installed with pip --target.
PEER_PY_HOME="${KILN_PEER_PY_HOME:-$HOME/.cache/kiln-peers/python}"

# Installs a PyPI package at exactly the version asked for (name==version)
# into PEER_PY_HOME, replacing another version found there; prints the
# directory (for PYTHONPATH).
ensure_python_package() { # name==version
  local name="${1%%==*}" version="${1##*==}" installed=""
  python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
  installed="$(PYTHONPATH="$PEER_PY_HOME" python3 -c \
    "import importlib.metadata as m; print(m.version('$name'))" 2>/dev/null || true)"
  if [ "$installed" != "$version" ]; then
    log "installing $1 into $PEER_PY_HOME${installed:+ (had $installed)}" >&2
    mkdir -p "$PEER_PY_HOME"
    python3 -m pip install --quiet --disable-pip-version-check --upgrade \
      --target "$PEER_PY_HOME" "$1" >&2
  fi
  echo "$PEER_PY_HOME"
}

# Waits until the worker whose metrics are on 127.0.0.1:PORT reports a full
# captcha pool of 4096 slots (benchmarks serve captchas from it).
wait_captcha_pool() { # worker_port
  local ready=0
  for _ in $(seq 300); do
    ready="$(curl -s "http://127.0.0.1:$1/metrics" | awk '$1 == "kiln_captcha_pool_ready" {print $2}')"
    [ "${ready:-0}" = 4096 ] && return 0
    sleep 1
  done
  die "the captcha pool did not fill (ready: ${ready:-0})"
}

# The captcha benchmarks' peer: nginx answering one captcha, fetched from
# the api at API_URL, from disk at http://127.0.0.1:PORT/captcha (the seed's
# proxy-cache hit at its best). Config, pid and file live in DIR.
nginx_serve_captcha() { # dir api_url port
  local dir="$1"
  chmod 755 "$dir"  # nginx's workers (www-data) read the file from here
  mkdir -p "$dir/www"
  curl -s "$2/captcha" >"$dir/www/captcha.json"
  cat >"$dir/nginx.conf" <<EOT
worker_processes auto;
pid $dir/nginx.pid;
error_log $dir/nginx.err;
events { worker_connections 4096; }
http {
  access_log off;
  server {
    listen 127.0.0.1:$3;
    location = /captcha { default_type application/json; alias $dir/www/captcha.json; add_header Cache-Control no-store; }
  }
}
EOT
  nginx -c "$dir/nginx.conf"
  wait_port 127.0.0.1 "$3" 10 nginx
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$3/captcha")" = 200 ] \
    || die "nginx does not serve the captcha (see $dir/nginx.err)"
}

# Writes .kiln/local.env, keeping this checkout's signing keys and captcha salt across runs.
write_local_env() {
  mkdir -p "$KILN_RUN_DIR"
  local signing="" nginx_secret="" captcha_salt="" admin_key=""
  if [ -f "$KILN_ENV" ]; then
    signing="$(sed -n 's/^KILN_SIGNING_KEYS=//p' "$KILN_ENV")"
    captcha_salt="$(sed -n 's/^KILN_CAPTCHA_SALT=//p' "$KILN_ENV")"
    admin_key="$(sed -n 's/^KILN_ADMIN_KEYS=//p' "$KILN_ENV")"
    nginx_secret="$(sed -n "s/^KILN_NGINX_SECURE_LINK_MD5='\$uri \(.*\)'$/\1/p" "$KILN_ENV")"
  fi
  [ -n "$signing" ] || signing="$(random_hex 32)"
  [ -n "$nginx_secret" ] || nginx_secret="$(random_hex 16)"
  [ -n "$captcha_salt" ] || captcha_salt="$(random_hex 32)"
  [ -n "$admin_key" ] || admin_key="$(random_hex 24)"
  (umask 077 && cat >"$KILN_ENV.tmp") <<EOT
# Written by deploy/local/up.sh; read by kiln, kiln-api and kiln-worker.
# Variables set in the environment take precedence over this file.
KILN_DATABASE_URL=$KILN_DATABASE_URL
KILN_AMQP_URL=$KILN_AMQP_URL
KILN_S3_ENDPOINT=$KILN_S3_ENDPOINT
KILN_S3_REGION=garage
KILN_S3_ACCESS_KEY_ID=$KILN_S3_ACCESS_KEY_ID
KILN_S3_SECRET_ACCESS_KEY=$KILN_S3_SECRET_ACCESS_KEY
KILN_S3_ORIGINALS_BUCKET=kiln-originals
KILN_S3_CACHE_BUCKET=kiln-cache
KILN_SIGNING_KEYS=$signing
KILN_CAPTCHA_SALT=$captcha_salt
KILN_ADMIN_KEYS=$admin_key
KILN_NGINX_SECURE_LINK_MD5='\$uri $nginx_secret'
KILN_PUBLIC_URL=http://127.0.0.1:${KILN_API_PORT:-8080}
KILN_LISTEN=127.0.0.1:${KILN_API_PORT:-8080}
KILN_WORKER_LISTEN=127.0.0.1:${KILN_WORKER_PORT:-9091}
EOT
  mv "$KILN_ENV.tmp" "$KILN_ENV"
  chmod 600 "$KILN_ENV"
}

ensure_services() {
  ensure_packages
  ensure_postgres
  ensure_rabbitmq
  ensure_garage
  write_local_env
}
