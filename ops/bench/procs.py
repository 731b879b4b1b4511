"""Processes the bench starts: workers, peers, the read load, py-spy. It stops only those.

Workers are the tests' wrapper (``streams.devkit.workers``). Every process started here is
registered (workers through ``on_spawn=register``); :func:`stop_all` (called on any exit of the harness)
ends whichever of them still run, by their pid, SIGTERM first and SIGKILL after a grace period.
"""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.devkit import workers
from streams.devkit.workers import tail, terminate

__all__ = ["tail", "terminate"]
# A service key the bench's workers accept (SESSIONS_SERVICE_KEYS, scope sessions:read), sent with
# every read of the service API; generated per run, never a fixed key.
BENCH_SERVICE_KEY = "bench-read-key-" + secrets.token_hex(16)
AUTHORIZATION = f"Bearer {BENCH_SERVICE_KEY}"
_STARTED: list[subprocess.Popen[bytes]] = []


def register(proc: subprocess.Popen[bytes]) -> None:
    """Remember a process we started, for :func:`stop_all`."""
    _STARTED.append(proc)


def spawn(cmd: list[str], log_path: Path, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    proc = workers.spawn(cmd, log_path, env)
    register(proc)
    return proc


def stop_all() -> None:
    for proc in reversed(_STARTED):
        if proc.poll() is None:
            terminate(proc, grace=15.0)


def pids() -> list[int]:
    return [p.pid for p in _STARTED if p.poll() is None]


def _request(url: str) -> urllib.request.Request:
    return urllib.request.Request(url, headers={"Authorization": AUTHORIZATION})


def http_get(url: str, timeout: float = 5.0) -> tuple[int | None, bytes]:
    try:
        with urllib.request.urlopen(_request(url), timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()
    except (urllib.error.URLError, OSError, TimeoutError):
        return None, b""


def http_response(url: str, timeout: float = 5.0) -> tuple[int | None, dict[str, str], bytes]:
    """Status, headers (names in lower case) and body of a GET with the bench's service key."""
    try:
        with urllib.request.urlopen(_request(url), timeout=timeout) as response:
            return int(response.status), {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), {k.lower(): v for k, v in exc.headers.items()}, exc.read()
    except (urllib.error.URLError, OSError, TimeoutError):
        return None, {}, b""


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
