#!/usr/bin/env bash
# Load on loopback: the hit path, the miss path and captcha serving, each next
# to a peer measured in the same run with the same wrk settings, and the api's
# resident memory under each load.
#
#   bench/load.sh [seconds] [connections]
#   PHASES="hit miss" bench/load.sh      # a subset of: hit miss captcha
#
# hit      a ready rendition's signed URL (302 to a presigned S3 URL)
#          peer: a bare axum handler answering a fixed 302
# miss     every request a rendition never asked for before (claim, queue,
#          render 640x480 JPEG → ~200 px, upload, notify, 302); a wrk Lua
#          script walks a list of pre-signed URLs so no URL repeats
#          peer: a Node server resizing the same JPEG with sharp on every
#          request, from memory (no S3, no queue, no cache)
# captcha  GET /captcha (a random ready slot from Postgres)
#          peer: nginx answering one cached captcha of the same size from disk
#
# The api's RSS is sampled every 200 ms (VmRSS): idle, then the peak in each phase.
. "$(dirname "$0")/../deploy/local/lib.sh"
DURATION="${1:-10}"
CONNS="${2:-64}"
apt_install wrk curl nginx-light python3
ensure_services
cd "$KILN_ROOT"
cargo build --release --quiet --bins -p kiln-api -p kiln-worker -p kiln-cli
cargo build --release --quiet --example bare_redirect -p kiln-api
SHARP_DIR="$(ensure_node_package sharp@0.34.5)"
BIN="$CARGO_TARGET_DIR/release"
WORK="$(mktemp -d)"
PHASES=" ${PHASES:-hit miss captcha} "
RUN_ID="$(date +%s)"
trap 'kill $(jobs -p) 2>/dev/null; [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null; [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"' EXIT
set -a; . "$KILN_ENV"; set +a
export KILN_ENV_FILE="" KILN_LISTEN=127.0.0.1:18100 KILN_WORKER_LISTEN=127.0.0.1:19101 \
  KILN_QUEUE_PREFIX="kiln.load$RUN_ID." KILN_S3_CACHE_PREFIX="load-$RUN_ID/" RUST_LOG="${RUST_LOG:-warn}" \
  KILN_WORKER_KINDS=image,captcha KILN_CAPTCHA_RATE_PER_MINUTE=100000000 KILN_CAPTCHA_BURST=1000000
"$BIN/kiln-api" >"$WORK/api.log" 2>&1 &
API_PID=$!
"$BIN/kiln-worker" >"$WORK/worker.log" 2>&1 &
"$BIN/examples/bare_redirect" 127.0.0.1:18101 >/dev/null 2>&1 &
wait_port 127.0.0.1 18100 30 kiln-api; wait_port 127.0.0.1 19101 30 kiln-worker
wait_port 127.0.0.1 18101 30 bare_redirect

"$BIN/kiln" sample-image "$WORK/src.jpg" 640x480 >/dev/null
"$BIN/kiln" upload "$WORK/src.jpg" "load/src-$RUN_ID.jpg" >/dev/null
SHARP_DIR="$SHARP_DIR" node bench/sharp_server.mjs "$WORK/src.jpg" 18103 &
hit_url="$(KILN_PUBLIC_URL=http://127.0.0.1:18100 "$BIN/kiln" sign 200x150 "load/src-$RUN_ID.jpg")"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$hit_url")" = 302 ] || die "warm-up request failed (logs: $WORK)"
wait_port 127.0.0.1 18103 30 "sharp server"

# 40 000 distinct renditions, signed like `kiln sign` does.
python3 - "$KILN_SIGNING_KEYS" "load/src-$RUN_ID.jpg" >"$WORK/miss_urls.txt" <<'PY'
import base64, hashlib, hmac, sys
key = sys.argv[1].split(",")[0].strip().encode()
source = sys.argv[2]
for i in range(40000):
    options = f"{100 + i % 200}x{100 + i // 200},f:jpeg"
    payload = f"{options}/{source}"
    sig = base64.urlsafe_b64encode(hmac.new(key, payload.encode(), hashlib.sha256).digest()).rstrip(b"=").decode()
    print(f"/img/{sig}/{payload}")
