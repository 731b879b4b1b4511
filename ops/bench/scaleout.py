"""Issue 10's figures: three workers in one group on the pre-loaded topic.

- Routing cost: service reads sent to worker 1, one at a time over keep-alive, split by whether
  worker 1 owns the session's partition (answered from its store) or forwards it to the owner.
- Failover: SIGKILL one worker once every standby copy has caught up; the time until every
  session of its partitions is read with 200 again through another worker, with standby replicas
  (SESSIONS_STANDBY_REPLICAS=1) and, in a second group on fresh data folders, without (0).
  The group notices a dead static member only after its session timeout (``SESSION_TIMEOUT_S``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import httpx
from aiokafka.partitioner import murmur2
from load import summarize_ms
from prometheus_client.parser import text_string_to_metric_families

from streams.devkit.paths import SAMPLE_RULES_FILE
from streams.devkit.workers import WorkerProcess, make_worker

if TYPE_CHECKING:
    from phases import Bench

WORKERS = 3
SESSION_TIMEOUT_S = 6.0
ROUTED_READS = 600  # measured, after as many warm-up reads
FAILOVER_SESSIONS = 300  # of the killed worker's partitions, polled until all answer 200


def gauges(worker: WorkerProcess) -> dict[str, dict[str, float]]:
    """Per metric, per `partition` label ("" without one): the scrape of one worker."""
    found: dict[str, dict[str, float]] = {}
    text = httpx.get(f"{worker.url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, {})[sample.labels.get("partition", "")] = sample.value
    return found


def owned(worker: WorkerProcess) -> set[int]:
    return {int(p) for p in gauges(worker).get("sessions_consumer_lag", {})}


def settle(workers: list[WorkerProcess], partitions: int, standbys: bool, timeout: float) -> None:
    """Every partition owned once, folded to the end, and (with standbys) every copy caught up."""
    deadline = time.monotonic() + timeout
    while True:
        scraped = [gauges(w) for w in workers]
        lags = [g.get("sessions_consumer_lag", {}) for g in scraped]
        owned_count = sum(len(lag) for lag in lags)
        behind = sum(sum(lag.values()) for lag in lags)
        standby_behind = sum(sum(g.get("sessions_standby_lag", {}).values()) for g in scraped)
        standby_count = sum(len(g.get("sessions_standby_lag", {})) for g in scraped)
        ready = owned_count == partitions and not behind and not standby_behind
        if ready and (not standbys or standby_count == partitions):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"three workers did not settle: owned {owned_count}, lag {behind}, standby {standby_count}"
            )
        time.sleep(0.5)


@contextmanager
def group(bench: Bench, name: str, standby_replicas: int) -> Iterator[list[WorkerProcess]]:
    app_id = f"bench-{name}-{bench.run_id}"
    workers = [
        make_worker(
            bench.bootstrap,
            app_id,
            bench.topic,
            bench.scratch / f"{name}-{n}",
            bench.logs / f"{name}-{n}.log",
            bench.config.partitions,
            SESSIONS_RULES_FILE=str(SAMPLE_RULES_FILE),
            SESSIONS_STANDBY_REPLICAS=str(standby_replicas),
            SESSIONS_KAFKA_SESSION_TIMEOUT_S=str(SESSION_TIMEOUT_S),
        )
        for n in range(1, WORKERS + 1)
    ]
    try:
        for worker in workers:
            worker.spawn()
        for worker in workers:
            worker.wait_ready(bench.config.phase_timeout)
        settle(workers, bench.config.partitions, standby_replicas > 0, bench.config.phase_timeout)
        yield workers
    finally:
        for worker in workers:
            worker.stop()


def partition_of(session: str, partitions: int) -> int:
    return (murmur2(session.encode()) & 0x7FFFFFFF) % partitions


def routing_cost(bench: Bench, workers: list[WorkerProcess]) -> dict[str, Any]:
    partitions = bench.config.partitions
    mine = owned(workers[0])
    sessions = sorted(bench.counts_a)
    local = [s for s in sessions if partition_of(s, partitions) in mine]
    remote = [s for s in sessions if partition_of(s, partitions) not in mine]
    timings: dict[str, list[int]] = {"owner": [], "forwarded": []}
    statuses: dict[str, int] = {}
    with httpx.Client(base_url=workers[0].url, headers=workers[0].service_headers, timeout=15) as client:
        for index in range(2 * ROUTED_READS):
            kind, pool = ("owner", local) if index % 2 == 0 else ("forwarded", remote)
            session = pool[(index // 2) % len(pool)]
            began = time.perf_counter_ns()
            response = client.get(f"/api/v1/sessions/{session}")
            spent = time.perf_counter_ns() - began
            statuses[str(response.status_code)] = statuses.get(str(response.status_code), 0) + 1
            if index >= ROUTED_READS:  # the first half warms both paths up
                timings[kind].append(spent)
    return {
        "owner": summarize_ms(timings["owner"]),
        "forwarded": summarize_ms(timings["forwarded"]),
        "statuses": statuses,
        "owned_partitions_of_worker_1": sorted(mine),
    }


def failover(bench: Bench, workers: list[WorkerProcess]) -> dict[str, Any]:
    """SIGKILL the last worker; seconds until every sampled session of its partitions reads 200
    through the first one (503 meanwhile is expected; anything else is counted)."""
    partitions = bench.config.partitions
    victim, survivor = workers[-1], workers[0]
    dying = owned(victim)
    sessions = [s for s in sorted(bench.counts_a) if partition_of(s, partitions) in dying][:FAILOVER_SESSIONS]
    restored_before = sum(gauges(survivor).get("sessions_changelog_restored_records_total", {}).values())
    restored_before += sum(gauges(workers[1]).get("sessions_changelog_restored_records_total", {}).values())
    statuses: dict[str, int] = {}
    victim.kill()
    killed = time.monotonic()
    pending = set(sessions)
    with httpx.Client(base_url=survivor.url, headers=survivor.service_headers, timeout=15) as client:
        while pending:
            for session in sorted(pending):
                status = client.get(f"/api/v1/sessions/{session}").status_code
                statuses[str(status)] = statuses.get(str(status), 0) + 1
                if status == 200:
                    pending.discard(session)
            if time.monotonic() - killed > bench.config.phase_timeout:
                raise RuntimeError(
                    f"{len(pending)} sessions not served {bench.config.phase_timeout:.0f}s after the kill"
                )
    seconds = time.monotonic() - killed
    restored_after = sum(gauges(survivor).get("sessions_changelog_restored_records_total", {}).values())
    restored_after += sum(gauges(workers[1]).get("sessions_changelog_restored_records_total", {}).values())
    return {
        "seconds": round(seconds, 2),
        "over_session_timeout_s": round(seconds - SESSION_TIMEOUT_S, 2),
        "partitions_moved": len(dying),
        "sessions_polled": len(sessions),
        "statuses": statuses,
        "changelog_records_restored": int(restored_after - restored_before),
    }


def scale_out(bench: Bench) -> None:
    meter = bench.meter()
    try:
        with group(bench, "scale", standby_replicas=1) as workers:
            routing = routing_cost(bench, workers)
            with_standbys = failover(bench, workers)
        with group(bench, "nostandby", standby_replicas=0) as workers:
            without_standbys = failover(bench, workers)
    finally:
        bench.metered("scale-out", meter)
    bench.results["scale_out"] = {
        "workers": WORKERS,
        "session_timeout_s": SESSION_TIMEOUT_S,
        "routing": routing,
        "failover_with_standbys": with_standbys,
        "failover_without_standbys": without_standbys,
    }
    bad = {k: v for k, v in routing["statuses"].items() if k != "200"}
    odd = {
        name: {k: v for k, v in result["statuses"].items() if k not in ("200", "503")}
        for name, result in (("with", with_standbys), ("without", without_standbys))
    }
    bench.checks["scale_out_answers"] = {
        "routing_non_200": bad,
        "failover_other_than_200_or_503": odd,
        "ok": not bad and not any(odd.values()),
    }
