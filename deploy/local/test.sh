#!/usr/bin/env bash
# Runs every check and test against real services: formatting, clippy, unit
# tests, and end-to-end tests that start kiln-api and kiln-worker against the
# local PostgreSQL, RabbitMQ and Garage (started here if needed).
. "$(dirname "$0")/lib.sh"

# The fault suite stops and starts PostgreSQL, RabbitMQ and Garage: only
# services this stack runs itself, never ones the caller pointed it at.
faults="${KILN_FAULTS:-1}"
if [ -n "${KILN_DATABASE_URL:-}${KILN_AMQP_URL:-}" ]; then faults=0; fi
own_broker=1
if [ -n "${KILN_AMQP_URL:-}" ]; then own_broker=0; fi

ensure_services
cd "$KILN_ROOT"
log "local stack secrets are written private"
bash "$KILN_ROOT/tests/scripts/local_env_private.sh"
log "local stack scripts under failure"
bash "$KILN_ROOT/tests/scripts/local_stack_scripts.sh"
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets --release --quiet -- -D warnings
log "building binaries"
cargo build --workspace --bins --release --quiet
set -a; . "$KILN_ENV"; set +a
if [ "$own_broker" = 1 ]; then
  use_test_vhost
  trap drop_test_vhost EXIT
fi
# Databases left by earlier interrupted runs (each test drops its own when it passes).
if id postgres >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
  runuser -u postgres -- psql -qtA -d postgres -c \
    "SELECT 'DROP DATABASE ' || quote_ident(datname) || ' WITH (FORCE);' FROM pg_database WHERE datname LIKE 'kiln\_t%'" \
    | runuser -u postgres -- psql -q -d postgres >/dev/null || true
fi
export KILN_BIN_DIR="$CARGO_TARGET_DIR/release"
# The peers' own client libraries, for the dialect tests.
KILN_PEER_PYTHONPATH="$(ensure_python_package libthumbor==2.0.2)"
KILN_PEER_NODE_PATH="$(ensure_node_package @imgproxy/imgproxy-node@1.0.6)"
export KILN_PEER_PYTHONPATH KILN_PEER_NODE_PATH
log "running tests"
cargo test --workspace --release -- --test-threads "${KILN_TEST_THREADS:-4}"
if [ "$faults" = 1 ]; then
  log "running the fault suite (restarts the services, one test at a time)"
  # --workspace: the same feature set as the build above, so nothing is rebuilt.
  cargo test --workspace --release --test faults -- --ignored --test-threads 1
else
  log "fault suite skipped (KILN_FAULTS=0, or services given by KILN_DATABASE_URL / KILN_AMQP_URL)"
fi
