"""Processes the bench starts: workers, peers, the read load, py-spy. It stops only those.

Every process started here is registered; :func:`stop_all` (called on any exit of the harness)
ends whichever of them still run, by their pid, SIGTERM first and SIGKILL after a grace period.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
# A service key the bench's workers accept, sent with every read in case the service API
# requires one (SESSIONS_SERVICE_KEYS, scope sessions:read).
BENCH_SERVICE_KEY = "session-engine-bench-read-key-0001"
AUTHORIZATION = f"Bearer {BENCH_SERVICE_KEY}"
_STARTED: list[subprocess.Popen[bytes]] = []


def spawn(cmd: list[str], log_path: Path, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=dict(env) if env else None,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    _STARTED.append(proc)
    return proc


def terminate(proc: subprocess.Popen[bytes], grace: float = 30.0, sig: int = signal.SIGTERM) -> int | None:
    """Stop one process we started; returns its exit code (None if it had to be killed)."""
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(sig)
    try:
        return proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        return None


def stop_all() -> None:
    for proc in reversed(_STARTED):
        if proc.poll() is None:
            terminate(proc, grace=15.0)


def pids() -> list[int]:
    return [p.pid for p in _STARTED if p.poll() is None]


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _request(url: str) -> urllib.request.Request:
    return urllib.request.Request(url, headers={"Authorization": AUTHORIZATION})


def http_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(_request(url), timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError, TimeoutError):
        return None


def http_get(url: str, timeout: float = 5.0) -> tuple[int | None, bytes]:
    try:
        with urllib.request.urlopen(_request(url), timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()
    except (urllib.error.URLError, OSError, TimeoutError):
        return None, b""


@dataclass
class Worker:
    """``python -m streams worker`` with SESSIONS_* settings of its own."""

    bootstrap: str
    app_id: str
    topic: str
    data_dir: Path
    port: int
    log_path: Path
    partitions: int
    rules_file: Path
    proc: subprocess.Popen[bytes] | None = None
    started_ns: int = 0
    ready_ns: int = 0
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "SESSIONS_KAFKA_BOOTSTRAP": self.bootstrap,
            "SESSIONS_APP_ID": self.app_id,
            "SESSIONS_EVENTS_TOPIC": self.topic,
            "SESSIONS_DATA_DIR": str(self.data_dir),
            "SESSIONS_WEB_HOST": "127.0.0.1",
            "SESSIONS_WEB_PORT": str(self.port),
            "SESSIONS_PARTITIONS": str(self.partitions),
            "SESSIONS_RULES_FILE": str(self.rules_file),
            "SESSIONS_LOG_LEVEL": "warning",
            "SESSIONS_SERVICE_KEYS": f"{BENCH_SERVICE_KEY}=sessions:read",
            **self.extra_env,
        }

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.started_ns = time.time_ns()
        self.ready_ns = 0
        self.proc = spawn([sys.executable, "-m", "streams", "worker"], self.log_path, self.env())

    def wait_ready(self, timeout: float) -> float:
        """Seconds from start until /readyz answers 200 (partitions assigned, table recovered)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the worker exited with {self.proc.returncode}:\n{tail(self.log_path)}")
            if http_status(f"{self.url}/readyz", timeout=1.0) == 200:
                self.ready_ns = time.time_ns()
                return (self.ready_ns - self.started_ns) / 1e9
            time.sleep(0.05)
        raise TimeoutError(f"the worker was not ready within {timeout:.0f}s:\n{tail(self.log_path)}")

    def stop(self, grace: float = 60.0) -> int | None:
        if self.proc is None:
            return 0
        return terminate(self.proc, grace)


@dataclass
class Peer:
    """A peer process that writes a JSON result file when it has processed what it expects."""

    name: str
    cmd: list[str]
    result_path: Path
    log_path: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    started_ns: int = 0

    def start(self) -> None:
        self.result_path.unlink(missing_ok=True)
        self.started_ns = time.time_ns()
        self.proc = spawn(self.cmd, self.log_path, self.env)

    def wait(self, timeout: float) -> dict[str, Any]:
        """The result once the peer wrote it (the peer keeps running: :meth:`stop` it)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.result_path.exists():
                return dict(json.loads(self.result_path.read_text()))
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"peer {self.name} exited with {self.proc.returncode} before reporting:\n{tail(self.log_path)}"
                )
            time.sleep(0.05)
        raise TimeoutError(f"peer {self.name} did not finish within {timeout:.0f}s:\n{tail(self.log_path)}")

    def stop(self) -> int | None:
        return terminate(self.proc, grace=30.0) if self.proc is not None else 0


class PySpy:
    """``py-spy record`` of one pid, raw (collapsed stacks) output, stopped with SIGINT."""

    def __init__(self, binary: Path, pid: int, out: Path, log_path: Path, rate: int = 97) -> None:
        self.out = out
        self.proc = spawn(
            [
                str(binary),
                "record",
                "--pid",
                str(pid),
                "--rate",
                str(rate),
                "--format",
                "raw",
                "--function",
                "--nonblocking",
                "--duration",
                "1800",
                "--output",
                str(out),
            ],
            log_path,
        )

    def stop(self) -> bool:
        """True when py-spy wrote its output."""
        terminate(self.proc, grace=30.0, sig=signal.SIGINT)
        return self.out.exists() and self.out.stat().st_size > 0
