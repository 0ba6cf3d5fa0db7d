#!/usr/bin/env bash
# Hit-path and miss-latency benchmark on loopback.
#
#   bench/hit_path.sh [seconds]
#
# 1. Hit path: wrk against a ready rendition's signed URL on kiln-api, and, in
#    the same run with the same settings, against a bare axum handler answering
#    a fixed 302 (api/examples/bare_redirect.rs). Reports req/s, p99 and the ratio.
# 2. Miss latency: first requests for a 4000x3000 JPEG -> 800 px wide, each
#    with fresh options, total time next to the worker's own fetch/render/upload
#    split (from its log), so "everything but the render" is visible.
# 3. Dialects: the same rendition through thumbor's and imgproxy's URLs
#    (signed by `kiln sign --dialect`), 3 rounds alternating with the native
#    URL, reported as each dialect's ratio to the native hit path.
# 4. Metering cost: the same hit URL with and without a partner key, rounds
#    alternating in one run (each keyed request is resolved from the key
#    cache, held to limits and counted; counts flushed once a second;
#    5 alternating rounds, reported as the ratio of the sums).
. "$(dirname "$0")/../deploy/local/lib.sh"
DURATION="${1:-10}"
apt_install wrk curl
ensure_services
cd "$KILN_ROOT"
cargo build --release --quiet --bins -p kiln-api -p kiln-worker -p kiln-cli
cargo build --release --quiet --example bare_redirect -p kiln-api
BIN="$CARGO_TARGET_DIR/release"
WORK="$(mktemp -d)"
RUN_ID="$(date +%s)"  # a fresh source key, so the misses are real misses
trap 'kill $(jobs -p) 2>/dev/null; [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"' EXIT
set -a; . "$KILN_ENV"; set +a
export KILN_THUMBOR_KEY=bench-thumbor-key KILN_IMGPROXY_KEY=62656e6368 KILN_IMGPROXY_SALT=73616c74
export KILN_ENV_FILE="" KILN_LISTEN=127.0.0.1:18080 KILN_WORKER_LISTEN=127.0.0.1:19091 \
  KILN_QUEUE_PREFIX=kiln.bench. KILN_S3_CACHE_PREFIX="bench-$(date +%s)/" RUST_LOG=warn,kiln_worker=info
"$BIN/kiln-api" >"$WORK/api.log" 2>&1 &
"$BIN/kiln-worker" >"$WORK/worker.log" 2>&1 &
"$BIN/examples/bare_redirect" 127.0.0.1:18081 >/dev/null 2>&1 &
wait_port 127.0.0.1 18080 30 kiln-api; wait_port 127.0.0.1 18081 30 bare_redirect

"$BIN/kiln" sample-image "$WORK/sample.jpg" >/dev/null
"$BIN/kiln" upload "$WORK/sample.jpg" bench/sample.jpg >/dev/null
hit_url="$(KILN_PUBLIC_URL=http://127.0.0.1:18080 "$BIN/kiln" sign 400x300,f:webp bench/sample.jpg)"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$hit_url")" = 302 ] || die "warm-up request failed"

run_wrk() { wrk -t1 -c32 -d"${DURATION}s" --latency "$1" 2>&1; }
rps() { awk '/Requests\/sec/ {print $2}'; }
p99() { awk '$1 == "99%" {print $2}'; }
log "hit path: ${DURATION}s each, wrk -t1 -c32, 2 cores shared by client and server"
bare="$(run_wrk http://127.0.0.1:18081/img/x/y/z)"
kiln="$(run_wrk "$hit_url")"
b_rps="$(rps <<<"$bare")"; k_rps="$(rps <<<"$kiln")"
printf '%-28s %12s %10s\n' "" "req/s" "p99"
printf '%-28s %12s %10s\n' "bare axum 302" "$b_rps" "$(p99 <<<"$bare")"
printf '%-28s %12s %10s\n' "kiln hit (302 to S3)" "$k_rps" "$(p99 <<<"$kiln")"
awk -v k="$k_rps" -v b="$b_rps" 'BEGIN { printf "kiln / bare = %.2f\n", k / b }'

