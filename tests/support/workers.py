"""Worker processes for tests: a real ``python -m streams worker`` on a free port, its own data."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from streams.kafka import broker as local_broker

REPO = Path(__file__).resolve().parents[2]

__all__ = ["REPO", "WorkerProcess", "local_broker", "make_worker", "shared_worker", "wipe"]


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


def wipe(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()
