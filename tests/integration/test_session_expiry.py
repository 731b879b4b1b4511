"""Session lifetime on a real worker: a session inactive for longer than SESSIONS_SESSION_TTL_S is
answered 404, swept from the store with a changelog tombstone, keeps its timeline, and its next
event starts it afresh."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition

from projections.history import replay
from projections.session import rfc3339
from schemas.events import event_from_object
from streams.devkit.events import at, new_session_id, page_view
from streams.fold.locator import chunk_prefix
from tests.support.http import HttpClient, http_client
from tests.support.sessions import public_has, wait_for_session
from tests.support.workers import module_worker

pytestmark = pytest.mark.integration

PARTITIONS = 2
LIFETIME_S = 3600
worker = module_worker(
    "expiry", partitions=PARTITIONS, SESSIONS_SESSION_TTL_S=str(LIFETIME_S), SESSIONS_SESSION_SWEEP_EVERY_S="0.2"
)


@pytest.fixture(scope="module")
def service(worker):
    with http_client(base_url=worker.url, timeout=30.0, headers=worker.service_headers) as client:
        yield client


def recent(seconds_ago: float) -> str:
    return rfc3339(datetime.now(UTC) - timedelta(seconds=seconds_ago))


def wait_for_timeline(service: HttpClient, sid: str, count: int, timeout: float = 30.0) -> list[dict]:
    """The timeline is readable for an expired session too: the way to know its events are folded."""
    deadline = time.monotonic() + timeout
    while True:
        answer = service.get(f"/api/v1/sessions/{sid}/events")
        if answer.status_code == 200 and len(answer.json()["events"]) >= count:
            return answer.json()["events"]
        assert answer.status_code in (200, 404), answer.text
        assert time.monotonic() < deadline, f"{sid}: {count} events not folded: {answer.text}"
        time.sleep(0.05)


def changelog_records(bootstrap: str, topic: str, wanted: set[bytes], timeout: float = 30.0) -> dict[bytes, list]:
    """Every changelog record (key -> values in order) whose key is or starts with one of ``wanted``,
    read up to the end the topic has now."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "expiry-reader", "enable.auto.commit": False,
                         "isolation.level": "read_committed", "enable.partition.eof": True})  # fmt: skip
    found: dict[bytes, list] = {}
    try:
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(PARTITIONS)}
        consumer.assign([TopicPartition(topic, p, 0) for p in ends if ends[p] > 0])
        remaining = {p for p in ends if ends[p] > 0}
        deadline = time.monotonic() + timeout
        while remaining and time.monotonic() < deadline:
            message = consumer.poll(1)
            if message is not None and message.error() and message.error().code() == KafkaError._PARTITION_EOF:
                remaining.discard(message.partition())  # the end: past the last commit marker
                continue
            if message is None or message.error():
                continue
            key = message.key() or b""
            if any(key.startswith(w) for w in wanted):
                found.setdefault(key, []).append(message.value())
            if message.offset() + 1 >= ends[message.partition()]:
                remaining.discard(message.partition())
    finally:
        consumer.close()
    return found


def test_an_inactive_session_expires_and_keeps_its_timeline(worker, service, kafka_bootstrap):
    old, live = new_session_id(), new_session_id()
    # `old`'s last event is a day ago (the test events' base time), `live`'s a minute ago.
    events = [
        page_view(old, "https://shop.example/?utm_source=google", 0),
        page_view(old, "https://shop.example/p/1?color=red", 60),
        page_view(live, "https://shop.example/?marker=live", 0) | {"time": recent(60)},
    ]
    assert service.post("/api/events", json=events).status_code == 202
    wait_for_session(service, live, public_has("marker"))
    timeline = wait_for_timeline(service, old, 2)
    assert [e["id"] for e in timeline] == [events[0]["id"], events[1]["id"]]

    # Expired: not served, by the service API or to a storefront.
    answer = service.get(f"/api/v1/sessions/{old}")
    assert (answer.status_code, answer.json()["error"]["code"]) == (404, "session_not_found")
    # Its past is still there: at the time of its last event it was alive.
    past = service.get(f"/api/v1/sessions/{old}", params={"at": at(60)})
    assert past.status_code == 200 and past.json()["namespaces"]["public"]["color"] == {"value": "red"}

    # The sweep wrote a tombstone and the sealed locator to the changelog; `live` was left alone.
    topic = f"{worker.env['SESSIONS_APP_ID']}-sessions-state-changelog"
    deadline = time.monotonic() + 30
    while True:
        records = changelog_records(kafka_bootstrap, topic, {old.encode(), chunk_prefix(old.encode())})
        if records.get(old.encode(), [b""])[-1] is None:
            break
        assert time.monotonic() < deadline, f"no tombstone for {old}: {records}"
        time.sleep(0.2)
    chunks = [key for key in records if key.startswith(chunk_prefix(old.encode()))]
    assert len(chunks) == 1 and records[chunks[0]][-1], records
    live_records = changelog_records(kafka_bootstrap, topic, {live.encode()})
    assert None not in live_records[live.encode()]
    assert service.get(f"/api/v1/sessions/{live}").status_code == 200

    # The timeline reads the sealed locator: nothing of the history is lost.
    assert service.get(f"/api/v1/sessions/{old}/events").json()["events"] == timeline

    # A new event starts the session afresh under the same id; the timeline shows both lives.
    again = page_view(old, "https://shop.example/?marker=again") | {"time": recent(0)}
    assert service.post("/api/events", json=again).status_code == 202
    document, _ = wait_for_session(service, old, public_has("marker"))
    assert document["meta"]["eventCount"] == 1
    assert "color" not in document["namespaces"]["public"]
    both = service.get(f"/api/v1/sessions/{old}/events").json()["events"]
    assert [e["id"] for e in both] == [events[0]["id"], events[1]["id"], again["id"]]
    # What it changed is what the first event of a new session changes: nothing carried over.
    assert both[2]["changes"] == next(replay([event_from_object(again)])).changes
    assert "public.marker" in both[2]["changes"]
