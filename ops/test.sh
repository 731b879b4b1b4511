#!/usr/bin/env bash
# All tests from a fresh clone: install, a throw-away broker on a free port with its own data
# folder, pytest, and the broker stopped whatever pytest says. Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
ops/install.sh

scratch=$(mktemp -d "${TMPDIR:-/tmp}/session-engine-test.XXXXXX")
broker() { .venv/bin/python -m streams.kafka.broker "$@"; }
cleanup() {
    broker stop --data-dir "$scratch/kafka" >/dev/null 2>&1 || true
    rm -rf "$scratch"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export SESSIONS_TEST_BOOTSTRAP
SESSIONS_TEST_BOOTSTRAP=$(broker start --data-dir "$scratch/kafka" --port 0)
.venv/bin/python -m pytest "$@"
