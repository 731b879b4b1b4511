"""Nothing acknowledged is lost, nothing is applied twice: duplicates, SIGKILL mid-stream, restart."""

from __future__ import annotations

import random
import threading

import httpx
import orjson
import pytest
from confluent_kafka import Producer

from projections.session import fold
from schemas.events import event_from_object
from schemas.session import encode_view
from tests.support.events import campaign_click, new_session_id, page_view
from tests.support.rules import SAMPLE_RULES_FILE, sample_rules
from tests.support.sessions import public_has, wait_for_session
from tests.support.workers import wipe

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
        # The marker comes after the three copies in the session's partition: once it shows, every
        # copy has been through the fold.
        document, _ = wait_for_session(client, sid, public_has("after"))
    assert document["meta"]["eventCount"] == 2
    assert document["namespaces"]["public"] == {"once": {"value": "1"}, "after": {"value": "1"}}
    assert worker.stop() == 0


def stream_of_events(seed: int) -> tuple[list[dict], dict[str, list[dict]]]:
    """A shuffled stream over a few sessions with ~5% of events sent again soon after, then one
    marker event per session (``?marker=end``): the last of each session, awaited before comparing."""
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
    for sid in sessions:
        marker = page_view(sid, "https://s/p?marker=end", EVENTS)
        stream.append(marker)
        distinct[sid].append(marker)
    return stream, distinct


def expected_views(distinct: dict[str, list[dict]]) -> dict[str, dict]:
    return {
        sid: orjson.loads(encode_view(fold((event_from_object(e) for e in events), rules=RULES)))
        for sid, events in distinct.items()
        if events
    }


def served_views(worker, sids, timeout: float = 90.0) -> dict[str, dict]:
    """Each session as served once its marker (its last event) is folded."""
    with httpx.Client(base_url=worker.url, timeout=10) as client:
        return {sid: wait_for_session(client, sid, public_has("marker"), timeout)[0] for sid in sids}


def test_sigkill_mid_stream_loses_nothing_and_applies_nothing_twice(worker_factory, kafka_bootstrap):
    worker = worker_factory(partitions=4, SESSIONS_RULES_FILE=str(SAMPLE_RULES_FILE)).start()
    topic = worker.env["SESSIONS_EVENTS_TOPIC"]
    stream, distinct = stream_of_events(seed=7)
    expected = expected_views(distinct)

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
    with httpx.Client(base_url=worker.url, timeout=10) as client:
        wait_for_session(client, probe, 1, timeout=60)
    worker.kill()
    killed.set()

    worker.start()
    emitter.join(120)
    assert produced.is_set(), failures
    assert served_views(worker, expected) == expected

    # The changelog agrees too: a worker that lost its disk rebuilds the same states.
    assert worker.stop() == 0
    wipe(worker.data_dir)
    worker.start()
    assert served_views(worker, expected) == expected
    assert worker.stop() == 0
