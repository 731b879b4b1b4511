#!/usr/bin/env bash
# The main job: the local broker (started unless one already runs in the data folder) and one
# worker in the foreground. Ctrl-C or SIGTERM stops the worker, then the broker this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
ops/install.sh

export SESSIONS_DATA_DIR="${SESSIONS_DATA_DIR:-./var}"
export SESSIONS_RULES_FILE="${SESSIONS_RULES_FILE:-ops/rules.sample.toml}"
kafka_dir="$SESSIONS_DATA_DIR/kafka"
broker() { .venv/bin/python -m streams.kafka.broker "$@"; }

started_broker=0
if [ -z "${SESSIONS_KAFKA_BOOTSTRAP:-}" ]; then
    if ! SESSIONS_KAFKA_BOOTSTRAP=$(broker status --data-dir "$kafka_dir" 2>/dev/null); then
        SESSIONS_KAFKA_BOOTSTRAP=$(broker start --data-dir "$kafka_dir" --port "${KAFKA_PORT:-9092}")
        started_broker=1
    fi
    export SESSIONS_KAFKA_BOOTSTRAP
fi

worker_pid=""
stop_all() {
    trap - INT TERM
    if [ -n "$worker_pid" ] && kill -0 "$worker_pid" 2>/dev/null; then
        kill -TERM "$worker_pid" 2>/dev/null || true
        wait "$worker_pid" 2>/dev/null || true
    fi
    worker_pid=""
    if [ "$started_broker" = 1 ]; then
        broker stop --data-dir "$kafka_dir" || true
        started_broker=0
    fi
}
trap stop_all EXIT
trap 'stop_all; exit 0' INT TERM

echo "worker on http://${SESSIONS_WEB_HOST:-127.0.0.1}:${SESSIONS_WEB_PORT:-8080} (Kafka $SESSIONS_KAFKA_BOOTSTRAP, data $SESSIONS_DATA_DIR)" >&2
.venv/bin/sessionctl worker &
worker_pid=$!
wait "$worker_pid"