PY
first="$(head -n1 "$WORK/miss_urls.txt")"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:18100$first")" = 302 ] || die "a pre-signed miss URL failed"
sed -i 1d "$WORK/miss_urls.txt"
awk '{ split($0, p, "/"); print "/" p[4] "/x" }' "$WORK/miss_urls.txt" | sed 's/,f:jpeg//' >"$WORK/sharp_urls.txt"
cat >"$WORK/walk.lua" <<'LUA'
local urls = {}
for line in io.lines(os.getenv("URLS")) do urls[#urls + 1] = line end
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", urls[(i - 1) % #urls + 1])
end
LUA

if [[ "$PHASES" == *" captcha "* ]]; then
  log "filling the captcha pool"
  wait_captcha_pool 19101
  nginx_serve_captcha "$WORK" http://127.0.0.1:18100 18102
fi

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$API_PID/status"; }
# Runs wrk (args...) while sampling the api's RSS; prints wrk's output, then "peak_rss_kib N".
measured() {
  local peak=0 r
  wrk "$@" >"$WORK/wrk.out" 2>&1 &
  local wrk_pid=$!
  while kill -0 "$wrk_pid" 2>/dev/null; do
    r="$(rss_kib)"; [ "${r:-0}" -gt "$peak" ] && peak="$r"
    sleep 0.2
  done
  cat "$WORK/wrk.out"
  echo "peak_rss_kib $peak"
}
rps() { awk '/Requests\/sec/ {print $2}'; }
p50() { awk '$1 == "50%" {print $2}'; }
p99() { awk '$1 == "99%" {print $2}'; }
bad() { awk '/Non-2xx or 3xx/ {n = $5} END {print n + 0}'; }
peak() { awk '/^peak_rss_kib/ {printf "%.1f", $2 / 1024}'; }
WRK=(-t1 -c"$CONNS" -d"${DURATION}s" --latency)
row() { # label output
  printf '%-44s %10s %9s %9s %8s %10s\n' "$1" "$(rps <<<"$2")" "$(p50 <<<"$2")" "$(p99 <<<"$2")" "$(bad <<<"$2")" "$(peak <<<"$2")"
}
ratio() { awk -v k="$(rps <<<"$1")" -v p="$(rps <<<"$2")" -v n="$3" 'BEGIN { printf "%s: kiln / peer = %.2f\n", n, k / p }'; }

log "wrk -t1 -c$CONNS, ${DURATION}s per row, 2 cores shared by wrk, Kiln, its services and the peers"
printf 'api RSS idle: %.1f MiB\n' "$(awk -v r="$(rss_kib)" 'BEGIN { print r / 1024 }')"
printf '%-44s %10s %9s %9s %8s %10s\n' "" req/s p50 p99 non-3xx "api MiB"
if [[ "$PHASES" == *" hit "* ]]; then
  hit_peer="$(measured "${WRK[@]}" http://127.0.0.1:18101/img/x/y/z)"
  hit_kiln="$(measured "${WRK[@]}" "$hit_url")"
  row "hit: bare axum 302 (peer)" "$hit_peer"
  row "hit: kiln, ready rendition" "$hit_kiln"
fi
if [[ "$PHASES" == *" miss "* ]]; then
  miss_peer="$(URLS="$WORK/sharp_urls.txt" measured "${WRK[@]}" -s "$WORK/walk.lua" http://127.0.0.1:18103)"
  miss_kiln="$(URLS="$WORK/miss_urls.txt" measured "${WRK[@]}" -s "$WORK/walk.lua" http://127.0.0.1:18100)"
  row "miss: sharp on-the-fly resize (peer)" "$miss_peer"
  row "miss: kiln, new rendition each request" "$miss_kiln"
fi
if [[ "$PHASES" == *" captcha "* ]]; then
  cap_peer="$(measured "${WRK[@]}" http://127.0.0.1:18102/captcha)"
  cap_kiln="$(measured "${WRK[@]}" http://127.0.0.1:18100/captcha)"
  row "captcha: nginx, one cached file (peer)" "$cap_peer"
  row "captcha: kiln GET /captcha" "$cap_kiln"
fi
[ -z "${hit_kiln:-}" ] || ratio "$hit_kiln" "$hit_peer" hit
[ -z "${miss_kiln:-}" ] || ratio "$miss_kiln" "$miss_peer" miss
[ -z "${cap_kiln:-}" ] || ratio "$cap_kiln" "$cap_peer" captcha
renders="$(curl -s http://127.0.0.1:19101/metrics | awk '/^kiln_jobs_total/ && /outcome="ok"/ && /kind="image"/ {s += $2} END {print s + 0}')"
log "worker renders in this run: $renders"
printf 'api RSS after: %.1f MiB\n' "$(awk -v r="$(rss_kib)" 'BEGIN { print r / 1024 }')"
