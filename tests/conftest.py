"""Shared fixtures: the Kafka broker, unique names per test, worker processes on free ports.

Helpers that tests import live in ``tests/support/`` and, those the bench shares (worker processes,
event builders, the sample rules), in ``streams/devkit/``.

The broker comes from ``SESSIONS_TEST_BOOTSTRAP`` when set (``make test`` starts one), else from a
testcontainers Kafka container when a Docker engine answers, else from ``streams.devkit.broker`` (real Apache
Kafka started from its jars). Integration tests never skip for want of a broker.
"""

from __future__ import annotations

import os
import re
import signal
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from streams.devkit import broker as local_broker
from streams.devkit.workers import MASTER_KEYS, SPAWNED_LOGS, WorkerProcess, make_worker
from tests.support import service_worker as service
from tests.support.workers import TEST_WORKER_ENV, shared_worker

pytest_plugins = ["pytester"]  # tests/integration/test_leak_scan.py runs an inner pytest

KAFKA_IMAGE = "apache/kafka:4.1.1"

# --- parallel runs (pytest-xdist, ``--dist loadfile``) ----------------------------------------------

# The order files start in (figures from ``--durations`` of a full parallel run). xdist keeps two
# files on each process, the one running and the next: the longest start at once (one a process),
# as many short files wait behind them, and the next longest go to whichever process frees up first.
LONGEST_FIRST = [
    # 3:23 to 4:48 alone in four runs on the shared 2-core machine (load average 7 to 41), most of
    # it its brokers starting (20 to 50 s each under that load): one round of broker faults
    "tests/integration/test_broker_faults.py",
    "tests/integration/test_fault_suite.py",  # about 4-5 min: one suite of faults, two checks
    "tests/integration/test_openapi_fuzz.py",  # about 3-4 min
    "tests/integration/test_openapi_fuzz_trusted.py",  # about 2-3 min
]
THEN_LONGEST = [
    "tests/integration/test_rebuild.py",
    "tests/integration/test_fold_engine_faults.py",
    "tests/integration/test_paused_owner.py",
    "tests/integration/test_broker_outage.py",
]


def _xdist_index() -> int | None:
    name = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ... under xdist
    return int(name[2:]) if name.startswith("gw") else None


def pytest_configure(config: pytest.Config) -> None:
    # Each process hands out ports from a range of its own (1,000 ports, below the kernel's
    # ephemeral range): workers and brokers of two processes never draw the same free port.
    index = _xdist_index()
    low = 19_000 if index is None else 20_000 + 1_000 * (index % 12)
    local_broker.own_port_range(low, low + 999)
    # A run stopped with SIGTERM (a CI timeout, a kill of the process group) tears down as Ctrl-C
    # does: the fixtures stop the workers and brokers they started instead of leaving them running.
    signal.signal(signal.SIGTERM, _interrupted)


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    files = list(dict.fromkeys(item.nodeid.split("::")[0] for item in items))
    others = [f for f in files if f not in LONGEST_FIRST and f not in THEN_LONGEST]
    first = [f for f in LONGEST_FIRST if f in files]
    order = first + others[: len(first)] + [f for f in THEN_LONGEST if f in files] + others[len(first) :]
    rank = {path: i for i, path in enumerate(order)}
    items.sort(key=lambda item: rank[item.nodeid.split("::")[0]])  # stable: a file's tests keep their order


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


@pytest.fixture(scope="session")
def service_worker(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    """The one worker of this process for the files that only need "a worker" (tests/support/service_worker.py)."""
    rules = tmp_path_factory.mktemp("service-rules") / "rules.toml"
    rules.write_text(service.rules_text())
    with shared_worker(
        kafka_bootstrap, tmp_path_factory, "service", service.PARTITIONS, **service.settings(str(rules))
    ) as worker:
        yield worker


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Topic, app and group names no other test (or earlier run) uses."""
    test = "".join(c if c.isalnum() else "-" for c in request.node.name)[:40].strip("-")
    run = uuid.uuid4().hex[:8]

    def make(prefix: str) -> str:
        return f"{prefix}-{test}-{run}"

    return make


@pytest.fixture
def worker_factory(
    kafka_bootstrap: str, unique_name: Callable[[str], str], tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Builds workers that share one unique topic and app id (one consumer group) per test."""
    workers: list[WorkerProcess] = []
    topic = unique_name("events")
    app_id = unique_name("app")

    def make(name: str = "w1", partitions: int = 4, **extra_env: str) -> WorkerProcess:
        env = {**TEST_WORKER_ENV, **extra_env}
        worker = make_worker(
            kafka_bootstrap, app_id, topic, tmp_path / name, tmp_path / f"{name}.log", partitions, **env
        )
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        worker.kill()


# --- after the run: the workers' logs hold no secret and no personal data ---------------------------

# What must never reach a log: an e-mail address, a session token (a JWT), a service key.
LOG_LEAKS = {
    "e-mail address": re.compile(rb"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"),
    "session token": re.compile(rb"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),
    "service key": re.compile(rb"test-(?:service-key|only|all-but)-[a-z:-]*[0-9a-f]{16,}"),
}


def log_leaks(paths: Iterable[Path]) -> list[str]:
    """Every log of ``paths`` that holds one of ``LOG_LEAKS``: file, what, the line."""
    found = []
    for path in paths:
        if not path.is_file():
            continue
        text = path.read_bytes()
        for master_key in MASTER_KEYS.values():  # the tests' master keys (drawn at random)
            if master_key.encode() in text:
                found.append(f"{path}: a master key")
        for what, pattern in LOG_LEAKS.items():
            match = pattern.search(text)
            if match is not None:
                start = text.rfind(b"\n", 0, match.start()) + 1
                line = text[start : text.find(b"\n", match.end())][:300].decode(errors="replace")
                found.append(f"{path}: {what}: {line}")
    return found


_REMOTE_LEAKS = pytest.StashKey[list[str]]()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    """xdist's controller: keep what a parallel process found in its spawned logs (below)."""
    found = getattr(node, "workeroutput", {}).get("log_leaks", [])
    config: pytest.Config = node.config  # type: ignore[attr-defined]
    config.stash.setdefault(_REMOTE_LEAKS, []).extend(found)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A run fails when a process it spawned (workers, sessionctl) logged a secret or an e-mail.

    Under xdist each process scans the logs of what it spawned and hands its findings to the
    controller (``workeroutput``), which reports them all and sets the run's exit status: a
    process's own exit status would be ignored."""
    leaks = log_leaks(SPAWNED_LOGS)
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["log_leaks"] = leaks
        return
    leaks += session.config.stash.get(_REMOTE_LEAKS, [])
    if leaks:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("spawned processes (workers, sessionctl) leaked what must never be logged:", red=True)
            for leak in leaks[:20]:
                reporter.write_line(f"  {leak}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
