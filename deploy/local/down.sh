#!/usr/bin/env bash
# Stops what deploy/local/up.sh started: kiln-api, kiln-worker, Garage, and
# PostgreSQL / RabbitMQ only if up.sh was the one that started them.
# Pass --keep-services to stop only Kiln's own processes.
. "$(dirname "$0")/lib.sh"

stop_pidfile "$KILN_RUN_DIR/api.pid" kiln-api
stop_pidfile "$KILN_RUN_DIR/worker.pid" kiln-worker
[ "${1:-}" = "--keep-services" ] && exit 0
stop_pidfile "$GARAGE_DIR/garage.pid" garage
if [ -f "$KILN_STATE_DIR/started-rabbitmq" ]; then
  log "stopping RabbitMQ"; rabbitmqctl stop >/dev/null 2>&1 || true; rm -f "$KILN_STATE_DIR/started-rabbitmq"
fi
if [ -f "$KILN_STATE_DIR/started-postgres" ]; then
  version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)"
  log "stopping PostgreSQL $version"; pg_ctlcluster "$version" main stop || true; rm -f "$KILN_STATE_DIR/started-postgres"
fi
