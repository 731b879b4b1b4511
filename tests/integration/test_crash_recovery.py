"""Nothing acknowledged is lost, nothing is applied twice: duplicates, SIGKILL mid-stream, restart."""

from __future__ import annotations

import threading

import orjson
import pytest
from confluent_kafka import Producer

from streams.devkit.events import new_session_id, page_view
from streams.devkit.paths import SAMPLE_RULES_FILE, sample_rules
from tests.support.http import http_client
from tests.support.sessions import public_has, wait_for_session
from tests.support.streams import expected_views, served_views, stream_of_events
from tests.support.workers import wipe

pytestmark = pytest.mark.integration

SESSIONS = 40
EVENTS = 4000
RULES = sample_rules()


def test_the_same_event_posted_three_times_is_applied_once(worker_factory):
    worker = worker_factory(SESSIONS_RULES_FILE=str(SAMPLE_RULES_FILE)).start()
    sid = new_session_id()
    event = page_view(sid, "https://s/?once=1")
    with http_client(base_url=worker.url, timeout=10) as client:
        for _ in range(3):
            assert client.post("/api/events", json=event).status_code == 202
        assert client.post("/api/events", json=page_view(sid, "https://s/?after=1", 1)).status_code == 202
        # The marker comes after the three copies in the session's partition: once it shows, every
        # copy has been through the fold.
        document, _ = wait_for_session(client, sid, public_has("after"))
    assert document["meta"]["eventCount"] == 2
    assert document["namespaces"]["public"] == {"once": {"value": "1"}, "after": {"value": "1"}}
    assert worker.stop() == 0


def test_sigkill_mid_stream_loses_nothing_and_applies_nothing_twice(worker_factory, kafka_bootstrap):
    worker = worker_factory(partitions=4, SESSIONS_RULES_FILE=str(SAMPLE_RULES_FILE)).start()
    topic = worker.env["SESSIONS_EVENTS_TOPIC"]
    stream, distinct = stream_of_events(seed=7, sessions=SESSIONS, events=EVENTS)
    expected = expected_views(distinct, RULES)

    killed, produced = threading.Event(), threading.Event()
    failures: list[str] = []

    def emit() -> None:
        # An emitter that appends the first half, waits for the kill, and appends the rest while the
        # worker restarts: the kill always lands mid-stream, however slow the machine.
        producer = Producer({"bootstrap.servers": kafka_bootstrap, "acks": "all", "enable.idempotence": True,
                             "partitioner": "murmur2_random", "linger.ms": 5})  # fmt: skip
        half = len(stream) // 2
        for index, event in enumerate(stream):
            if index == half:
                if producer.flush(30) != 0 or not killed.wait(120):
                    failures.append("first half not flushed, or no kill within 120 s")
                    return
            producer.produce(topic, key=event["subject"].encode(), value=orjson.dumps(event))
        if producer.flush(30) != 0:
            failures.append("second half not flushed")
            return
        produced.set()

    emitter = threading.Thread(target=emit, daemon=True)
    emitter.start()
    # Kill once the worker has folded part of the first half.
    probe = stream[0]["subject"]
    with http_client(base_url=worker.url, timeout=10) as client:
        wait_for_session(client, probe, 1, timeout=60)
    worker.kill()
    killed.set()

    worker.start()
    emitter.join(120)
    assert produced.is_set(), failures
    assert served_views(worker.url, expected) == expected

    # The changelog agrees too: a worker that lost its disk rebuilds the same states.
    assert worker.stop() == 0
    wipe(worker.data_dir)
    worker.start()
    assert served_views(worker.url, expected) == expected
    assert worker.stop() == 0
