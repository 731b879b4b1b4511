"""Facts about the machine and the software under test, and how busy the machine was meanwhile."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from projections import native
from streams.devkit.paths import REPO

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gib() -> float | None:
    try:
        match = re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text())
    except OSError:
        return None
    return round(int(match.group(1)) / 1024 / 1024, 1) if match else None


def _run(cmd: list[str]) -> str:
    try:
        result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (result.stdout or result.stderr).strip()


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def facts(kafka_version: str, quix_python: Path | None) -> dict[str, Any]:
    java = _run(["java", "-version"]).splitlines()
    # --no-optional-locks: reading the state must not touch the index of a shared checkout.
    dirty = _run(["git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no"])
    packages: dict[str, str | None] = {
        name: _version(name)
        for name in ("faust-streaming", "aiokafka", "confluent-kafka", "rocksdict", "msgspec", "orjson", "py-spy")
    }
    facts: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "memory_gib": _mem_total_gib(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "kafka": kafka_version,
        "java": java[0] if java else None,
        "git_commit": _run(["git", "rev-parse", "HEAD"]) or None,
        # The build of the fold the worker and the micro phase run (`make compile`); the peers run
        # the pure-Python one (phases.py: what a Quix or faust user writes).
        "fold_build": native.describe(),
        "git_dirty_files": len(dirty.splitlines()) if dirty else 0,
        "loadavg_at_start": os.getloadavg(),
        "packages": packages,
    }
    if quix_python is not None and quix_python.exists():
        out = _run(
            [
                str(quix_python),
                "-c",
                "import importlib.metadata as m;"
                "print(m.version('quixstreams'), m.version('confluent-kafka'), m.version('rocksdict'))",
            ]
        ).split()
        if len(out) == 3:
            packages["quixstreams"] = out[0]
            packages["confluent-kafka (quix venv)"] = out[1]
            packages["rocksdict (quix venv)"] = out[2]
    return facts


def _busy_ticks() -> int:
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values[:8]) - idle


def _process_ticks(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0
    return int(stat[11]) + int(stat[12])  # utime + stime (all threads)


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a live process has used so far (0 when it is gone)."""
    return _process_ticks(pid) / CLOCK_TICKS


@dataclass
class CpuMeter:
    """CPU used during a phase: by the bench's processes, and by everything else on the machine.

    "Foreign" CPU (other people's tests, builds) makes figures noisy; the report shows it per phase.
    The bench's share is this process (with the children it has reaped) plus the live processes it
    started; a child that ends during the phase moves its whole time into this process's children
    time, so what it had used before the phase is taken off again.
    """

    started_wall: float
    busy0: int
    self0: int
    ours0: dict[int, int]

    @staticmethod
    def _self_ticks() -> int:
        times = os.times()
        total = times.user + times.system + times.children_user + times.children_system
        return round(total * CLOCK_TICKS)

    @classmethod
    def start(cls, pids: list[int]) -> CpuMeter:
        return cls(time.monotonic(), _busy_ticks(), cls._self_ticks(), {pid: _process_ticks(pid) for pid in pids})

    def stop(self, pids: list[int]) -> dict[str, float]:
        wall = max(1e-6, time.monotonic() - self.started_wall)
        busy = _busy_ticks() - self.busy0
        ours = self._self_ticks() - self.self0
        for pid in set(pids) | set(self.ours0):
            now = _process_ticks(pid)
            ours += now - self.ours0.get(pid, 0) if now else -self.ours0.get(pid, 0)
        ours = max(0, ours)
        return {
            "seconds": round(wall, 2),
            "machine_cpus_busy": round(busy / CLOCK_TICKS / wall, 2),
            "bench_cpus_busy": round(ours / CLOCK_TICKS / wall, 2),
            "foreign_cpus_busy": round(max(0.0, (busy - ours) / CLOCK_TICKS / wall), 2),
        }


def busy_by_second(samples: list[tuple[float, float]]) -> list[float]:
    """CPUs busy in each whole second from the first sample, from (wall s, CPU s used so far)
    samples in time order. A second is closed by the first sample at or after its end: the CPU used
    since the sample that closed the one before, over the wall time between them; a gap in the
    samples gives each second it spans the gap's average. An unfinished last second is left out."""
    if len(samples) < 2:
        return []
    start = samples[0][0]
    out: list[float] = []
    second = 0
    first = samples[0]
    for wall, cpu in samples[1:]:
        if wall - start < second + 1:
            continue
        elapsed = wall - first[0]
        busy = round((cpu - first[1]) / elapsed, 2) if elapsed > 0 else 0.0
        reached = int(wall - start)  # whole seconds now behind
        out.extend([busy] * (reached - second))
        second, first = reached, (wall, cpu)
    return out


class CpuTimeline:
    """A process's CPU, sampled from /proc every ``step_s`` on a thread of its own: what it used
    each second of a phase (a stall that is not CPU shows as a second the process was idle)."""

    def __init__(self, pid: int, step_s: float = 0.1) -> None:
        self.pid = pid
        self.step_s = step_s
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-cpu-timeline", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), process_cpu_seconds(self.pid)))
            self._stop.wait(self.step_s)

    def start(self) -> CpuTimeline:
        self._thread.start()
        return self

    def stop(self) -> list[float]:
        self._stop.set()
        self._thread.join(5.0)
        return busy_by_second(self.samples)
