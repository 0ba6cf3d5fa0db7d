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
export KILN_BIN_DIR="$CARGO_TARGET_DIR/release"
log "running tests"
cargo test --workspace --release -- --test-threads "${KILN_TEST_THREADS:-4}"
