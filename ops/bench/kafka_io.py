"""Kafka plumbing for the bench: topics, the bulk and the paced producer, offsets, changelog reads.

Everything talks to the bench's own broker on 127.0.0.1 only. Every loop is bounded in time.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from workload import Record

from streams.config.settings import Settings
from streams.fold.locator import CHUNK_PREFIX
from streams.fold.store import CHANGELOG_OFFSET, SOURCE_OFFSET, unpack_session

# The fold loop's changelog holds, besides one record per changed session, batch markers whose key
# starts with a NUL byte (streams/fold/store.py): no session id does.
MARKER_PREFIX = SOURCE_OFFSET[:1]
assert MARKER_PREFIX == CHANGELOG_OFFSET[:1] == b"\x00"

FOREVER = {"retention.ms": "-1", "retention.bytes": "-1"}
_EVENT_COUNT = re.compile(rb'"eventCount":(\d+)')


def _quiet_logger() -> logging.Logger:
    logger = logging.getLogger("bench.kafka")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    return logger


def create_topic(bootstrap: str, name: str, partitions: int, timeout: float = 30.0) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=FOREVER)], operation_timeout=timeout
    )
    for future in futures.values():
        future.result(timeout=timeout)


def topic_exists(bootstrap: str, name: str, timeout: float = 10.0) -> bool:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    return name in admin.list_topics(timeout=timeout).topics


def partitions_of(bootstrap: str, name: str, timeout: float = 10.0) -> list[int]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = admin.list_topics(name, timeout=timeout).topics.get(name)
    if topic is None or topic.error is not None:
        raise RuntimeError(f"topic {name!r} does not exist on {bootstrap}")
    return sorted(topic.partitions)


def _probe_consumer(bootstrap: str, group: str = "session-engine-bench-probe") -> Consumer:
    # Never subscribes: it only reads watermarks and committed offsets, so it joins no group.
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "logger": _quiet_logger(),
        }
    )


def end_offsets(bootstrap: str, topic: str, timeout: float = 10.0) -> dict[int, tuple[int, int]]:
    """partition -> (low, high) watermarks."""
    consumer = _probe_consumer(bootstrap)
    try:
        partitions = partitions_of(bootstrap, topic)
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout) for p in partitions}
    finally:
        consumer.close()


def record_count(bootstrap: str, topic: str) -> int:
    return sum(high - low for low, high in end_offsets(bootstrap, topic).values())


def committed_lag(bootstrap: str, group: str, topic: str, timeout: float = 10.0) -> int:
    """How many records of ``topic`` the consumer group has not committed yet."""
    consumer = _probe_consumer(bootstrap, group)
    try:
        partitions = partitions_of(bootstrap, topic)
        committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=timeout)
        lag = 0
        for tp in committed:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=timeout)
            position = tp.offset if tp.offset >= 0 else 0
            lag += max(0, high - position)
        return lag
    finally:
        consumer.close()


def wait_for_commits(bootstrap: str, group: str, topic: str, deadline: float, interval: float = 0.5) -> bool:
    """Poll until the group has committed every record of ``topic``; False when ``deadline`` passes."""
    while time.monotonic() < deadline:
        try:
            if committed_lag(bootstrap, group, topic) == 0:
                return True
        except KafkaException:
            pass  # the group is (re)forming; ask again
        time.sleep(interval)
    return False


# --- producing -----------------------------------------------------------------------------------


def _producer(bootstrap: str, linger_ms: int) -> Producer:
    # What the API's appender uses (streams/kafka/producer.py): idempotent, acks=all, lz4, murmur2.
    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "partitioner": "murmur2_random",
            "compression.type": "lz4",
            "linger.ms": linger_ms,
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
            "client.id": "session-engine-bench",
            "logger": _quiet_logger(),
        }
    )


@dataclass
class ProduceResult:
    records: int
    seconds: float
    failed: int

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


def produce_all(bootstrap: str, topic: str, records: Iterable[Record], timeout: float = 300.0) -> ProduceResult:
    """Append every record as fast as the client goes, stamped with its event's time when it has one
    (as the API's appender stamps them); returns once Kafka acknowledged them all."""
    producer = _producer(bootstrap, linger_ms=20)
    failed = 0
    count = 0

    def on_delivery(err, msg) -> None:  # type: ignore[no-untyped-def]
        nonlocal failed
        if err is not None:
            failed += 1

    deadline = time.monotonic() + timeout
    started = time.perf_counter()
    for record in records:
        while True:
            try:
                producer.produce(
                    topic,
                    value=record.value,
                    key=record.key,
                    timestamp=record.timestamp_ms or 0,  # 0: the broker's clock
                    on_delivery=on_delivery,
                )
                break
            except BufferError:
                if time.monotonic() > deadline:
                    raise TimeoutError("the producer queue stayed full") from None
                producer.poll(0.05)
        producer.poll(0)
        count += 1
    remaining = producer.flush(max(1.0, deadline - time.monotonic()))
    seconds = time.perf_counter() - started
    if remaining:
        raise TimeoutError(f"{remaining} records not acknowledged within {timeout:.0f}s")
    if failed:
        raise RuntimeError(f"Kafka refused {failed} of {count} records")
    return ProduceResult(count, seconds, failed)


@dataclass
class PacedRun:
    """Records produced at a fixed rate; ``sent_ns[i]`` is the wall clock just before record i went out."""

    records: Sequence[Record]
    rate: float
    sent_ns: list[int] = field(default_factory=list)
    seconds: float = 0.0
    late_ticks: int = 0
    failed: int = 0

    @property
    def achieved_rate(self) -> float:
        return len(self.sent_ns) / self.seconds if self.seconds > 0 else 0.0


def produce_paced(
    bootstrap: str,
    topic: str,
    run: PacedRun,
    on_sent: Callable[[int], None] | None = None,
    timeout: float = 600.0,
) -> None:
    """Produce ``run.records`` at ``run.rate`` per second (1 ms ticks), recording each send time."""
    producer = _producer(bootstrap, linger_ms=2)  # the API appender's linger

    def on_delivery(err, msg) -> None:  # type: ignore[no-untyped-def]
        if err is not None:
            run.failed += 1

    total = len(run.records)
    run.sent_ns = [0] * total
    deadline = time.monotonic() + timeout
    start = time.perf_counter()
    sent = 0
    while sent < total and time.monotonic() < deadline:
        due = min(total, int((time.perf_counter() - start) * run.rate) + 1)
        if due - sent > run.rate * 0.005:  # more than 5 ms behind schedule
            run.late_ticks += 1
        while sent < due:
            record = run.records[sent]
            run.sent_ns[sent] = time.time_ns()
            try:
                producer.produce(topic, value=record.value, key=record.key, on_delivery=on_delivery)
            except BufferError:
                producer.poll(0.01)
                continue
            if on_sent is not None:
                on_sent(sent)
            sent += 1
        producer.poll(0)
        next_due = start + sent / run.rate
        pause = next_due - time.perf_counter()
        if pause > 0:
            time.sleep(min(pause, 0.001))
    run.seconds = time.perf_counter() - start
    run.sent_ns = run.sent_ns[:sent]
    producer.flush(30.0)


# --- reading a changelog -------------------------------------------------------------------------


def event_count(value: bytes) -> int | None:
    """The ``meta.eventCount`` of a stored session document (None for a tombstone or another shape)."""
    if not value:
        return None
    match = _EVENT_COUNT.search(value)
    if match:
        return int(match.group(1))
    try:
        return int(orjson.loads(value)["meta"]["eventCount"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


@dataclass(frozen=True)
class ChangelogRecord:
    key: bytes
    count: int | None
    timestamp_ms: int


def read_changelog(
    bootstrap: str,
    topic: str,
    start: dict[int, int] | None = None,
    timeout: float = 120.0,
    stop: dict[int, int] | None = None,
) -> list[ChangelogRecord]:
    """Every session record of ``topic`` from ``start`` (partition -> offset; default the beginning) to its
    end now, or to ``stop`` (partition -> offset, excluded) where that comes first; batch markers (keys
    starting with NUL) are skipped."""
    ends = end_offsets(bootstrap, topic)
    if stop is not None:
        ends = {p: (low, min(high, stop.get(p, high))) for p, (low, high) in ends.items()}
    # The changelog is written in transactions: its last offset is a commit marker that no
    # consumer returns, so the end of a partition comes as an event (read_committed, the default).
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "session-engine-bench-reader",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "logger": _quiet_logger(),
        }
    )
    assignments = []
    remaining: dict[int, int] = {}
    for partition, (low, high) in ends.items():
        offset = max(low, start.get(partition, low)) if start else low
        if offset < high:
            assignments.append(TopicPartition(topic, partition, offset if start else OFFSET_BEGINNING))
            remaining[partition] = high
    out: list[ChangelogRecord] = []
    if not assignments:
        consumer.close()
        return out
    consumer.assign(assignments)
    deadline = time.monotonic() + timeout
    try:
        while remaining and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=10_000, timeout=0.5):
                if msg.error() is not None:
                    if msg.error().code() == KafkaError._PARTITION_EOF and msg.partition() is not None:
                        remaining.pop(msg.partition(), None)
                    continue
                where, at = msg.partition(), msg.offset()
                end = remaining.get(where) if where is not None else None
                if where is None or end is None or at is None:
                    continue
                key = msg.key() or b""
                if at < end and not key.startswith((MARKER_PREFIX, CHUNK_PREFIX)):
                    value = msg.value()
                    # A session's value is what the store keeps: its last folded offset, then the state.
                    count = event_count(unpack_session(value)[1]) if value else None
                    out.append(ChangelogRecord(key, count, msg.timestamp()[1]))
                if at >= end - 1:
                    remaining.pop(where, None)
    finally:
        consumer.close()
    if remaining:
        raise TimeoutError(f"changelog {topic} not read to its end within {timeout:.0f}s")
    return out


