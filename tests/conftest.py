"""Shared fixtures: the Kafka broker, unique names per test, worker processes on free ports.

The broker comes from ``SESSIONS_TEST_BOOTSTRAP`` when set (``make test`` starts one), else from a
testcontainers Kafka container when a Docker engine answers, else from ``streams.kafka.broker`` (real Apache
Kafka started from its jars). Integration tests never skip for want of a broker.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from streams.kafka import broker as local_broker

REPO = Path(__file__).resolve().parent.parent

KAFKA_IMAGE = "apache/kafka:4.1.1"


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:  # noqa: BLE001 - no engine, no socket, no permission: all mean "no Docker"
        return False
    return True


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("SESSIONS_TEST_BOOTSTRAP")
    if given:
        yield given
        return
    if _docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer(KAFKA_IMAGE).with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    data_dir = tmp_path_factory.mktemp("kafka")
    bootstrap = local_broker.start(data_dir, local_broker.free_port(), quiet=True)
    try:
        yield bootstrap
    finally:
        local_broker.stop(data_dir, quiet=True)


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Topic, app and group names no other test (or earlier run) uses."""
    test = "".join(c if c.isalnum() else "-" for c in request.node.name)[:40].strip("-")
    run = uuid.uuid4().hex[:8]

    def make(prefix: str) -> str:
        return f"{prefix}-{test}-{run}"

    return make


@dataclass
class WorkerProcess:
    env: dict[str, str]
    data_dir: Path
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_timeout: float = 90.0) -> WorkerProcess:
        assert self.process is None or self.process.poll() is not None, "already running"
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streams", "worker"],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + ready_timeout
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise AssertionError(f"worker exited with {self.process.returncode}:\n{self.log_tail()}")
                try:
                    if client.get(f"{self.url}/readyz").status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise AssertionError(f"worker not ready within {ready_timeout}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, as an orchestrator would; waits for a clean exit."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"worker ignored SIGTERM for {timeout}s:\n{self.log_tail()}") from None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def make_worker(
    kafka_bootstrap: str,
    app_id: str,
    topic: str,
    data_dir: Path,
    log_path: Path,
    partitions: int = 4,
    **extra_env: str,
) -> WorkerProcess:
    """A worker (not yet started) on a free port with its own data folder."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = local_broker.free_port()
    env = {
        **os.environ,
        "SESSIONS_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "SESSIONS_APP_ID": app_id,
        "SESSIONS_EVENTS_TOPIC": topic,
        "SESSIONS_DATA_DIR": str(data_dir),
        "SESSIONS_WEB_HOST": "127.0.0.1",
        "SESSIONS_WEB_PORT": str(port),
        "SESSIONS_PARTITIONS": str(partitions),
        "SESSIONS_LOG_LEVEL": "warning",
        **extra_env,
    }
    return WorkerProcess(env=env, data_dir=data_dir, port=port, log_path=log_path)


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


@pytest.fixture
def worker_factory(
    kafka_bootstrap: str, unique_name: Callable[[str], str], tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Builds workers that share one unique topic and app id (one consumer group) per test."""
    workers: list[WorkerProcess] = []
    topic = unique_name("events")
    app_id = unique_name("app")

    def make(name: str = "w1", partitions: int = 4, **extra_env: str) -> WorkerProcess:
        worker = make_worker(
            kafka_bootstrap, app_id, topic, tmp_path / name, tmp_path / f"{name}.log", partitions, **extra_env
        )
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        worker.kill()


def wipe(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()
