#!/usr/bin/env bash
# All tests from a fresh clone: install, a throw-away broker on a free port with its own data
# folder, pytest, and the broker stopped whatever pytest says. Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
ops/install.sh

scratch=$(mktemp -d "${TMPDIR:-/tmp}/session-engine-test.XXXXXX")
broker() { .venv/bin/python -m streams.devkit.broker "$@"; }
cleanup() {
    broker stop --data-dir "$scratch/kafka" >/dev/null 2>&1 || true
    # The broker's log outlives the run (group rebalances and evictions are read there).
    mkdir -p var && cp "$scratch/kafka/server.log" var/test-broker.log 2>/dev/null || true
    rm -rf "$scratch"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Every broker of the run (this one, the clusters tests start) with the light JIT: the run starts
# dozens of them (streams/devkit/kafka/process.py, JVM_MODES).
export SESSIONS_BROKER_JVM=light
export SESSIONS_TEST_BOOTSTRAP
SESSIONS_TEST_BOOTSTRAP=$(broker start --data-dir "$scratch/kafka" --port 0)
# The files run in parallel processes (pytest-xdist), a file's tests on one process in their order
# (--dist loadfile: module-scoped workers start once, and tests that build on each other stay
# together). TEST_PROCESSES=3 on 2 cores: half of a serial run is waiting (group timeouts, worker
# starts, JVMs), so one process more than cores keeps both busy (4 overloaded it: docs/tests.md). TEST_PROCESSES=0 runs serially. The 15 slowest tests close the report.
.venv/bin/python -m pytest -n "${TEST_PROCESSES:-3}" --dist loadfile --no-loadscope-reorder --durations=15 "$@"
