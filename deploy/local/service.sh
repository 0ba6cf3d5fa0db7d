#!/usr/bin/env bash
# Stops and starts the local stack's services one at a time, for the fault
# suite (tests/faults): `service.sh stop|start postgres|rabbitmq|garage`.
#
# Only services this stack runs on this machine can be controlled: the
# PostgreSQL cluster under /etc/postgresql, the RabbitMQ node
# $RABBITMQ_NODENAME, and Garage with the configuration in $KILN_STATE_DIR.
# "stop" returns once the service no longer accepts connections, "start" once
# it does again.
. "$(dirname "$0")/lib.sh"

action="${1:-}"
service="${2:-}"

pg_version() {
  local version
  version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)"
  [ -n "$version" ] || die "no local PostgreSQL cluster to control"
  echo "$version"
}

wait_closed() { # host port seconds what
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    port_open "$1" "$2" || return 0
    sleep 0.1
  done
  die "$4 still accepts connections on $1:$2 after $3 s"
}

garage_pid() { pgrep -f "garage -c $GARAGE_CONF server" | head -n1; }

case "$action:$service" in
  stop:postgres)
    pg_ctlcluster "$(pg_version)" main stop -m fast
    wait_closed 127.0.0.1 5432 30 PostgreSQL
    ;;
  start:postgres)
    pg_ctlcluster "$(pg_version)" main start
    wait_port 127.0.0.1 5432 30 PostgreSQL
    ;;
  stop:rabbitmq)
    # Stops the broker application (every connection closed, the listener
    # gone); the Erlang node stays up so the restart takes seconds, not tens.
    rabbitmqctl -q -n "$RABBITMQ_NODENAME" stop_app >/dev/null
    wait_closed 127.0.0.1 5672 30 RabbitMQ
    ;;
  start:rabbitmq)
    rabbitmqctl -q -n "$RABBITMQ_NODENAME" start_app >/dev/null
    wait_port 127.0.0.1 5672 60 RabbitMQ
    ;;
  stop:garage)
    pid="$(garage_pid)"
    [ -n "$pid" ] || die "no Garage running with $GARAGE_CONF"
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    wait_closed 127.0.0.1 "$GARAGE_S3_PORT" 30 Garage
    ;;
  start:garage)
    [ -z "$(garage_pid)" ] || die "Garage is already running"
    setsid nohup "$(garage_bin)" -c "$GARAGE_CONF" server >>"$GARAGE_DIR/garage.log" 2>&1 </dev/null &
    echo $! >"$GARAGE_DIR/garage.pid"
    wait_port 127.0.0.1 "$GARAGE_S3_PORT" 30 Garage
    ;;
  *)
    die "usage: service.sh stop|start postgres|rabbitmq|garage"
    ;;
esac
