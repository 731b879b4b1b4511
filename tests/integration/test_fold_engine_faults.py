"""The fold loop under faults: SIGKILL at each step of a batch, rebuild from the changelog alone, and
a handoff between workers in which the worker that lets go never writes the partition again."""

from __future__ import annotations

import random
import subprocess
import threading
import time
from collections import defaultdict

import orjson
import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from streams.devkit.events import new_session_id, page_view
from streams.devkit.paths import SAMPLE_RULES_FILE, sample_rules
from streams.fold.store import SOURCE_OFFSET
from tests.support.streams import expected_views, served_views, stream_of_events
from tests.support.waiting import wait_for
from tests.support.workers import wipe

pytestmark = pytest.mark.integration

RULES = sample_rules()


def produce(bootstrap: str, topic: str, stream: list[dict]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                         "partitioner": "murmur2_random", "linger.ms": 5})  # fmt: skip
    for event in stream:
        producer.produce(topic, key=event["subject"].encode(), value=orjson.dumps(event))
    assert producer.flush(30) == 0


def wait_for_exit(process: subprocess.Popen, timeout: float) -> int:
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the worker did not reach its fault point within {timeout}s") from None


@pytest.mark.parametrize("point", ["before_produce", "before_flush", "after_flush", "after_write"])
def test_sigkill_at_each_step_of_a_batch_loses_nothing_and_applies_nothing_twice(
    worker_factory, kafka_bootstrap, point
):
    # Small batches, so the 4th one falls in the middle of the stream.
    worker = worker_factory(
        partitions=3,
        SESSIONS_RULES_FILE=str(SAMPLE_RULES_FILE),
        SESSIONS_FOLD_BATCH_MAX="150",
        SESSIONS_FAULT_POINT=f"{point}:4",
    ).start()
    topic = worker.env["SESSIONS_EVENTS_TOPIC"]
    stream, distinct = stream_of_events(seed=len(point), sessions=30, events=2500)
    expected = expected_views(distinct, RULES)
    produce(kafka_bootstrap, topic, stream)
    assert worker.process is not None
    assert wait_for_exit(worker.process, 60) == -9, worker.log_tail()
    assert f"fault point {point}:4 reached" in worker.log_tail()

    del worker.env["SESSIONS_FAULT_POINT"]
    worker.start()
    assert served_views(worker.url, expected, 120) == expected

    # The changelog alone rebuilds the same states.
    assert worker.stop() == 0
    wipe(worker.data_dir)
    worker.start()
    assert served_views(worker.url, expected, 120) == expected
    assert worker.stop() == 0


def test_a_worker_whose_fold_loop_stops_exits_instead_of_keeping_its_partitions(worker_factory, kafka_bootstrap):
    # A bug in the loop (the fault point raises in the first batch): left running, the worker would
    # stay in the group with its partitions and never fold them; it must crash, saying why.
    worker = worker_factory(partitions=2, SESSIONS_RULES_FILE=str(SAMPLE_RULES_FILE), SESSIONS_FAULT_POINT="bug:1")
    worker.start()
    stream, _ = stream_of_events(seed=7, sessions=3, events=20)
    produce(kafka_bootstrap, worker.env["SESSIONS_EVENTS_TOPIC"], stream)
    assert worker.process is not None
    assert wait_for_exit(worker.process, 60) == 1, worker.log_tail()
    log = worker.log_tail(200)
    assert "fault point bug:1: an unexpected error in batch 1" in log
    assert "the fold loop stopped" in log and "the worker exits" in log


