"""A hung owner: a worker that accepts connections but does not answer (here a real worker paused
with SIGSTOP; the kernel still completes TCP handshakes for it). A request another worker forwards
there gets 503 with ``Retry-After`` once ``SESSIONS_FORWARD_TIMEOUT_S`` has passed, counted in
``/metrics``; a read that allows a stale copy is answered from the standby meanwhile; once the owner
resumes, everything is answered by it again."""

from __future__ import annotations

import os
import signal
import time

import pytest

from streams.devkit.events import new_session_id, page_view
from tests.support.cluster import make_cluster, partition_of, scrape, served_partitions, session_in
from tests.support.http import http_client
from tests.support.sessions import public_has, wait_for_session

pytestmark = pytest.mark.integration

PARTITIONS = 4
FORWARD_TIMEOUT_S = 1.0
ALLOW_STALE = {"X-Session-Allow-Stale": "true"}


def forwarded(worker, status: str | None = None) -> float:
    """Requests ``worker`` forwarded to an owner (with that outcome, or any)."""
    families = scrape(worker) or {}
    return sum(
        value
        for name, labels, value in families.get("sessions_forwarded_requests", [])
        if name == "sessions_forwarded_requests_total" and status in (None, labels["status"])
    )


def test_a_paused_owner_gets_a_bounded_503_and_stale_reads_come_from_the_standby(kafka_bootstrap, tmp_path):
    # The group must not move the partitions while the owner is paused: a session timeout well
    # beyond the pause, so that what is tested is the forwarding worker's own bound.
    cluster = make_cluster(
        kafka_bootstrap, tmp_path, workers=2, partitions=PARTITIONS, name="hung",
        SESSIONS_KAFKA_SESSION_TIMEOUT_S="30", SESSIONS_STANDBY_REPLICAS="1",
        SESSIONS_FORWARD_TIMEOUT_S=str(FORWARD_TIMEOUT_S),
    )  # fmt: skip
    owner, other = cluster.workers
    try:
        cluster.start()
        owned = served_partitions(scrape(owner) or {})
        assert owned, "the owner serves no partition"
        sid = session_in(min(owned), PARTITIONS)
        assert partition_of(sid, PARTITIONS) in owned
        with http_client(base_url=other.url, timeout=30, headers=other.service_headers) as service:
            assert service.post("/api/events", json=page_view(sid, "https://shop.example/?hung=1")).status_code == 202
            expected, _ = wait_for_session(service, sid, public_has("hung"))  # forwarded to the owner
            # The standby copy on the other worker has it too: a stale read answered there, not
            # forwarded to the owner.
            deadline = time.monotonic() + 30
            while True:
                before = forwarded(other)
                if service.get(f"/api/v1/sessions/{sid}", headers=ALLOW_STALE).json() == expected:
                    if forwarded(other) == before:
                        break
                assert time.monotonic() < deadline, "the standby copy never caught up"
                time.sleep(0.05)

            timeouts_before = forwarded(other, "timeout")
            assert owner.process is not None
            os.kill(owner.process.pid, signal.SIGSTOP)
            try:
                started = time.monotonic()
                answer = service.get(f"/api/v1/sessions/{sid}")
                waited = time.monotonic() - started
                assert answer.status_code == 503, answer.text
                assert answer.headers["Retry-After"]
                assert "did not answer within" in answer.json()["error"]["message"]
                # Bounded by the setting (plus the scheduling of a busy 2-core machine), not by
                # aiohttp's 5-minute default.
                assert FORWARD_TIMEOUT_S <= waited < FORWARD_TIMEOUT_S + 10, waited

                stale = service.get(f"/api/v1/sessions/{sid}", headers=ALLOW_STALE)
                assert stale.status_code == 200 and stale.json() == expected
                assert int(stale.headers["X-Session-Staleness-Ms"]) >= 0
                assert forwarded(other, "timeout") == timeouts_before + 1

                fresh = new_session_id()  # writes go to Kafka, not to the owner: still accepted
                assert service.post("/api/events", json=page_view(fresh, "https://shop.example/")).status_code == 202
            finally:
                os.kill(owner.process.pid, signal.SIGCONT)
            again, _ = wait_for_session(service, sid, public_has("hung"))
            assert again == expected
    finally:
        cluster.kill()
