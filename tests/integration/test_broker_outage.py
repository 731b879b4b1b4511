"""The broker goes away during ingestion: 503 with Retry-After in bounded time, then recovery by itself."""

from __future__ import annotations

import time
import uuid

import pytest

from streams.devkit import broker
from streams.devkit.events import new_session_id, page_view
from streams.devkit.workers import make_worker
from tests.support.http import HttpClient, http_client
from tests.support.sessions import public_has, wait_for_session

pytestmark = pytest.mark.integration

PRODUCE_TIMEOUT_S = 3


def test_requests_fail_fast_while_kafka_is_down_and_every_2xx_is_folded_once(tmp_path):
    # A broker of its own: this test stops it.
    kafka_dir, port = tmp_path / "kafka", broker.free_port()
    bootstrap = broker.start(kafka_dir, port, quiet=True)
    run = uuid.uuid4().hex[:8]
    worker = make_worker(
        bootstrap, f"app-outage-{run}", f"events-outage-{run}", tmp_path / "worker", tmp_path / "worker.log",
        partitions=2, SESSIONS_PRODUCE_TIMEOUT_S=str(PRODUCE_TIMEOUT_S),
    )  # fmt: skip
    try:
        worker.start()
        sessions = [new_session_id() for _ in range(5)]
        pending = [page_view(sessions[n % 5], f"https://s/?n={n}", n) for n in range(60)]
        accepted: dict[str, dict] = {}
        outcomes: list[tuple[int, float]] = []

        def post_all(client: HttpClient, events: list[dict]) -> list[dict]:
            """Posts each event once; returns those that were not accepted."""
            left = []
            for event in events:
                started = time.monotonic()
                response = client.post("/api/events", json=event)
                outcomes.append((response.status_code, time.monotonic() - started))
                if response.status_code == 202:
                    accepted[event["id"]] = event
                else:
                    assert response.status_code == 503, response.text
                    assert response.headers["Retry-After"].isdigit()
                    assert response.json()["error"]["code"] == "unavailable"
                    left.append(event)
            return left

        with http_client(base_url=worker.url, timeout=30) as client:
            pending = post_all(client, pending[:20]) + pending[20:]
            assert len(accepted) == 20

            broker.stop(kafka_dir, quiet=True)
            pending = post_all(client, pending[:3]) + pending[3:]  # each one waits for the produce timeout
            failures = [seconds for status, seconds in outcomes[20:] if status == 503]
            assert failures, "no request failed while the broker was down"
            assert max(failures) < PRODUCE_TIMEOUT_S + 3, f"a request hung for {max(failures):.1f}s"
            assert client.get("/healthz").status_code == 200

            # The storefront API too: a session write while Kafka is down is a 503 to retry, and
            # never a session made up without its event.
            with http_client(base_url=worker.url, timeout=30) as browser:
                response = browser.post("/api/sessions", json={"public": {"during": {"value": "outage"}}})
                assert response.status_code == 503, response.text
                assert response.headers["Retry-After"].isdigit()
                assert response.json()["error"]["code"] == "unavailable"
                assert "vtex_session" not in response.cookies

            broker.start(kafka_dir, port, quiet=True)
            deadline = time.monotonic() + 90
            while pending:  # retry with the same ids until the worker's producer is back
                assert time.monotonic() < deadline, f"{len(pending)} events still refused 90 s after the restart"
                pending = post_all(client, pending)

            # A marker after every accepted event of each session: once it shows, all of them went
            # through the fold, and the count must be exact (a lost or doubled event shows).
            per_session = {sid: [e for e in accepted.values() if e["subject"] == sid] for sid in sessions}
            for sid in sessions:
                assert client.post("/api/events", json=page_view(sid, "https://s/?marker=end", 100)).status_code == 202
            for sid, events in per_session.items():
                document, _ = wait_for_session(client, sid, public_has("marker"), timeout=90)
                assert document["meta"]["eventCount"] == len(events) + 1, "an event was lost or applied twice"
                assert document["namespaces"]["public"]["n"] == {"value": events[-1]["data"]["url"].split("=")[1]}
        assert worker.stop() == 0, worker.log_tail()
    finally:
        worker.kill()
        broker.stop(kafka_dir, quiet=True)
