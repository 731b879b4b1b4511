"""Worker processes for the tests and the bench: a real ``python -m streams worker`` on a free port,
with SESSIONS_* settings and a data folder of its own, its output in a log file.

Readiness is polled with ``urllib``: the standard library only, whichever environment runs it.
Every process is started by :func:`spawn`; the bench passes ``on_spawn`` to register what it
started, so that it can end exactly those.

Every worker made here accepts :data:`TEST_SERVICE_KEY` (all scopes; generated per process, never
a fixed key) besides any keys the caller configures; :data:`SERVICE_HEADERS` sends it.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from streams.config.settings import SCOPES
from streams.devkit import broker as local_broker
from streams.devkit.paths import REPO
from streams.privacy.cipher import MasterKeys

TEST_SERVICE_KEY = "test-service-key-" + secrets.token_hex(16)
SERVICE_HEADERS = {"Authorization": f"Bearer {TEST_SERVICE_KEY}"}


# Every log file a process spawned here wrote to (the tests scan them at the end of a run).
SPAWNED_LOGS: list[Path] = []


MASTER_KEYS: dict[str, str] = {}  # app id -> its master key (tests scan logs for them)


def spawn(cmd: list[str], log_path: Path, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """``cmd`` in the checkout, stdout and stderr appended to ``log_path``, no stdin."""
    if log_path not in SPAWNED_LOGS:
        SPAWNED_LOGS.append(log_path)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            cmd,
            cwd=REPO,
            env=dict(env) if env is not None else None,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def terminate(proc: subprocess.Popen[bytes], grace: float = 30.0, sig: int = signal.SIGTERM) -> int | None:
    """Stop one process we started (``sig``, then SIGKILL after ``grace``); its exit code, None if killed."""
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(sig)
    try:
        return proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        return None


def tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def http_status(url: str, headers: Mapping[str, str] | None = None, timeout: float = 2.0) -> int | None:
    """The status of ``GET url``; None when nothing answers."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=dict(headers or {})), timeout=timeout) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError, TimeoutError):
        return None


@dataclass
class WorkerProcess:
    env: dict[str, str]
    data_dir: Path
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    on_spawn: Callable[[subprocess.Popen[bytes]], None] | None = None
    started_ns: int = 0
    ready_ns: int = 0
    service_key: str = TEST_SERVICE_KEY  # has every scope

    @property
    def service_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.service_key}"}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spawn(self) -> WorkerProcess:
        """Start the process (not waiting for it to be ready)."""
        assert self.process is None or self.process.poll() is not None, "already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.started_ns, self.ready_ns = time.time_ns(), 0
        self.process = spawn([sys.executable, "-m", "streams", "worker"], self.log_path, self.env)
        if self.on_spawn is not None:
            self.on_spawn(self.process)
        return self

    def wait_ready(self, timeout: float = 90.0) -> float:
        """Seconds from start until ``/readyz`` answers 200 (partitions assigned, state caught up)."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited with {self.process.returncode}:\n{self.log_tail()}")
            if http_status(f"{self.url}/readyz", timeout=1.0) == 200:
                self.ready_ns = time.time_ns()
                return (self.ready_ns - self.started_ns) / 1e9
            time.sleep(0.05)
        raise AssertionError(f"worker not ready within {timeout:.0f}s:\n{self.log_tail()}")

    def start(self, ready_timeout: float = 90.0) -> WorkerProcess:
        """Start the process and wait until it is ready."""
        self.spawn().wait_ready(ready_timeout)
        return self

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM, as an orchestrator would; the exit code (None when it had to be killed)."""
        return terminate(self.process, timeout) if self.process is not None else 0

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 60) -> str:
        return tail(self.log_path, lines)


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
    # One master key per app, drawn at random: every worker of a test's deployment shares it (as
    # every worker of a real one must), and no key is written in the code.
    env.setdefault("SESSIONS_MASTER_KEY", MASTER_KEYS.setdefault(app_id, MasterKeys.generate()))
    # The test key (every scope) besides the caller's keys.
    every_scope = " ".join(sorted(SCOPES))
    env["SESSIONS_SERVICE_KEYS"] = ";".join(
        part for part in (extra_env.get("SESSIONS_SERVICE_KEYS", ""), f"{TEST_SERVICE_KEY}={every_scope}") if part
    )
    return WorkerProcess(env=env, data_dir=data_dir, port=port, log_path=log_path)
