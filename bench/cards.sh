#!/usr/bin/env bash
# Warm social-card rendering: Kiln's worker path (browser pool with a reused
# page, offline interception, JPEG captured by Chromium, PNG/WebP captured
# fast and encoded in Rust) next to Puppeteer driving the same Chromium with
# one reused tab per browser (setContent + screenshot), same pages, same
# machine, one run. Both templates, JPEG/PNG/WebP, 1 and 2 browsers, plus the
# cold start (browser launch, then the first card).
#
#   bench/cards.sh [seconds-per-case]
#
# Columns: p50 ms, p95 ms, cards/s, mean KiB; "vs" is Kiln's figure against
# Puppeteer's (latency: Puppeteer p50 / Kiln p50; throughput: Kiln / Puppeteer).
. "$(dirname "$0")/../deploy/local/lib.sh"
SECONDS_EACH="${1:-5}"
ensure_packages
cd "$KILN_ROOT"
PUPPETEER_DIR="$(ensure_node_package puppeteer-core@25)"
export PUPPETEER_DIR
cargo build --release --quiet -p kiln-worker --example card_bench
BENCH="$CARGO_TARGET_DIR/release/examples/card_bench"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
"$BENCH" html templates "$WORK/pages"

{
  for browsers in 1 2; do
    "$BENCH" run templates "$browsers" "$SECONDS_EACH"
  done
  "$BENCH" cold templates
  for browsers in 1 2; do
    node bench/cards_puppeteer.mjs templates "$WORK/pages" "$browsers" "$SECONDS_EACH" | grep -v '^puppeteer cold'
  done
  node bench/cards_puppeteer.mjs templates "$WORK/pages" 1 1 | grep '^puppeteer cold'
} > "$WORK/results"

awk '
  $1 == "kiln" && $2 != "cold"      { k[$2" "$3" "$4] = $0 }
  $1 == "puppeteer" && $2 != "cold" { p[$2" "$3" "$4] = $0 }
  $2 == "cold"                      { cold[$1] = $3" ms launch, "$4" ms to the first card" }
  END {
    printf "%-8s %-5s %-8s | %-30s | %-30s | %s\n", "template", "fmt", "browsers", "Kiln p50/p95 ms, cards/s, KiB", "Puppeteer p50/p95 ms, cards/s, KiB", "vs (p50, cards/s)"
    n = split("article stats", t, " "); split("jpg png webp", f, " ")
    for (b = 1; b <= 2; b++) for (i = 1; i <= n; i++) for (j = 1; j <= 3; j++) {
      key = t[i]" "f[j]" "b
      split(k[key], a, " "); split(p[key], q, " ")
      printf "%-8s %-5s %-8s | %6.1f %6.1f %6.1f %6d | %6.1f %6.1f %6.1f %6d | %.2fx %.2fx\n", t[i], f[j], b, a[5], a[6], a[7], a[8], q[5], q[6], q[7], q[8], q[5] / a[5], a[7] / q[7]
    }
    print "cold start, Kiln:      " cold["kiln"]
    print "cold start, Puppeteer: " cold["puppeteer"]
  }' "$WORK/results"
