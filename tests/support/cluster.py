"""Several real worker processes in one consumer group on one topic, for the scale-out tests and
``make soak``: each its own data folder and port, all the same storefront signing key (a token one
worker issues verifies on every other).

*Settled* means what a client needs: every running worker answers ``/readyz`` 200; the partitions
they serve (their ``/metrics``: ``sessions_partition_restoring`` lists the served and restoring
partitions, 0 for served) are disjoint and cover the topic; and every worker routes a probe session
of every partition to a worker that serves it (the service read answers 404, not 503).

No pytest here: ``ops/soak.py`` uses it too.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from aiokafka.partitioner import murmur2
from prometheus_client.parser import text_string_to_metric_families

from streams.devkit.workers import WorkerProcess, make_worker
from tests.support.http import http_get

Families = dict[str, list[tuple[str, dict[str, str], float]]]


def partition_of(session_id: str, partitions: int) -> int:
    """The partition of a session, as every producer of the event topic computes it (murmur2)."""
    partition: int = (murmur2(session_id.encode()) & 0x7FFFFFFF) % partitions
    return partition


def session_in(partition: int, partitions: int) -> str:
    """A fresh session id that falls in ``partition``."""
    while True:
        candidate = str(uuid.uuid4())
        if partition_of(candidate, partitions) == partition:
            return candidate


def parse_metrics(text: str) -> Families:
    """Prometheus text -> family name -> samples (name, labels, value); raises when it does not parse."""
    return {
        family.name: [(s.name, dict(s.labels), s.value) for s in family.samples]
        for family in text_string_to_metric_families(text)
    }


def scrape(worker: WorkerProcess, timeout: float = 2.0) -> Families | None:
    """The worker's ``/metrics``, parsed; None when it does not answer 200."""
    try:
        response = http_get(f"{worker.url}/metrics", timeout=timeout)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    return parse_metrics(response.text)


def served_partitions(families: Families) -> set[int]:
    """The partitions a worker serves (restored and folded), from its parsed ``/metrics``."""
    return {
        int(labels["partition"])
        for name, labels, value in families.get("sessions_partition_restoring", [])
        if name == "sessions_partition_restoring" and value == 0
    }


def lags(families: Families) -> dict[int, float]:
    """The worker's ``sessions_consumer_lag`` gauge, per partition."""
    return {
        int(labels["partition"]): value
        for name, labels, value in families.get("sessions_consumer_lag", [])
        if name == "sessions_consumer_lag"
    }


@dataclass
class Cluster:
    workers: list[WorkerProcess]
    partitions: int
    bootstrap: str
    topic: str
    app_id: str
    signing_key: str
    probes: list[str] = field(default_factory=list)  # one session id per partition, never written

    def __post_init__(self) -> None:
        if not self.probes:
            self.probes = [session_in(p, self.partitions) for p in range(self.partitions)]

    @property
    def running(self) -> list[WorkerProcess]:
        return [w for w in self.workers if w.process is not None and w.process.poll() is None]

    def start(self, timeout: float = 180.0) -> float:
        """Start every worker (all at once, as an orchestrator would) and wait until the group has
        settled; the seconds it took."""
        started = time.monotonic()
        for worker in self.workers:
            worker.spawn()
        for worker in self.workers:
            worker.wait_ready(timeout)
        self.wait_settled(timeout - (time.monotonic() - started))
        return time.monotonic() - started

    def unsettled(self) -> str | None:
        """Why the running workers have not settled yet; None when they have."""
        running = self.running
        if not running:
            return "no worker runs"
        owners: dict[int, list[int]] = {}
        for worker in running:
            name = self.name(worker)
            try:
                ready = http_get(f"{worker.url}/readyz", timeout=2.0).status_code
            except httpx.HTTPError as exc:
                return f"{name} /readyz: {type(exc).__name__}"
            if ready != 200:
                return f"{name} /readyz {ready}"
            families = scrape(worker)
            if families is None:
                return f"{name} /metrics does not answer"
            for partition in served_partitions(families):
                owners.setdefault(partition, []).append(self.workers.index(worker) + 1)
        for partition in range(self.partitions):
            if len(owners.get(partition, [])) != 1:
                return f"partition {partition} served by workers {owners.get(partition, [])}"
        for worker in running:
            for partition, probe in enumerate(self.probes):
                try:
                    status = http_get(
                        f"{worker.url}/api/v1/sessions/{probe}", headers=worker.service_headers, timeout=5.0
                    ).status_code
                except httpx.HTTPError as exc:
                    return f"{self.name(worker)} read of partition {partition}: {type(exc).__name__}"
                if status != 404:
                    return f"{self.name(worker)} read of partition {partition}: {status}"
        return None

    def wait_settled(self, timeout: float = 180.0, also: Callable[[], str | None] | None = None) -> float:
        """Wait until :meth:`unsettled` (and ``also``, when given) say nothing; the seconds waited."""
        started = time.monotonic()
        reason: str | None = "not checked"
        while time.monotonic() - started < timeout:
            reason = self.unsettled() or (also() if also is not None else None)
            if reason is None:
                return time.monotonic() - started
            # Polling the workers. A settled round is about 27 requests and three /metrics parses:
            # every 0.1 s, the polling alone took half a core from the suites it measured.
            time.sleep(0.5)
        logs = "\n\n".join(f"--- {self.name(w)} ---\n{w.log_tail(30)}" for w in self.workers)
        raise AssertionError(f"the group did not settle within {timeout:.0f}s: {reason}\n{logs}")

    def lag(self) -> dict[int, float] | None:
        """Partition -> lag over the running workers; None when one does not answer /metrics."""
        total: dict[int, float] = {}
        for worker in self.running:
            families = scrape(worker)
            if families is None:
                return None
            for partition, behind in lags(families).items():
                total[partition] = total.get(partition, 0) + behind
        return total

    def lag_behind(self) -> str | None:
        """Why the lag gauge is not zero on every partition yet; None when it is."""
        total = self.lag()
        if total is None:
            return "a worker does not answer /metrics"
        missing = set(range(self.partitions)) - set(total)
        if missing:
            return f"no lag reported for partitions {sorted(missing)}"
        behind = {p: v for p, v in total.items() if v}
        return f"lag {behind}" if behind else None

    def name(self, worker: WorkerProcess) -> str:
        return f"w{self.workers.index(worker) + 1}"

    def stop(self) -> list[int | None]:
        """SIGTERM every running worker; their exit codes."""
        return [worker.stop() for worker in self.running]

    def kill(self) -> None:
        for worker in self.workers:
            worker.kill()


def make_cluster(
    bootstrap: str, base_dir: Path, workers: int = 3, partitions: int = 6, name: str = "cluster", **env: str
) -> Cluster:
    """``workers`` workers (not started) on a topic and group of their own, under ``base_dir``."""
    run = uuid.uuid4().hex[:8]
    app_id, topic = f"app-{name}-{run}", f"events-{name}-{run}"
    signing_key = env.pop("SESSIONS_SESSION_SIGNING_KEY", "") or secrets.token_hex(32)
    env["SESSIONS_SESSION_SIGNING_KEY"] = signing_key
    made = [
        make_worker(bootstrap, app_id, topic, base_dir / f"w{n}", base_dir / f"w{n}.log", partitions, **env)
        for n in range(1, workers + 1)
    ]
    return Cluster(made, partitions, bootstrap, topic, app_id, signing_key)
