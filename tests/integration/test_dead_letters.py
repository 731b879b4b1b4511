"""Records that are not valid events never stop the stream: they go to the dead-letter topic."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from confluent_kafka import Producer

from projections.session import rfc3339
from streams.devkit.events import new_session_id, page_view
from streams.devkit.workers import SERVICE_HEADERS
from streams.kafka.dead_letters import redrive
from tests.support.cli import sessionctl
from tests.support.dead_letters import headers, read_dead_letters, reason
from tests.support.http import http_client
from tests.support.sessions import public_has, wait_for_session

pytestmark = pytest.mark.integration


def test_garbage_between_good_events_goes_to_the_dlq_and_the_good_ones_fold(worker_factory, kafka_bootstrap):
    worker = worker_factory(partitions=2).start()
    topic = worker.env["SESSIONS_EVENTS_TOPIC"]
    sid = new_session_id()
    other = new_session_id()
    bad_records = [
        (sid.encode(), b"\xff\x00 not json"),
        (sid.encode(), orjson.dumps({**page_view(sid, "https://s/"), "type": "navigation.teleported"})),
        (sid.encode(), orjson.dumps(page_view(other, "https://s/?wrong=key"))),  # key != subject
    ]
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "partitioner": "murmur2_random"})
    producer.produce(topic, key=sid.encode(), value=orjson.dumps(page_view(sid, "https://s/?first=1", 0)))
    # Each with a timestamp of its own, in the past: a dead letter keeps its record's timestamp.
    stamps = {value: 1_700_000_000_000 + n for n, (_, value) in enumerate(bad_records)}
    for key, value in bad_records:
        producer.produce(topic, key=key, value=value, timestamp=stamps[value])
    producer.produce(topic, key=sid.encode(), value=orjson.dumps(page_view(sid, "https://s/?second=2", 1)))
    assert producer.flush(10) == 0

    with http_client(base_url=worker.url, timeout=10) as client:
        document, _ = wait_for_session(client, sid, 2)
        assert document["meta"]["eventCount"] == 2
        assert document["namespaces"]["public"] == {"first": {"value": "1"}, "second": {"value": "2"}}
        assert client.get(f"/api/v1/sessions/{other}", headers=SERVICE_HEADERS).status_code == 404

    dead = read_dead_letters(kafka_bootstrap, topic, lambda letters: len(letters) >= len(bad_records))
    assert sorted(m.value() for m in dead) == sorted(v for _, v in bad_records)
    for message in dead:
        attributes = headers(message)
        assert attributes["dlq.topic"] == topic
        assert int(attributes["dlq.offset"]) >= 1
        assert attributes["dlq.partition"].isdigit()
        assert attributes["dlq.reason"]
        assert message.timestamp()[1] == stamps[message.value()]
    reasons = sorted(reason(m) for m in dead)
    assert any("unknown event type" in r for r in reasons)
    assert any("subject" in r for r in reasons)

    # The CLI lists them with their reasons ...
    listing = sessionctl("dlq", "list", env=worker.env, expect=0)
    assert f"{len(bad_records)} dead letter(s)" in listing.stderr
    assert "unknown event type" in listing.stdout
    assert f"from {topic}[" in listing.stdout

    # ... and re-drives them after a fix. A letter left by an older, buggy worker (a valid event
    # now) folds; the records that are still bad come back to the dead-letter topic.
    late = page_view(sid, "https://s/?redriven=1", 2)
    producer.produce(f"{topic}.dlq", key=sid.encode(), value=orjson.dumps(late), headers=[("dlq.reason", b"old bug")])
    assert producer.flush(10) == 0
    assert "re-drove 4 dead letter(s)" in sessionctl("dlq", "redrive", env=worker.env, expect=0).stdout
    with http_client(base_url=worker.url, timeout=10) as client:
        document, _ = wait_for_session(client, sid, 3)
    assert document["namespaces"]["public"]["redriven"] == {"value": "1"}
    assert document["meta"]["eventCount"] == 3

    deadline = time.monotonic() + 15
    while "7 dead letter(s)" not in (listing := sessionctl("dlq", "list", env=worker.env, expect=0)).stderr:
        assert time.monotonic() < deadline, listing.stderr
        time.sleep(0.2)
    # Each letter is re-driven once: the next run takes only the three that came back.
    dry_run = sessionctl("dlq", "redrive", "--dry-run", env=worker.env, expect=0)
    assert "would re-drive 3 dead letter(s)" in dry_run.stdout
    # The progress it reports (a bar on a terminal, lines otherwise): letters read of those planned.
    reported: list[tuple[int, int, int]] = []
    env = worker.env
    redrive(
        env["SESSIONS_KAFKA_BOOTSTRAP"], f"{topic}.dlq", topic, f"{env['SESSIONS_APP_ID']}-dlq-redrive",
        dry_run=True, progress=lambda *figures: reported.append(figures),
    )  # fmt: skip
    assert reported[-1] == (3, 0, 3)
    assert worker.stop() == 0


def test_an_event_stamped_further_ahead_of_its_record_than_the_skew_is_dead_lettered(worker_factory, kafka_bootstrap):
    # As the API refuses an event more than SESSIONS_MAX_CLOCK_SKEW_S ahead of its clock, the fold
    # sets aside one produced straight to Kafka further ahead of its record's timestamp: a session
    # whose latest event is a day ahead would otherwise stay alive a day.
    worker = worker_factory(partitions=2, SESSIONS_MAX_CLOCK_SKEW_S="300").start()
    topic = worker.env["SESSIONS_EVENTS_TOPIC"]
    sid = new_session_id()
    now = datetime.now(UTC)
    stamped = {
        "a day ahead": page_view(sid, "https://s/?ahead=day") | {"time": rfc3339(now + timedelta(days=1))},
        "a minute ahead": page_view(sid, "https://s/?ahead=minute") | {"time": rfc3339(now + timedelta(minutes=1))},
    }
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "partitioner": "murmur2_random"})
    for event in stamped.values():  # the record's timestamp: the producer's clock, now
        producer.produce(topic, key=sid.encode(), value=orjson.dumps(event))
    producer.produce(topic, key=sid.encode(), value=orjson.dumps(page_view(sid, "https://s/?last=1", 2)))
    assert producer.flush(10) == 0

    with http_client(base_url=worker.url, timeout=10, headers=SERVICE_HEADERS) as client:
        document, _ = wait_for_session(client, sid, public_has("last"))
    assert document["meta"]["eventCount"] == 2  # the minute ahead (within the skew) and the last
    assert document["namespaces"]["public"]["ahead"] == {"value": "minute"}
    [letter] = read_dead_letters(kafka_bootstrap, topic, lambda letters: len(letters) >= 1)
    assert orjson.loads(letter.value())["id"] == stamped["a day ahead"]["id"]
    assert reason(letter).startswith("$.time: the time is 86")  # ~86,400 s
    assert "ahead of its record's Kafka timestamp (at most 300s)" in reason(letter)
    assert worker.stop() == 0
