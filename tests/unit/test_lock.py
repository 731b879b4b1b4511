"""The lock files agree with what they are resolved from, and the venv is the lock (ops/lock.py).

A dependency edited in pyproject.toml (or ops/bench/requirements-quix.txt, requirements/tools.in)
without `make lock` fails here, in `make test` and so in CI: a fresh clone would otherwise install
the old set."""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def _lock_module() -> ModuleType:
    # ops/ is scripts, not a package: load ops/lock.py by path (what `make lock` runs).
    spec = importlib.util.spec_from_file_location("ops_lock", REPO / "ops" / "lock.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


lock_tools = _lock_module()
LOCKS = {lock.path: lock for lock in lock_tools.LOCKS}


def pins(path: str) -> dict[str, str]:
    """Name -> version of the lock's pins that apply here (a lock may pin other versions elsewhere)."""
    return {pin.name: pin.version for pin in lock_tools.read_lock(REPO / path) if lock_tools.applies(pin)}


def pinned(requirements: list[str]) -> dict[str, str]:
    """Name -> version of the ``==`` requirements among ``requirements`` (PEP 508 strings)."""
    found = {}
    for text in requirements:
        requirement = Requirement(text)
        (spec,) = requirement.specifier  # the project pins every direct dependency exactly
        assert spec.operator == "==", f"{text}: pin it (==), the lock follows the pins"
        found[lock_tools.normalize(requirement.name)] = spec.version
    return found


def project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


@pytest.mark.parametrize("path", sorted(LOCKS))
def test_each_lock_was_written_from_its_inputs_as_they_are(path):
    lock = LOCKS[path]
    recorded = lock_tools.recorded_digest(lock)
    assert recorded is not None, f"{path} is missing or has no 'inputs-sha256' line: run `make lock`"
    assert recorded == lock_tools.input_digest(lock), (
        f"{', '.join(lock.requirements)} changed since {path} was written: run `make lock` and commit both"
    )


@pytest.mark.parametrize("path", sorted(LOCKS))
def test_every_pin_names_one_version_and_its_files_hashes(path):
    entries = lock_tools.read_lock(REPO / path)
    assert entries, path
    unhashed = [pin.name for pin in entries if not pin.hashes]
    assert not unhashed, f"{path}: pins without a hash (pip --require-hashes refuses them): {unhashed}"
    here = [pin.name for pin in entries if lock_tools.applies(pin)]
    assert len(here) == len(set(here)), f"{path}: a package pinned twice for this platform"


def test_the_dev_lock_holds_every_pin_of_pyproject():
    wanted = pinned(project()["dependencies"])
    for extra in ("dev", "bench"):
        wanted |= pinned(project()["optional-dependencies"][extra])
    locked = pins("requirements/dev.lock")
    wrong = {name: (version, locked.get(name)) for name, version in wanted.items() if locked.get(name) != version}
    assert not wrong, f"pyproject.toml pin -> dev.lock's: {wrong}; run `make lock`"


def test_the_runtime_lock_is_the_runtime_part_of_the_dev_lock():
    runtime, dev = pins("requirements/runtime.lock"), pins("requirements/dev.lock")
    wanted = pinned(project()["dependencies"])
    assert {name: runtime.get(name) for name in wanted} == wanted
    # The image and the developers run the same version of every package they share, and the
    # image gets none of the dev tools.
    assert {name: dev.get(name) for name in runtime} == runtime
    assert "pytest" not in runtime and "ruff" not in runtime


def test_the_quix_lock_holds_the_bench_peer_pins():
    lines = (REPO / "ops/bench/requirements-quix.txt").read_text().splitlines()
    wanted = pinned([line for line in lines if line.strip() and not line.startswith("#")])
    locked = pins("ops/bench/requirements-quix.lock")
    assert {name: locked.get(name) for name in wanted} == wanted
    assert locked["confluent-kafka"] != pins("requirements/dev.lock")["confluent-kafka"], (
        "the Quix venv exists because quixstreams needs another confluent-kafka than the project"
    )


@pytest.mark.skipif(
    Path(sys.prefix).resolve() != (REPO / ".venv").resolve(), reason="only the project's .venv is made from the lock"
)
def test_this_venv_is_exactly_the_dev_lock():
    """What `make install` made: every locked version, nothing else (pip freeze == the lock)."""
    installed = lock_tools.installed()
    locked = pins("requirements/dev.lock")
    assert {name: installed.get(name) for name in locked} == locked, "run `make install`"
    assert sorted(set(installed) - set(locked)) == [], "installed but not locked: run `make install`"


def test_the_compile_stage_installs_mypy_with_what_it_needs_from_the_dev_lock(tmp_path):
    text = lock_tools.subset(REPO / "requirements" / "dev.lock", ["mypy", "setuptools", "msgspec"])
    subset = tmp_path / "compile.lock"
    subset.write_text(text)
    pins = {pin.name: pin for pin in lock_tools.read_lock(subset)}
    dev = {pin.name: pin for pin in lock_tools.read_lock(REPO / "requirements" / "dev.lock")}
    assert {"mypy", "mypy-extensions", "typing-extensions", "pathspec", "setuptools", "msgspec"} <= set(pins)
    assert "faust-streaming" not in pins  # only what mypy needs
    assert all(pin == dev[name] and pin.hashes for name, pin in pins.items())