def changelog_markers(bootstrap: str, topic: str, partitions: int) -> dict[int, list[tuple[int, str, int]]]:
    """Per changelog partition, its batch markers in order: (offset, writer, generation)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "marker-reader", "enable.auto.commit": False,
                         "isolation.level": "read_committed", "enable.partition.eof": True})  # fmt: skip
    found: dict[int, list[tuple[int, str, int]]] = defaultdict(list)
    try:
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)}
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions) if ends[p] > 0])
        remaining = {p for p in ends if ends[p] > 0}
        while remaining:
            message = consumer.poll(10)
            assert message is not None, "the changelog could not be read"
            if message.error() is not None and message.error().code() == KafkaError._PARTITION_EOF:
                remaining.discard(message.partition())  # the end: past the last commit marker
                continue
            assert not message.error(), "the changelog could not be read"
            p = message.partition()
            if message.key() == SOURCE_OFFSET:
                headers = {k: v.decode() for k, v in message.headers() or []}
                found[p].append((message.offset(), headers["writer"], int(headers["generation"])))
            if message.offset() + 1 >= ends[p]:
                remaining.discard(p)
    finally:
        consumer.close()
    return found


HOLD_LINE = b"waits for the group to rebalance"


def test_a_worker_revoked_while_folding_never_writes_the_partition_afterwards(worker_factory, kafka_bootstrap):
    partitions = 4
    env = {"SESSIONS_RULES_FILE": str(SAMPLE_RULES_FILE), "SESSIONS_FOLD_BATCH_MAX": "100"}
    # The first worker's first batch waits before producing its changelog until the group rebalances
    # (the "hold" fault point): the second one joins while it is in flight, and the group moving on
    # fences it (produced, never written to the store; folded again by whoever owns it next).
    held = {**env, "SESSIONS_FOLD_BATCH_MAX": "2000", "SESSIONS_FAULT_POINT": "hold:60"}
    first = worker_factory("w1", partitions=partitions, **held).start()
    topic = first.env["SESSIONS_EVENTS_TOPIC"]
    rng = random.Random(11)
    ids = [new_session_id() for _ in range(200)]
    distinct: dict[str, list[dict]] = defaultdict(list)
    second_ready = threading.Event()
    done = threading.Event()

    def emit() -> None:
        # A steady stream that goes on through the second worker's join and a while after it,
        # so the first one is folding when its partitions are taken away and both fold afterwards.
        producer = Producer({"bootstrap.servers": kafka_bootstrap, "acks": "all", "enable.idempotence": True,
                             "partitioner": "murmur2_random", "linger.ms": 5})  # fmt: skip
        n, after_join = 0, 0
        while after_join < 4000:
            for _ in range(100):
                sid = rng.choice(ids)
                event = page_view(sid, f"https://s/p?n={n}&color={rng.choice('rgb')}", n)
                distinct[sid].append(event)
                producer.produce(topic, key=sid.encode(), value=orjson.dumps(event))
                n += 1
                after_join += second_ready.is_set()
            producer.flush(10)
            time.sleep(0.02)  # pacing the emitter, not waiting for a condition
        for sid in ids:  # each session's last event: what served_views waits for
            marker = page_view(sid, "https://s/p?marker=end", n)
            distinct[sid].append(marker)
            producer.produce(topic, key=sid.encode(), value=orjson.dumps(marker))
        assert producer.flush(30) == 0
        done.set()

    emitter = threading.Thread(target=emit, daemon=True)
    emitter.start()
    wait_for("a batch of the first worker in flight", lambda: HOLD_LINE in first.log_path.read_bytes(), 60)
    second = worker_factory("w2", partitions=partitions, **env).start()
    second_ready.set()
    emitter.join(120)
    assert done.is_set(), "the emitter did not finish"
    expected = expected_views(distinct, RULES)

    assert served_views(second.url, expected, 120) == expected
    assert served_views(first.url, expected, 120) == expected
    log = first.log_path.read_text()
    assert "not writing this batch" in log[log.index(HOLD_LINE.decode()) :], "the batch in flight was not fenced"

    markers = changelog_markers(kafka_bootstrap, f"{first.env['SESSIONS_APP_ID']}-sessions-state-changelog", partitions)
    writers = {writer for batches in markers.values() for _, writer, _ in batches}
    assert len(writers) == 2, f"both workers should have folded: {writers}"
    for partition, batches in markers.items():
        generations = [generation for _, _, generation in batches]
        # Once a newer generation wrote the partition, nothing of an older one comes after it.
        assert generations == sorted(generations), f"partition {partition}: {batches}"
        owners: dict[int, set[str]] = defaultdict(set)
        for _, writer, generation in batches:
            owners[generation].add(writer)
        assert all(len(w) == 1 for w in owners.values()), f"partition {partition}: two writers in one generation"
    assert first.stop() == 0
    assert second.stop() == 0
