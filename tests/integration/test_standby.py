"""Standby replicas on real workers: each partition is kept warm on the other worker, a service read
may take that copy (marked with its staleness), and when an owner is SIGKILLed its partitions are
served again by the standby holder from its warm store, with no 404 meanwhile."""

from __future__ import annotations

import time

import pytest
from aiokafka.partitioner import murmur2
from prometheus_client.parser import text_string_to_metric_families

from streams.devkit.events import new_session_id, page_view
from tests.support.http import http_client, http_get
from tests.support.sessions import public_has, wait_for_session

pytestmark = pytest.mark.integration

PARTITIONS = 4


def partition_of(sid: str) -> int:
    return (murmur2(sid.encode()) & 0x7FFFFFFF) % PARTITIONS  # Kafka's default partitioner


SESSIONS = 40
FAST_FAILOVER = {"SESSIONS_STANDBY_REPLICAS": "1"}  # with the tests' 3 s session timeout


def gauges(worker) -> dict[str, dict[tuple, float]]:
    text = http_get(f"{worker.url}/metrics", timeout=10).text
    found: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return found


def total(found: dict, name: str) -> float:
    return sum(found.get(name, {}).values())


def wait_settled(workers, timeout: float = 90.0) -> None:
    """Every partition owned by one worker and kept warm by the other, every standby caught up."""
    deadline = time.monotonic() + timeout
    while True:
        scraped = [gauges(w) for w in workers]
        owned = [total(g, "sessions_owned_partitions") for g in scraped]
        standby = [total(g, "sessions_standby_partitions") for g in scraped]
        # A partition's lag is known once its tail fetched the changelog's end: until then it has no
        # sample, which must not read as "caught up".
        lags = [g.get("sessions_standby_lag", {}) for g in scraped]
        behind = [sum(lag.values()) for lag in lags]
        known = [len(lag) for lag in lags]
        if sum(owned) == PARTITIONS and all(owned) and standby == owned[::-1] == known and not any(behind):
            return
        assert time.monotonic() < deadline, (
            f"not settled: owned {owned}, standby {standby}, lags known {known}: {behind}"
        )
        time.sleep(0.2)


def test_a_standby_keeps_each_partition_warm_and_takes_over_when_its_owner_dies(worker_factory):
    first = worker_factory("w1", PARTITIONS, **FAST_FAILOVER).start()
    second = worker_factory("w2", PARTITIONS, **FAST_FAILOVER).start()
    sids = [new_session_id() for _ in range(SESSIONS)]
    with http_client(base_url=first.url, timeout=15, headers=first.service_headers) as service:
        for n, sid in enumerate(sids):
            batch = [page_view(sid, f"https://shop.example/p/{n}?color=red", 0), page_view(sid, "https://s/?m=1", 1)]
            assert service.post("/api/events", json=batch).status_code == 202
        expected = {sid: wait_for_session(service, sid, public_has("m"))[0] for sid in sids}
    wait_settled([first, second])

    # A stale read on the worker that keeps the standby: its copy, and how stale it may be.
    kept_warm = {int(dict(labels)["partition"]) for labels in gauges(second)["sessions_standby_lag"]}
    assert len(kept_warm) == PARTITIONS // 2
    warm_sids = [sid for sid in sids if partition_of(sid) in kept_warm]
    assert warm_sids
    with http_client(base_url=second.url, timeout=15, headers=second.service_headers) as service:
        forwarded_before = total(gauges(second), "sessions_forwarded_requests_total")
        for sid in sids:
            answer = service.get(f"/api/v1/sessions/{sid}", headers={"X-Session-Allow-Stale": "true"})
            assert answer.status_code == 200 and answer.json() == expected[sid], answer.text
            staleness = int(answer.headers["X-Session-Staleness-Ms"])
            assert staleness >= 0
            if partition_of(sid) not in kept_warm:
                assert staleness == 0  # it owns the session: the current copy
        # Every one answered here: the standby copies, not the owner, served the others.
        assert total(gauges(second), "sessions_forwarded_requests_total") == forwarded_before
        for sid in warm_sids:  # without the header a read is the owner's answer, never a standby's
            plain = service.get(f"/api/v1/sessions/{sid}")
            assert "X-Session-Staleness-Ms" not in plain.headers and plain.json() == expected[sid]
        assert total(gauges(second), "sessions_forwarded_requests_total") == forwarded_before + len(warm_sids)

    restored_before = gauges(second).get("sessions_changelog_restored_records_total", {})
    first.kill()  # SIGKILL: no goodbye to the group, which notices after the session timeout
    seen: dict[int, int] = {}
    with http_client(base_url=second.url, timeout=15, headers=second.service_headers) as service:
        deadline = time.monotonic() + 60
        while True:
            statuses = {}
            for sid in sids:
                answer = service.get(f"/api/v1/sessions/{sid}")
                statuses[sid] = answer.status_code
                seen[answer.status_code] = seen.get(answer.status_code, 0) + 1
                assert answer.status_code in (200, 503), (sid, answer.status_code, answer.text)
                if answer.status_code == 503:
                    assert answer.headers["Retry-After"]
                else:
                    assert answer.json() == expected[sid]
            if set(statuses.values()) == {200}:
                break
            assert time.monotonic() < deadline, f"not served again: {seen}\n{second.log_tail()}"
    after = gauges(second)
    assert total(after, "sessions_owned_partitions") == PARTITIONS
    # The promoted partitions were warm: nothing (or next to nothing) had to be restored for them.
    restored_after = after.get("sessions_changelog_restored_records_total", {})
    restored = sum(restored_after.values()) - sum(restored_before.values())
    assert restored == 0, (restored_before, restored_after)
