"""The endpoints the explorer needs, against two real workers of one group, and ``sessionctl
simulate`` against a real worker.

- ``GET /api/v1/sessions`` (recently active) and ``GET /api/v1/operations`` gather every worker's
  part: asked on either worker, both answers hold the sessions and partitions of both.
- ``GET /api/v1/sessions/{id}/segment``: the segment of the session, from its owner.
- ``sessionctl simulate``: a short seeded run ends with 0 errors and its summary, and the same seed
  sends the same traffic.
"""

from __future__ import annotations

import json
import os

import pytest

from streams.devkit.events import new_session_id, page_view
from streams.devkit.paths import SAMPLE_RULES_FILE
from tests.support.cli import sessionctl
from tests.support.http import http_client, http_get
from tests.support.sessions import public_has, wait_for_session
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

PARTITIONS = 4


def test_recent_sessions_and_operations_gather_every_worker(worker_factory):
    first = worker_factory("w1", PARTITIONS, SESSIONS_RULES_FILE=str(SAMPLE_RULES_FILE)).start()
    second = worker_factory("w2", PARTITIONS, SESSIONS_RULES_FILE=str(SAMPLE_RULES_FILE)).start()

    def operations(worker) -> dict | None:
        answer = http_get(f"{worker.url}/api/v1/operations", params={"seconds": 60}, headers=worker.service_headers)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        owned = [w.get("partitions", []) for w in body["workers"] if w["reachable"]]
        return body if len(owned) == 2 and all(owned) and sum(len(p) for p in owned) == PARTITIONS else None

    both = wait_for("two workers, each owning partitions", lambda: operations(first) and operations(second))
    # Lag is known once a partition's high watermark was fetched: never a partition nobody serves.
    assert {int(p) for p in both["lag"]} <= set(range(PARTITIONS))
    assert len(both["folded"]) == 60 and len(both["deadLetters"]) == 60

    sids = [new_session_id() for _ in range(12)]
    with http_client(base_url=first.url, timeout=15, headers=first.service_headers) as service:
        for sid in sids:
            assert service.post("/api/events", json=page_view(sid, "https://shop.example/?done=1")).status_code == 202
        for sid in sids:
            wait_for_session(service, sid, public_has("done"))
        # Both workers folded some of them (4 partitions, 12 sessions), yet either lists them all.
        for worker in (first, second):
            answer = http_get(f"{worker.url}/api/v1/sessions", params={"limit": 200}, headers=worker.service_headers)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["unreachable"] == []
            listed = [s["id"] for s in body["sessions"]]
            assert set(sids) <= set(listed), worker.url
            times = [s["lastFoldedAt"] for s in body["sessions"]]
            assert times == sorted(times, reverse=True)
        assert len(service.get("/api/v1/sessions", params={"limit": 3}).json()["sessions"]) == 3
        # A fresh group folds exactly the events sent: one each, counted once whichever worker folded it.
        totals = wait_for(
            "the folds counted", lambda: (b := operations(first)) and b["totals"]["folded"] >= len(sids) and b
        )
        assert totals["totals"]["folded"] == len(sids), totals["totals"]
        assert sum(totals["folded"]) == len(sids), totals["folded"]

        # The segment, from the session's owner whichever worker is asked.
        for worker in (first, second):
            answer = http_get(f"{worker.url}/api/v1/sessions/{sids[0]}/segment", headers=worker.service_headers)
            assert answer.status_code == 200, answer.text
            assert answer.json()["segment"]["currencyCode"] == "BRL"
        unknown = service.get(f"/api/v1/sessions/{new_session_id()}/segment")
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "session_not_found"
        for bad in ({"limit": 0}, {"limit": "x"}, {"limit": 201}):
            assert service.get("/api/v1/sessions", params=bad).status_code == 400
        assert service.get("/api/v1/operations", params={"seconds": 301}).status_code == 400


def simulate(url: str, key: str, seed: int) -> dict:
    # The key in the environment, not on the command line (which the output log repeats).
    options = ["--url", url, "--rate", "25", "--duration", "2", "--seed", str(seed), "--json"]
    done = sessionctl("simulate", *options, env={**os.environ, "SESSIONS_SERVICE_KEY": key}, expect=0)
    return json.loads(done.stdout)


def test_a_short_simulation_ends_without_errors_and_repeats_with_its_seed(worker_factory):
    worker = worker_factory("sim", PARTITIONS, SESSIONS_RULES_FILE=str(SAMPLE_RULES_FILE)).start()
    first = simulate(worker.url, worker.service_key, seed=7)
    assert first["errors"] == 0 and first["errorsByStatus"] == {}, first
    assert first["sessions"] == first["sessionsCompleted"] == 50
    assert first["requestsByKind"]["create"] == 50
    assert first["requests"] == sum(first["requestsByKind"].values()) > 50
    assert first["logins"] == first["requestsByKind"].get("login", 0) > 0
    assert set(first["latencyMs"]) == {"p50", "p95", "p99", "max"}
    again = simulate(worker.url, worker.service_key, seed=7)
    assert again["requestsByKind"] == first["requestsByKind"]
    other = simulate(worker.url, worker.service_key, seed=8)
    assert other["requestsByKind"] != first["requestsByKind"]
    # The sessions it made are there, logins included.
    recent = http_get(f"{worker.url}/api/v1/sessions", params={"limit": 200}, headers=worker.service_headers).json()
    assert len(recent["sessions"]) == 3 * 50, len(recent["sessions"])
    # Each run logs a visitor in at most once: as many sessions logged in as the runs reported.
    logins = first["logins"] + again["logins"] + other["logins"]
    wait_for(f"{logins} logins folded", lambda: logged_in(worker, recent["sessions"]) >= logins)
    assert logged_in(worker, recent["sessions"]) == logins


def logged_in(worker, sessions: list[dict]) -> int:
    """How many of ``sessions`` are authenticated now."""
    count = 0
    with http_client(base_url=worker.url, timeout=15, headers=worker.service_headers) as service:
        for item in sessions:
            document = service.get(f"/api/v1/sessions/{item['id']}").json()
            count += document["namespaces"].get("profile", {}).get("isAuthenticated", {}).get("value") == "true"
    return count