log "dialects: the same rendition natively, via thumbor and via imgproxy, 3 alternating rounds of ${DURATION}s"
sign_dialect() { KILN_PUBLIC_URL=http://127.0.0.1:18080 "$BIN/kiln" sign --dialect "$1" "$2" bench/sample.jpg; }
thumbor_url="$(sign_dialect thumbor 'fit-in/400x300/filters:format(webp)')"
imgproxy_url="$(sign_dialect imgproxy 'rs:fit:400:300/f:webp')"
for url in "$thumbor_url" "$imgproxy_url"; do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$url")" = 302 ] || die "dialect warm-up failed: $url"
done
native_sum=0; thumbor_sum=0; imgproxy_sum=0
printf '%-8s %14s %14s %14s\n' round "native req/s" "thumbor req/s" "imgproxy req/s"
for round in 1 2 3; do
  n="$(run_wrk "$hit_url" | rps)"; t="$(run_wrk "$thumbor_url" | rps)"; i="$(run_wrk "$imgproxy_url" | rps)"
  printf '%-8s %14s %14s %14s\n' "$round" "$n" "$t" "$i"
  native_sum="$(awk -v a="$native_sum" -v b="$n" 'BEGIN { print a + b }')"
  thumbor_sum="$(awk -v a="$thumbor_sum" -v b="$t" 'BEGIN { print a + b }')"
  imgproxy_sum="$(awk -v a="$imgproxy_sum" -v b="$i" 'BEGIN { print a + b }')"
done
awk -v n="$native_sum" -v t="$thumbor_sum" -v i="$imgproxy_sum" \
  'BEGIN { printf "thumbor / native = %.2f, imgproxy / native = %.2f\n", t / n, i / n }'

log "metering: the hit URL without and with a partner key, 5 alternating rounds of ${DURATION}s"
partner_key="$("$BIN/kiln" partner create "bench-$RUN_ID" | sed -n 's/^key (shown once): //p')"
[ -n "$partner_key" ] || die "could not create a bench partner"
keyed_url="$hit_url?key=$partner_key"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$keyed_url")" = 302 ] || die "keyed warm-up failed"
plain_sum=0; keyed_sum=0
printf '%-8s %14s %14s\n' round "no key req/s" "key req/s"
for round in 1 2 3 4 5; do
  p="$(run_wrk "$hit_url" | rps)"; k="$(run_wrk "$keyed_url" | rps)"
  printf '%-8s %14s %14s\n' "$round" "$p" "$k"
  plain_sum="$(awk -v a="$plain_sum" -v b="$p" 'BEGIN { print a + b }')"
  keyed_sum="$(awk -v a="$keyed_sum" -v b="$k" 'BEGIN { print a + b }')"
done
awk -v k="$keyed_sum" -v p="$plain_sum" 'BEGIN { printf "keyed / unkeyed = %.3f (metering cost %.1f %%)\n", k / p, (1 - k / p) * 100 }'
sleep 1.5
metered="$(psql "$KILN_DATABASE_URL" -Atc "SELECT sum(hits) FROM usage_daily WHERE partner = 'bench-$RUN_ID'")"
log "requests metered for bench-$RUN_ID: $metered"

log "miss latency: 4000x3000 JPEG -> 800 px wide, first request each"
"$BIN/kiln" sample-image "$WORK/big.jpg" 4000x3000 >/dev/null
"$BIN/kiln" upload "$WORK/big.jpg" "bench/big-$RUN_ID.jpg" >/dev/null
printf '%-6s %9s %9s %9s %9s %9s %14s\n' run total_ms queue_ms fetch_ms render_ms upload_ms non_render_ms
for q in 71 72 73 74 75; do
  url="$(KILN_PUBLIC_URL=http://127.0.0.1:18080 "$BIN/kiln" sign "800x0,q:$q" "bench/big-$RUN_ID.jpg")"
  read -r code total < <(curl -s -o /dev/null -w "%{http_code} %{time_total}\n" "$url")
  [ "$code" = 302 ] || die "miss request answered $code (logs: $WORK)"
  sleep 0.2
  line="$(grep 'rendition ready' "$WORK/worker.log" | tail -n1)"
  field() { sed -n "s/.*$1=\([0-9]*\).*/\1/p" <<<"$line"; }
  awk -v q="$q" -v t="$total" -v qu="$(field queue_ms)" -v f="$(field fetch_ms)" -v r="$(field render_ms)" -v u="$(field upload_ms)" \
    'BEGIN { printf "q:%-4s %9.1f %9s %9s %9s %9s %14.1f\n", q, t * 1000, qu, f, r, u, t * 1000 - r }'
done
