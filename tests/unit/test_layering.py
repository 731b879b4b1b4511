"""The fold, the contract and the fold loop's batch step stay pure: importing them pulls in no
Kafka, faust or RocksDB code."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

FORBIDDEN = ("faust", "mode", "confluent_kafka", "aiokafka", "rocksdict", "aiohttp")


@pytest.mark.parametrize("package", ["schemas", "projections"])
def test_pure_rooms_import_no_infrastructure(package):
    code = (
        "import importlib, pkgutil, sys\n"
        f"pkg = importlib.import_module({package!r})\n"
        "for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(' '.join(sorted({n.split('.')[0] for n in sys.modules})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    loaded = set(out)
    assert package in loaded
    assert loaded.isdisjoint(FORBIDDEN), f"{package} imports {sorted(loaded & set(FORBIDDEN))}"


def test_the_fold_batch_step_imports_no_infrastructure():
    # The data plane's pure step: the loop hands it records and a read callable, nothing else.
    code = "import sys, streams.fold.batch\nprint(' '.join(sorted({n.split('.')[0] for n in sys.modules})))\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    loaded = set(out)
    assert "streams" in loaded
    assert loaded.isdisjoint(FORBIDDEN), f"streams.fold.batch imports {sorted(loaded & set(FORBIDDEN))}"
