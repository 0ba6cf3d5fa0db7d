#!/usr/bin/env bash
# Brings up the whole farm locally: installs what is missing, starts
# PostgreSQL, RabbitMQ and Garage, builds Kiln, starts kiln-api (which runs the
# migrations) and kiln-worker, uploads a sample image and prints a signed URL.
# Running it twice is harmless; deploy/local/down.sh stops what it started.
. "$(dirname "$0")/lib.sh"

ensure_services
log "building Kiln (release)"
(cd "$KILN_ROOT" && cargo build --release --workspace --bins --quiet)
BIN="$CARGO_TARGET_DIR/release"

start() { # name binary
  local pidfile="$KILN_RUN_DIR/$1.pid"
  # A running one is restarted: stopped (in-flight work finishes) first.
  stop_pidfile "$pidfile" "kiln-$1"
  # exec: the pid recorded is the process itself (down.sh and a restart
  # signal it), and nothing keeps this script's stdout open.
  (cd "$KILN_ROOT" && exec nohup "$BIN/$2" >"$KILN_RUN_DIR/$1.log" 2>&1 </dev/null) &
  echo $! >"$pidfile"
}
start api kiln-api
start worker kiln-worker
set -a; . "$KILN_ENV"; set +a
wait_port 127.0.0.1 "${KILN_LISTEN##*:}" 30 kiln-api
# The port may belong to another process: the api we started must be alive.
sleep 0.5
for name in api worker; do
  pid_is "$(cat "$KILN_RUN_DIR/$name.pid")" "kiln-$name" \
    || die "kiln-$name exited at start-up: $(tail -n 3 "$KILN_RUN_DIR/$name.log")"
done

sample="$KILN_RUN_DIR/sample.jpg"
[ -f "$sample" ] || "$BIN/kiln" sample-image "$sample"
(cd "$KILN_ROOT" && "$BIN/kiln" upload "$sample" samples/kiln.jpg >/dev/null)
url="$(cd "$KILN_ROOT" && "$BIN/kiln" sign 640x360,fill,f:webp samples/kiln.jpg)"
code="$(curl -s -o /dev/null -w '%{http_code}' "$url")"
[ "$code" = 302 ] || die "the sample URL answered $code (logs: $KILN_RUN_DIR/api.log, worker.log)"
card="$(cd "$KILN_ROOT" && "$BIN/kiln" sign-card 'article/hello-kiln.png?title=Social%20cards%20from%20HTML%20templates&author=Kiln&site=127.0.0.1')"
code="$(curl -s -o /dev/null -w '%{http_code}' "$card")"
[ "$code" = 302 ] || die "the sample card answered $code (logs: $KILN_RUN_DIR/api.log, worker.log)"
log "a social card: $card"
log "Kiln is up: api http://127.0.0.1:${KILN_LISTEN##*:}, worker health http://$KILN_WORKER_LISTEN/healthz"
log "logs in $KILN_RUN_DIR/*.log; stop with deploy/local/down.sh"
echo "$url"
