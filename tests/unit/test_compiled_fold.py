"""The compiled build of the fold (``make compile``; ``projections.native``) folds every event sequence
to the same bytes, activity and outcomes as the pure-Python modules, which are the reference.

It runs where this process runs the compiled build; elsewhere (a fresh clone: ``make test`` never
compiles) it is skipped, saying why. To run it: ``make compile``, then this file. The pure fold runs
in a child process with ``SESSIONS_PURE_PYTHON=1`` (one process cannot hold both builds of a module).
"""

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings

from projections import native
from streams.devkit.events import EXAMPLES, new_session_id
from tests.support.fold_builds import fold_outcome
from tests.support.strategies import event_sequences

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.unit,
    pytest.mark.skipif(not native.compiled(), reason=f"the fold runs {native.describe()}"),
]


@pytest.fixture(scope="module")
def pure_fold():
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.support.fold_builds"],
        cwd=ROOT,
        env={**os.environ, native.OFF_SWITCH: "1"},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None

    def fold(objects):
        child.stdin.write(orjson.dumps(objects).decode() + "\n")
        child.stdin.flush()
        return orjson.loads(child.stdout.readline())

    yield fold
    child.stdin.close()
    child.wait(10)


def test_the_child_folds_with_the_pure_modules(pure_fold):
    probe = subprocess.run(
        [sys.executable, "-c", "from projections import native; print(native.describe())"],
        cwd=ROOT, env={**os.environ, native.OFF_SWITCH: "1"}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert probe.stdout.startswith("pure Python")


def test_the_examples_in_order_fold_alike(pure_fold):
    sid = new_session_id()
    objects = [make(sid) for make in EXAMPLES.values()]
    assert fold_outcome(objects) == pure_fold(objects)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=event_sequences())
def test_event_sequences_fold_alike(pure_fold, sequence):
    _, objects = sequence
    objects = orjson.loads(orjson.dumps(objects))  # as a log holds them: JSON
    assert fold_outcome(objects) == pure_fold(objects)
