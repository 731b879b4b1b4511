#!/usr/bin/env bash
# The main job: the local broker (started unless one already runs in the data folder) and one
# worker in the foreground. Ctrl-C or SIGTERM stops the worker, then the broker this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
ops/install.sh

export SESSIONS_DATA_DIR="${SESSIONS_DATA_DIR:-./var}"
export SESSIONS_RULES_FILE="${SESSIONS_RULES_FILE:-ops/rules.sample.toml}"
kafka_dir="$SESSIONS_DATA_DIR/kafka"

# No SESSIONS_SERVICE_KEYS: a key with every scope, generated on the first start, kept (0600) in
# the data folder and printed this once. There is no default key.
if [ -z "${SESSIONS_SERVICE_KEYS:-}" ]; then
    key_file="$SESSIONS_DATA_DIR/service-keys"
    if [ ! -s "$key_file" ]; then
        mkdir -p "$SESSIONS_DATA_DIR"
        key=$(.venv/bin/python -c 'import secrets; print("sk-" + secrets.token_urlsafe(32))')
        scopes=$(.venv/bin/python -c 'from streams.config.settings import SCOPES; print(" ".join(sorted(SCOPES)))')
        (umask 077 && printf '%s=%s\n' "$key" "$scopes" >"$key_file.tmp" && mv "$key_file.tmp" "$key_file")
        {
            echo "generated a service key with every scope ($scopes), kept in $key_file (shown only now):"
            echo "  $key"
            echo "  curl -H 'Authorization: Bearer $key' http://${SESSIONS_WEB_HOST:-127.0.0.1}:${SESSIONS_WEB_PORT:-8080}/api/v1/sessions/<session id>"
        } >&2
        unset key
    fi
    SESSIONS_SERVICE_KEYS=$(tr -d '\n' <"$key_file")
    export SESSIONS_SERVICE_KEYS
fi

broker() { .venv/bin/python -m streams.devkit.broker "$@"; }

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
