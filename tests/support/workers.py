"""Worker processes in pytest: the shared wrapper (``streams.testing.workers``, the bench uses it
too) plus what only pytest needs, a module-scoped worker and wiping a data folder."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from streams.testing.workers import WorkerProcess, make_worker


@contextmanager
def shared_worker(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory, name: str, partitions: int = 4, **env: str
) -> Iterator[WorkerProcess]:
    """A started worker with its own topic, group and data folder, for a module-scoped fixture (one
    start-up, the slow part, serves every test of the module); it must stop cleanly at the end."""
    run = uuid.uuid4().hex[:8]
    data_dir = tmp_path_factory.mktemp(name)
    worker = make_worker(
        kafka_bootstrap, f"app-{name}-{run}", f"events-{name}-{run}", data_dir / "worker", data_dir / "worker.log",
        partitions, **env,
    ).start()  # fmt: skip
    try:
        yield worker
        assert worker.stop() == 0, worker.log_tail()
    finally:
        worker.kill()


def wipe(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()
