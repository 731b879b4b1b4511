"""Events produced straight to Kafka by the most common clients: confluent-kafka (librdkafka) puts a
keyed record on its key's CRC32 partition unless told otherwise, the worker reads a session on its
key's murmur2 partition (the Java default). Every event is readable either way: the fold loop moves
a record it finds on another partition than its key's to that partition, once, counted."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from projections.session import rfc3339
from streams.devkit.events import BASE_TIME, new_session_id, page_view
from tests.support.cli import sessionctl
from tests.support.cluster import parse_metrics, partition_of
from tests.support.http import http_client, http_get
from tests.support.sessions import public_has, wait_for_session
from tests.support.workers import wipe

pytestmark = pytest.mark.integration

PARTITIONS = 4
PER_PARTITIONER = 20


def produce(bootstrap: str, topic: str, partitioner: str | None, sids: list[str]) -> dict[str, int]:
    """Two page views per session, as a storefront's own producer would send them; the partition
    each session's records landed on."""
    config = {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True}
    producer = Producer(config if partitioner is None else {**config, "partitioner": partitioner})
    landed: dict[str, int] = {}

    def delivered(err, message) -> None:
        assert err is None, err
        landed[message.key().decode()] = message.partition()

    for sid in sids:
        for n, url in enumerate((f"https://shop.example/p/{sid[:4]}", f"https://shop.example/?last={sid}")):
            producer.produce(topic, key=sid.encode(), value=orjson.dumps(page_view(sid, url, n)), on_delivery=delivered)
    assert producer.flush(30) == 0
    return landed


def moved_copies(bootstrap: str, topic: str) -> Counter[str]:
    """Per session, the records on its key's partition that say where they were moved from."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "moved-reader", "enable.auto.commit": False,
                         "enable.partition.eof": True})  # fmt: skip
    found: Counter[str] = Counter()
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        remaining = set(range(PARTITIONS))
        while remaining:
            message = consumer.poll(10)
            assert message is not None, "the events topic could not be read"
            if message.error() is not None and message.error().code() == KafkaError._PARTITION_EOF:
                remaining.discard(message.partition())
                continue
            assert not message.error(), message.error()
            headers = dict(message.headers() or [])
            if "moved.from" in headers:
                sid = message.key().decode()
                assert message.partition() == partition_of(sid, PARTITIONS)
                assert int(headers["moved.from"].split(b"@")[0]) != message.partition()
                found[sid] += 1
    finally:
        consumer.close()
    return found


def test_events_produced_with_librdkafkas_default_partitioner_and_with_murmur2_are_all_readable(
    worker_factory, kafka_bootstrap, tmp_path
):
    worker = worker_factory("w1", PARTITIONS).start()
    topic = worker.env["SESSIONS_EVENTS_TOPIC"]
    by_default = [new_session_id() for _ in range(PER_PARTITIONER)]
    by_murmur2 = [new_session_id() for _ in range(PER_PARTITIONER)]
    landed = produce(kafka_bootstrap, topic, None, by_default)  # librdkafka's consistent_random: CRC32
    landed |= produce(kafka_bootstrap, topic, "murmur2_random", by_murmur2)
    misplaced = {sid for sid, partition in landed.items() if partition != partition_of(sid, PARTITIONS)}
    # What makes the test mean something: CRC32 put some sessions elsewhere, murmur2 none.
    assert misplaced and misplaced <= set(by_default), misplaced

    def served(sid: str) -> dict:
        document, _ = wait_for_session(service, sid, public_has("last", sid))
        assert document["meta"]["eventCount"] == 2, document
        return document

    with http_client(base_url=worker.url, timeout=15, headers=worker.service_headers) as service:
        expected = {sid: served(sid) for sid in by_default + by_murmur2}
        families = parse_metrics(http_get(f"{worker.url}/metrics", timeout=10).text)
    [(_, _, moved)] = families["sessions_moved_records"]
    assert moved == 2 * len(misplaced)  # each of their two records moved once
    assert moved_copies(kafka_bootstrap, topic) == {sid: 2 for sid in misplaced}

    # The analysts' exports agree: each event once, each session as the worker serves it.
    began = BASE_TIME - timedelta(minutes=1)  # the builders stamp events from BASE_TIME on
    window = ("--from", rfc3339(began), "--to", rfc3339(datetime.now(UTC) + timedelta(minutes=1)))
    events_file, sessions_file = tmp_path / "events.jsonl", tmp_path / "sessions.jsonl"
    sessionctl("export", *window, "-o", str(events_file), env=worker.env, expect=0)
    ids = Counter(json.loads(line)["id"] for line in events_file.read_text().splitlines())
    assert len(ids) == 4 * PER_PARTITIONER and set(ids.values()) == {1}
    sessionctl("export", "--sessions", *window, "-o", str(sessions_file), env=worker.env, expect=0)
    exported = {d["id"]: d for d in map(json.loads, sessions_file.read_text().splitlines())}
    assert exported == expected

    # A restart on an empty data folder restores them from the changelog: moved once, not again.
    assert worker.stop() == 0
    wipe(worker.data_dir)
    worker.start()
    with http_client(base_url=worker.url, timeout=15, headers=worker.service_headers) as service:
        for sid, document in expected.items():
            assert service.get(f"/api/v1/sessions/{sid}").json() == document
    assert moved_copies(kafka_bootstrap, topic) == {sid: 2 for sid in misplaced}
    assert worker.stop() == 0
