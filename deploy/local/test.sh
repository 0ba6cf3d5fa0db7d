#!/usr/bin/env bash
# Runs every check and test against real services: formatting, clippy, unit
# tests, and end-to-end tests that start kiln-api and kiln-worker against the
# local PostgreSQL, RabbitMQ and Garage (started here if needed).
. "$(dirname "$0")/lib.sh"

ensure_services
cd "$KILN_ROOT"
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets --release --quiet -- -D warnings
log "building binaries"
cargo build --workspace --bins --release --quiet
set -a; . "$KILN_ENV"; set +a
# Databases left by earlier interrupted runs (each test drops its own when it passes).
if id postgres >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
  runuser -u postgres -- psql -qtA -d postgres -c \
    "SELECT 'DROP DATABASE ' || quote_ident(datname) || ' WITH (FORCE);' FROM pg_database WHERE datname LIKE 'kiln\_t%'" \
    | runuser -u postgres -- psql -q -d postgres >/dev/null || true
fi
export KILN_BIN_DIR="$CARGO_TARGET_DIR/release"
log "running tests"
cargo test --workspace --release -- --test-threads "${KILN_TEST_THREADS:-4}"
