"""The compiled build of the fold (``make compile``; ``projections.native``) folds every event sequence
to the same bytes, activity and outcomes as the pure-Python modules, which are the reference.

The test compiles the build itself, into a folder of its own (``SESSIONS_FOLD_BUILD_DIR``), so a fresh
clone's ``make test`` checks it too (about 15 s of CPU), and folds through each build in a child
process of its own (one process cannot hold both builds of a module): the compiled one with that
folder, the pure one with ``SESSIONS_PURE_PYTHON=1``.
"""

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings

from projections import native
from streams.devkit.events import EXAMPLES, new_session_id
from tests.support.strategies import event_sequences

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.unit

Fold = Callable[[list[dict[str, Any]]], Any]


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fold-build") / "_compiled"
    env = {**os.environ, native.BUILD_DIR_VARIABLE: str(folder)}
    done = subprocess.run([sys.executable, "ops/compile.py"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return folder


def fold_child(env: dict[str, str]) -> Iterator[Fold]:
    """``python -m tests.support.fold_builds`` under ``env``: one JSON line in, one out."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.support.fold_builds"],
        cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    stdin, stdout = child.stdin, child.stdout
    assert stdin is not None and stdout is not None

    def fold(objects: list[dict[str, Any]]) -> Any:
        stdin.write(orjson.dumps(objects).decode() + "\n")
        stdin.flush()
        return orjson.loads(stdout.readline())

    yield fold
    stdin.close()
    child.wait(10)


def without_builds() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in (native.OFF_SWITCH, native.BUILD_DIR_VARIABLE)}


@pytest.fixture(scope="module")
def pure_fold() -> Iterator[Fold]:
    yield from fold_child({**without_builds(), native.OFF_SWITCH: "1"})


@pytest.fixture(scope="module")
def compiled_fold(build_dir: Path) -> Iterator[Fold]:
    yield from fold_child({**without_builds(), native.BUILD_DIR_VARIABLE: str(build_dir)})


def describe(env: dict[str, str]) -> str:
    probe = subprocess.run(
        [sys.executable, "-c", "from projections import native; print(native.describe())"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return probe.stdout


def test_each_child_runs_the_build_it_is_meant_to(build_dir: Path):
    assert describe({**without_builds(), native.BUILD_DIR_VARIABLE: str(build_dir)}).startswith("compiled (mypyc")
    assert describe({**without_builds(), native.BUILD_DIR_VARIABLE: str(build_dir), native.OFF_SWITCH: "1"}).startswith(
        "pure Python (SESSIONS_PURE_PYTHON is set)"
    )


def test_the_examples_in_order_fold_alike(pure_fold: Fold, compiled_fold: Fold):
    sid = new_session_id()
    objects = [make(sid) for make in EXAMPLES.values()]
    assert compiled_fold(objects) == pure_fold(objects)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=event_sequences())
def test_event_sequences_fold_alike(pure_fold: Fold, compiled_fold: Fold, sequence: Any):
    _, objects = sequence
    objects = orjson.loads(orjson.dumps(objects))  # as a log holds them: JSON
    assert compiled_fold(objects) == pure_fold(objects)
