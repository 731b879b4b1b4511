"""Worker processes in pytest: the shared wrapper (``streams.devkit.workers``, the bench uses it
too) plus what only pytest needs: a module-scoped worker (and fixtures for it and its HTTP
clients) and wiping a data folder."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from streams.devkit.workers import WorkerProcess, make_worker
from tests.support.http import HttpClient, http_client

# Every test worker's defaults. A 3 s group session timeout (the test broker allows it: see
# ``group.min.session.timeout.ms`` in streams/devkit/broker.py) instead of 10 s: a worker a test
# kills or stops (static members do not leave the group) gives its partitions up 7 s sooner.
# Heartbeats go every second, so a member is evicted only after three missed ones.
TEST_WORKER_ENV = {"SESSIONS_KAFKA_SESSION_TIMEOUT_S": "3"}
# A module-scoped worker is never killed, paused nor restarted by its tests: a short timeout buys it
# nothing, while under a full parallel run (test processes, workers, brokers and a browser on two
# cores) three missed heartbeats happen, and its group then evicts it and moves its partitions
# (seen: 503s in the browser tier's fixture with 4 test processes).
SHARED_WORKER_ENV = {"SESSIONS_KAFKA_SESSION_TIMEOUT_S": "15"}


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
        partitions, **{**SHARED_WORKER_ENV, **env},
    )  # fmt: skip
    try:
        worker.start()  # a worker that never gets ready is killed too, not left running
        yield worker
        assert worker.stop() == 0, worker.log_tail()
    finally:
        worker.kill()


def wipe(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()


def module_worker(name: str, partitions: int = 4, **env: str) -> Any:
    """A module-scoped ``worker`` fixture: ``worker = module_worker("storefront", SESSIONS_...=...)``."""

    @pytest.fixture(scope="module")
    def worker(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
        with shared_worker(kafka_bootstrap, tmp_path_factory, name, partitions, **env) as process:
            yield process

    return worker


def worker_client(**headers: str) -> Any:
    """A fixture of an HTTP client of the module's ``worker`` (with its own cookie jar), closed after
    each test: ``browser = worker_client()``, ``service = worker_client(Authorization=...)``."""

    @pytest.fixture
    def client(worker: WorkerProcess) -> Iterator[HttpClient]:
        with http_client(base_url=worker.url, timeout=15.0, headers=headers) as http:
            yield http

    return client
