"""The "Running several workers" block of docs/operations.md, run as written: three ``sessionctl worker``
processes on the test broker, a write through one, reads through the two others, answered as the
block shows; then its own ``kill`` stops them.

The block takes the broker, the ports and the data folder from variables it reads itself
(KAFKA_BOOTSTRAP, PORT_1..3, DATA_ROOT); this test sets them, plus a topic and group of its own."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streams.devkit import broker as local_broker
from streams.devkit.paths import REPO
from streams.devkit.workers import SPAWNED_LOGS

pytestmark = pytest.mark.integration

MARKER = "# several-workers"


def readme_block() -> str:
    blocks = re.findall(r"^```sh\n(.*?)^```", (REPO / "docs" / "operations.md").read_text(), re.M | re.S)
    (block,) = [b for b in blocks if b.startswith(MARKER)]
    return block


def expected_outputs(block: str) -> list[re.Pattern[str]]:
    """The answers the block shows: each `# {...}` comment, "…" standing for anything."""
    shown = [line[2:] for line in block.splitlines() if line.startswith("# {")]
    return [re.compile(".*".join(re.escape(part) for part in text.split("…"))) for text in shown]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def stop(pid: int, grace: float = 60.0) -> None:
    """SIGTERM, then SIGKILL after ``grace``: one process this test started, by its pid."""
    if not alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)


def test_the_readme_runs_three_workers_and_any_of_them_answers(kafka_bootstrap, unique_name, tmp_path):
    block = readme_block()
    data_root = tmp_path / "workers"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONS_")}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",  # sessionctl of this venv
        KAFKA_BOOTSTRAP=kafka_bootstrap,
        DATA_ROOT=str(data_root),
        SESSIONS_APP_ID=unique_name("app"),
        SESSIONS_EVENTS_TOPIC=unique_name("events"),
        SESSIONS_PARTITIONS="6",
        SESSIONS_LOG_LEVEL="warning",
    )
    ports = {f"PORT_{i}": str(local_broker.free_port()) for i in (1, 2, 3)}
    assert len(set(ports.values())) == 3
    env.update(ports)

    # The three workers' logs reach the end-of-run leak scan (the block's own output is the answers
    # it shows a reader, session tokens included, as curl would print them).
    SPAWNED_LOGS.extend(data_root / f"{i}.log" for i in (1, 2, 3))
    shell = subprocess.Popen(
        ["bash", "-eu", "-o", "pipefail", "-c", block],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    pid_files = [data_root / f"{i}.pid" for i in (1, 2, 3)]
    try:
        try:
            out, err = shell.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            shell.kill()
            out, err = shell.communicate()
            pytest.fail(f"the block did not finish in 240 s:\n{out}\n{err}\n{logs(data_root)}")
        assert shell.returncode == 0, f"{out}\n{err}\n{logs(data_root)}"

        answers = [line for line in out.splitlines() if line.startswith("{")]
        patterns = expected_outputs(block)
        assert len(patterns) == 3 and len(answers) == len(patterns), out
        for pattern, answer in zip(patterns, answers, strict=True):
            assert pattern.fullmatch(answer), f"the block shows {pattern.pattern!r}, got {answer!r}"

        # The block's own `kill` stops the three (SIGTERM: a clean hand-over and exit).
        pids = [int(path.read_text()) for path in pid_files]
        deadline = time.monotonic() + 60
        while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(alive(pid) for pid in pids), logs(data_root)
    finally:
        for path in pid_files:
            if path.exists():
                stop(int(path.read_text()))


def logs(data_root: Path) -> str:
    parts = []
    for log in sorted(data_root.glob("*.log")):
        parts.append(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-40:]))
    return "\n".join(parts)