def changelog_span_ms(bootstrap: str, topic: str, edge: int = 64) -> tuple[int, int] | None:
    """When a fold wrote its first and its last session record: the smallest producer timestamp among
    the first ``edge`` records of each partition of its changelog, the largest among the last
    ``edge`` (the fold writes nothing else there; markers are skipped). Reads a few hundred records,
    whatever the changelog's size. None for an empty changelog."""
    ends = end_offsets(bootstrap, topic)
    head = read_changelog(bootstrap, topic, start={p: low for p, (low, _) in ends.items()},
                          stop={p: low + edge for p, (low, _) in ends.items()})  # fmt: skip
    last = read_changelog(bootstrap, topic, start={p: max(low, high - edge) for p, (low, high) in ends.items()})
    if not head or not last:
        return None
    return min(r.timestamp_ms for r in head), max(r.timestamp_ms for r in last)


def topic_bytes(files: Iterable[tuple[Path, int]], topic: str) -> int:
    """The bytes of ``topic`` among a broker's files (path, size): those in its partitions' folders,
    ``<log dir>/<topic>-<partition>/`` (segments, indexes, checkpoints); another topic whose name
    starts with this one's is not counted."""
    folder = re.compile(re.escape(topic) + r"-\d+")
    return sum(size for path, size in files if folder.fullmatch(path.parent.name))


def broker_files(root: Path) -> Iterator[tuple[Path, int]]:
    """Every file under a broker's data folder, with the bytes it takes on disk (its allocated blocks,
    as ``du`` counts: Kafka preallocates each segment's index files, 10 MB each, as sparse files, so
    their apparent size says nothing). A file deleted meanwhile is left out: the broker rolls and
    cleans segments as it runs."""
    for path in root.rglob("*"):
        try:
            if path.is_file():
                yield path, path.stat().st_blocks * 512
        except OSError:
            continue


def worker_settings(app_id: str, events_topic: str) -> Settings:
    """The settings a bench worker of these names runs with (the workers get os.environ): its
    changelog topic, fold group, dead-letter topic and memory bounds."""
    return Settings.from_env({**os.environ, "SESSIONS_APP_ID": app_id, "SESSIONS_EVENTS_TOPIC": events_topic})


def changelog_topic(bootstrap: str, settings: Settings, timeout: float = 30.0) -> str:
    """The fold loop's changelog (``settings.changelog_topic``); wait until it exists."""
    name = settings.changelog_topic
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if topic_exists(bootstrap, name):
            return name
        time.sleep(0.5)
    raise RuntimeError(f"no changelog topic {name!r} appeared within {timeout:.0f}s")
