#!/usr/bin/env bash
# make demo: `make run` (ops/run.sh) and a gentle `sessionctl simulate` beside it, so a newcomer
# opens http://127.0.0.1:8080/ and watches the explorer fill up. Ctrl-C stops all of it.
# DEMO_RATE (visitors/s, default 3) and DEMO_DURATION (seconds, default 3600) tune the traffic.
set -euo pipefail
cd "$(dirname "$0")/.."
ops/install.sh

export SESSIONS_DATA_DIR="${SESSIONS_DATA_DIR:-./var}"
url="http://${SESSIONS_WEB_HOST:-127.0.0.1}:${SESSIONS_WEB_PORT:-8080}"

ops/run.sh &
run_pid=$!
sim_pid=""
stop() {
    trap - INT TERM EXIT
    [ -n "$sim_pid" ] && kill -TERM "$sim_pid" 2>/dev/null || true
    kill -TERM "$run_pid" 2>/dev/null || true
    wait "$run_pid" 2>/dev/null || true
}
trap stop EXIT
trap 'stop; exit 0' INT TERM

until .venv/bin/python -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + '/readyz', timeout=1)" "$url" 2>/dev/null; do
    kill -0 "$run_pid" 2>/dev/null || { echo "error: the worker did not start (see above)" >&2; exit 1; }
    sleep 0.5
done

# The key: the first of SESSIONS_SERVICE_KEYS, else the one `make run` keeps in the data folder.
if [ -n "${SESSIONS_SERVICE_KEYS:-}" ]; then
    key="${SESSIONS_SERVICE_KEYS%%=*}"
else
    key=$(cut -d= -f1 "$SESSIONS_DATA_DIR/service-keys")
fi
echo "demo: open $url/ and enter the service key from $SESSIONS_DATA_DIR/service-keys (the part before '=')" >&2
SESSIONS_SERVICE_KEY="$key" .venv/bin/sessionctl simulate --url "$url" --rate "${DEMO_RATE:-3}" \
    --duration "${DEMO_DURATION:-3600}" --seed "${DEMO_SEED:-$RANDOM}" &
sim_pid=$!
wait "$sim_pid" || true
sim_pid=""
echo "demo: the simulation ended; the worker keeps running (Ctrl-C stops it)" >&2
wait "$run_pid"
