#!/usr/bin/env bash
# Captcha benchmark on loopback.
#
#   bench/captcha.sh [seconds]
#
# 1. Serving: wrk against GET /captcha (a random ready slot read from the
#    Postgres pool, base64 PNG in JSON) next to the seed's own design at its
#    best — nginx answering a cached captcha of the same size straight from
#    disk (proxy_cache hit ≈ static file) — same run, same wrk settings.
# 2. Generation: captchas drawn and PNG-encoded per second on 1 and 2 threads
#    (worker/examples/captcha_bench.rs, the worker's own code).
. "$(dirname "$0")/../deploy/local/lib.sh"
DURATION="${1:-10}"
apt_install wrk curl nginx-light
ensure_services
cd "$KILN_ROOT"
cargo build --release --quiet --bins -p kiln-api -p kiln-worker
cargo build --release --quiet --example captcha_bench -p kiln-worker
BIN="$CARGO_TARGET_DIR/release"
WORK="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null; [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null; rm -rf "$WORK"' EXIT
set -a; . "$KILN_ENV"; set +a
export KILN_ENV_FILE="" KILN_LISTEN=127.0.0.1:18090 KILN_WORKER_LISTEN=127.0.0.1:19092 \
  KILN_QUEUE_PREFIX=kiln.bench. KILN_WORKER_KINDS=captcha RUST_LOG=warn \
  KILN_CAPTCHA_RATE_PER_MINUTE=100000000 KILN_CAPTCHA_BURST=1000000
"$BIN/kiln-api" >"$WORK/api.log" 2>&1 &
"$BIN/kiln-worker" >"$WORK/worker.log" 2>&1 &
wait_port 127.0.0.1 18090 30 kiln-api; wait_port 127.0.0.1 19092 30 kiln-worker

log "filling the pool (4096 slots)"
wait_captcha_pool 19092
nginx_serve_captcha "$WORK" http://127.0.0.1:18090 18091

run_wrk() { wrk -t1 -c32 -d"${DURATION}s" --latency "$1" 2>&1; }
rps() { awk '/Requests\/sec/ {print $2}'; }
p99() { awk '$1 == "99%" {print $2}'; }
log "serving: ${DURATION}s each, wrk -t1 -c32, 2 cores shared by client and server"
peer="$(run_wrk http://127.0.0.1:18091/captcha)"
kiln="$(run_wrk http://127.0.0.1:18090/captcha)"
p_rps="$(rps <<<"$peer")"; k_rps="$(rps <<<"$kiln")"
printf '%-40s %12s %10s\n' "" "req/s" "p99"
printf '%-40s %12s %10s\n' "nginx, one cached captcha from disk" "$p_rps" "$(p99 <<<"$peer")"
printf '%-40s %12s %10s\n' "kiln GET /captcha (random pool slot)" "$k_rps" "$(p99 <<<"$kiln")"
awk -v k="$k_rps" -v p="$p_rps" -v b="$(wc -c <"$WORK/www/captcha.json")" \
  'BEGIN { printf "kiln / nginx = %.2f  (response %d bytes)\n", k / p, b }'

log "generation (draw + PNG encode)"
for threads in 1 2; do "$BIN/examples/captcha_bench" run 5 "$threads"; done
