"""The bench's modules (ops/bench) for its unit tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[2] / "ops" / "bench"


def bench_module(name: str) -> ModuleType:
    """``ops/bench/<name>.py``: the bench is scripts that import each other by bare name (run.py runs
    from there), so they are loaded by path under those names."""
    if name in sys.modules and getattr(sys.modules[name], "__file__", "") == str(BENCH / f"{name}.py"):
        return sys.modules[name]
    if str(BENCH) not in sys.path:
        # A module's own imports of its neighbours (kafka_io imports workload, ...) find them; last,
        # so that no installed module is shadowed by a bench script of the same name.
        sys.path.append(str(BENCH))
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module
