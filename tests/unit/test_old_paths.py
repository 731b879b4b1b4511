"""The old paths of moved modules (kept while other work still imports them) are the moved modules
themselves, not copies: an attribute read or monkeypatched through either name is the same one.
Delete this file with the aliases (``ALIASES`` in test_import_graph.py)."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.test_import_graph import ALIASES, MODULES

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def _target(alias: str) -> str:
    docstring = MODULES[alias].read_text().split("\n", 1)[0]
    return docstring.split("``")[1]  # '"""Old path of ``streams.x.y``, ...'


def test_the_aliases_are_the_files_that_say_so():
    said = {name for name, path in MODULES.items() if path.read_text().startswith('"""Old path of ``')}
    assert said == ALIASES


@pytest.mark.parametrize("alias", sorted(ALIASES))
def test_an_old_path_is_the_moved_module(alias):
    assert importlib.import_module(alias) is importlib.import_module(_target(alias))


def test_the_old_broker_command_still_runs(tmp_path):
    # ops/test.sh runs `python -m streams.kafka.broker`.
    done = subprocess.run(
        [sys.executable, "-m", "streams.kafka.broker", "status", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert (done.returncode, done.stderr.strip()) == (1, "Kafka is not running")
