#!/usr/bin/env bash
# Image pipeline throughput: Kiln's render path next to libvips (vipsthumbnail)
# and sharp, same generated inputs, same targets, same thread count, one run.
#
#   bench/image_pipeline.sh [seconds-per-measurement] [threads]
#
# Inputs (generated, deterministic): a detailed 4000x3000 baseline JPEG
# (~4.3 MB), a smoother one (~1.5 MB), the detailed one as progressive JPEG,
# a 4000x3000 lossy WebP, a 2000x1500 PNG with alpha.
# Every engine writes progressive JPEG q80 (4:2:0), WebP q80, AVIF q50 or
# default PNG, without metadata. Kiln runs THREADS render threads; sharp runs
# THREADS images in flight with libvips concurrency 1; vipsthumbnail runs
# THREADS processes with VIPS_CONCURRENCY=1, each over many copies of the
# input (process start-up amortised). "floor" is a 1/8-scale libjpeg-turbo
# decode of the same JPEG on the same threads: entropy decoding alone.
# Columns: images/s, peak RSS MiB (per process), output bytes.
. "$(dirname "$0")/../deploy/local/lib.sh"
SECONDS_EACH="${1:-5}"
THREADS="${2:-$(nproc)}"
apt_install libvips-tools time
cd "$KILN_ROOT"
SHARP_DIR="$(ensure_node_package sharp@0.34)"
export SHARP_DIR
cargo build --release --quiet -p kiln-worker --example image_bench
BENCH="$CARGO_TARGET_DIR/release/examples/image_bench"
INPUTS="${KILN_BENCH_INPUTS:-$HOME/.cache/kiln-bench/inputs}"
[ -f "$INPUTS/alpha.png" ] || "$BENCH" generate "$INPUTS" >/dev/null
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

kiln() { "$BENCH" run "$INPUTS/$1" "$2" "$THREADS" "$SECONDS_EACH"; }
sharp() { UV_THREADPOOL_SIZE="$THREADS" node bench/sharp_bench.mjs "$INPUTS/$1" "$2" "$THREADS" "$SECONDS_EACH"; }
floor() { "$BENCH" floor "$INPUTS/$1" "$THREADS" "$SECONDS_EACH"; }

# vips INPUT EXPECTED_RATE SIZE OUTPUT_SUFFIX [EXTRA_ARGS...]
vips() {
  local input="$1" rate="$2" size="$3" suffix="$4"; shift 4
  local per_process
  per_process=$(awk -v r="$rate" -v t="$THREADS" -v s="$SECONDS_EACH" 'BEGIN { n = int(r / t * s); print (n < 3 ? 3 : n) }')
  rm -rf "$WORK/in" "$WORK/out"; mkdir -p "$WORK/in" "$WORK/out"
  local ext="${input##*.}" p i
  for p in $(seq "$THREADS"); do
    for i in $(seq "$per_process"); do ln -s "$INPUTS/$input" "$WORK/in/$p-$i.$ext"; done
  done
  local start end
  start=$(date +%s.%N)
  for p in $(seq "$THREADS"); do
    VIPS_CONCURRENCY=1 /usr/bin/time -f %M -o "$WORK/rss.$p" \
      vipsthumbnail "$WORK/in/$p-"*."$ext" -s "$size" "$@" -o "$WORK/out/%s.$suffix" 2>/dev/null &
  done
  wait
  end=$(date +%s.%N)
  local rss bytes
  rss=$(cat "$WORK"/rss.* | sort -n | tail -1)
  bytes=$(stat -c %s "$(ls "$WORK"/out/* | head -1)" 2>/dev/null || echo 0)
  awk -v n="$((per_process * THREADS))" -v a="$start" -v b="$end" -v r="$rss" -v o="$bytes" \
    'BEGIN { printf "%.1f %.0f %d\n", n / (b - a), r / 1024, o }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

printf '| case | Kiln img/s (MiB, bytes) | sharp | vipsthumbnail | Kiln/sharp | Kiln/vips | floor img/s | Kiln/floor |\n'
printf '|---|---|---|---|---|---|---|---|\n'
# name | input | Kiln options | sharp case | vips size | vips output | floor?
while IFS='|' read -r name input options sharp_case vsize vout with_floor; do
  [ -n "$name" ] || continue
  k=($(kiln "$input" "$options"))
  s=($(sharp "$input" "$sharp_case"))
  extra=()
  [ "$sharp_case" = fill1200x630 ] && extra=(--smartcrop centre)
  v=($(vips "$input" "${s[0]}" "$vsize" "$vout" "${extra[@]}" || echo "0 0 0"))
  f_rate="-"; f_ratio="-"
  if [ "$with_floor" = yes ]; then
    f=($(floor "$input")); f_rate="${f[0]}"; f_ratio="$(ratio "${k[0]}" "${f[0]}")"
  fi
  printf '| %s | %s (%s, %s) | %s (%s, %s) | %s (%s, %s) | %s | %s | %s | %s |\n' \
    "$name" "${k[0]}" "${k[1]}" "${k[2]}" "${s[0]}" "${s[1]}" "${s[2]}" "${v[0]}" "${v[1]}" "${v[2]}" \
    "$(ratio "${k[0]}" "${s[0]}")" "$(ratio "${k[0]}" "${v[0]}")" "$f_rate" "$f_ratio"
done <<'CASES'
detailed JPEG fit 500x500 q80|detailed.jpg|500x500,q:80|fit500|500x500|jpg[Q=80,interlace,strip]|yes
smooth JPEG fit 500x500 q80|smooth.jpg|500x500,q:80|fit500|500x500|jpg[Q=80,interlace,strip]|yes
detailed JPEG 800 wide q80|detailed.jpg|800x0,q:80|w800|800x100000|jpg[Q=80,interlace,strip]|yes
smooth JPEG 800 wide q80|smooth.jpg|800x0,q:80|w800|800x100000|jpg[Q=80,interlace,strip]|yes
detailed JPEG fill 1200x630 q80|detailed.jpg|1200x630,fill,q:80|fill1200x630|1200x630|jpg[Q=80,interlace,strip]|yes
detailed JPEG to WebP 500 q80|detailed.jpg|500x500,q:80,f:webp|webp500|500x500|webp[Q=80,strip]|no
detailed JPEG to AVIF 500 q50|detailed.jpg|500x500,q:50,f:avif|avif500|500x500|avif[Q=50,strip]|no
progressive JPEG fit 500x500 q80|progressive.jpg|500x500,q:80|fit500|500x500|jpg[Q=80,interlace,strip]|no
WebP fit 500x500 q80|photo.webp|500x500,q:80|webp500|500x500|webp[Q=80,strip]|no
PNG+alpha fit 500x500|alpha.png|500x500|png500|500x500|png[strip]|no
CASES
