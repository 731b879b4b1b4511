"""Nothing acknowledged is lost, nothing is applied twice: duplicates, SIGKILL mid-stream, restart."""

from __future__ import annotations

import random
import threading
import time

import httpx
import orjson
import pytest
from confluent_kafka import Producer

from projections.session import fold
from schemas.events import event_from_object
from schemas.session import encode_view
from tests.conftest import wipe
from tests.integration.test_event_path import wait_for_session
from tests.support.events import campaign_click, new_session_id, page_view
from tests.support.rules import SAMPLE_RULES_FILE, sample_rules

pytestmark = pytest.mark.integration

SESSIONS = 40
EVENTS = 4000
RULES = sample_rules()


def test_the_same_event_posted_three_times_is_applied_once(worker_factory):
    worker = worker_factory(SESSIONS_RULES_FILE=str(SAMPLE_RULES_FILE)).start()
    sid = new_session_id()
    event = page_view(sid, "https://s/?once=1")
    with httpx.Client(base_url=worker.url, timeout=10) as client:
        for _ in range(3):
            assert client.post("/api/events", json=event).status_code == 202
        assert client.post("/api/events", json=page_view(sid, "https://s/?after=1", 1)).status_code == 202
        document, _ = wait_for_session(client, sid, 2)
    assert document["meta"]["eventCount"] == 2
    assert worker.stop() == 0


def stream_of_events(seed: int) -> tuple[list[dict], dict[str, list[dict]]]:
    """A shuffled stream over a few sessions with ~5% of events sent again soon after."""
    rng = random.Random(seed)
    sessions = [new_session_id() for _ in range(SESSIONS)]
    stream: list[dict] = []
    distinct: dict[str, list[dict]] = {sid: [] for sid in sessions}
    for n in range(EVENTS):
        sid = rng.choice(sessions)
        if rng.random() < 0.1:
            event = campaign_click(sid, n, utm_campaign=rng.choice(["blackfriday", "summer"]))
        else:
            event = page_view(sid, f"https://s/p?n={n}&color={rng.choice('rgb')}", n)
        stream.append(event)
        distinct[sid].append(event)
        if rng.random() < 0.05:
            stream.append(event)  # a retry: same id
    return stream, distinct


def expected_views(distinct: dict[str, list[dict]]) -> dict[str, dict]:
    return {
        sid: orjson.loads(encode_view(fold((event_from_object(e) for e in events), rules=RULES)))
        for sid, events in distinct.items()
        if events
    }


def served_views(worker, sids, counts: dict[str, int], timeout: float = 90.0) -> dict[str, dict]:
    with httpx.Client(base_url=worker.url, timeout=10) as client:
        return {sid: wait_for_session(client, sid, counts[sid], timeout)[0] for sid in sids}


def test_sigkill_mid_stream_loses_nothing_and_applies_nothing_twice(worker_factory, kafka_bootstrap):
    worker = worker_factory(partitions=4, SESSIONS_RULES_FILE=str(SAMPLE_RULES_FILE)).start()
    topic = worker.env["SESSIONS_EVENTS_TOPIC"]
    stream, distinct = stream_of_events(seed=7)
    expected = expected_views(distinct)
    counts = {sid: view["meta"]["eventCount"] for sid, view in expected.items()}

    produced = threading.Event()

    def emit() -> None:
        # An emitter appending steadily for ~3 s, through the kill and the restart.
        producer = Producer({"bootstrap.servers": kafka_bootstrap, "acks": "all", "enable.idempotence": True,
                             "partitioner": "murmur2_random", "linger.ms": 5})  # fmt: skip
        for index, event in enumerate(stream):
            producer.produce(topic, key=event["subject"].encode(), value=orjson.dumps(event))
            if index % 200 == 199:
                producer.flush(10)
                time.sleep(0.15)
        assert producer.flush(30) == 0
        produced.set()

    emitter = threading.Thread(target=emit, daemon=True)
    emitter.start()
    # Kill once the worker has folded part of the stream and the emitter is still going.
    probe = next(iter(expected))
    with httpx.Client(base_url=worker.url, timeout=10) as client:
        deadline = time.monotonic() + 30
        while client.get(f"/api/v1/sessions/{probe}").status_code != 200:
            assert time.monotonic() < deadline, "nothing folded within 30 s"
            time.sleep(0.05)
    time.sleep(0.5)
    assert not produced.is_set(), "the stream ended before the kill: make it longer"
    worker.kill()

    worker.start()
    emitter.join(60)
    assert produced.is_set()
    assert served_views(worker, expected, counts) == expected

    # The changelog agrees too: a worker that lost its disk rebuilds the same states.
    assert worker.stop() == 0
    wipe(worker.data_dir)
    worker.start()
    assert served_views(worker, expected, counts) == expected
    assert worker.stop() == 0
