"""A window of the event log, read from Kafka: from the first record stamped at or after a start
(Kafka's time index) to the first stamped at or after a stop, or to each partition's end, per
partition, in batches; and the options that name a window (RFC 3339 instants, a slack).

Which events are written is decided by the event's own ``time``, never by the Kafka timestamp: the
slack only widens the window read, so that a record whose Kafka timestamp is off its event's
``time`` by up to the slack (written by another producer, a skewed clock, a late emitter) is still
found. ``sessionctl export`` and ``export --sessions`` read through this.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from streams.kafka.clients import client_config
from streams.kafka.partitioner import MOVED_FROM_HEADER

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

DEFAULT_SLACK: Final = timedelta(minutes=5)


class ExportError(ValueError):
    """A bad option: ``option`` names it (``--from``), ``message`` says what is wrong."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option
        self.message = message


# --- pure part ----------------------------------------------------------------------------------


def parse_instant(text: str, option: str) -> datetime:
    """An RFC 3339 instant with a timezone (``2026-11-26T12:00:00Z``, ``...+02:00``), in UTC."""
    try:
        instant = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ExportError(option, f"{text!r} is not an RFC 3339 instant (e.g. 2026-11-26T12:00:00Z)") from None
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ExportError(option, f"{text!r} has no timezone: add Z or an offset such as +00:00")
    return instant.astimezone(UTC)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str, option: str = "--slack") -> timedelta:
    """``300``, ``300s``, ``5m``, ``1h``, ``1d``, ``250ms`` (a bare number is seconds)."""
    match = _DURATION.match(text)
    if match is None:
        raise ExportError(option, f"{text!r} is not a duration (e.g. 5m, 300s, 1h)")
    return timedelta(seconds=float(match[1]) * _UNIT_SECONDS[match[2] or "s"])


def check_range(start: datetime, end: datetime) -> None:
    if end < start:
        raise ExportError("--to", f"{end.isoformat()} is before --from {start.isoformat()}: the range is reversed")
    if end == start:
        raise ExportError("--to", "equals --from: the range [from, to) is empty")


EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def to_ms(instant: datetime) -> int:
    return (instant - EPOCH) // timedelta(milliseconds=1)


def moved_copy(message: Any) -> bool:
    """A copy the fold loop appended on the record's key's partition (``streams.fold.loop``): the
    event is exported once, from where it was produced."""
    headers = message.headers()
    return bool(headers) and any(name == MOVED_FROM_HEADER for name, _ in headers)


# --- reading Kafka ------------------------------------------------------------------------------


@dataclass
class Summary:
    written: int = 0
    skipped: int = 0  # records that are not events
    read: int = 0  # records read from Kafka, all partitions
    partitions: int = 0  # partitions of the topic
    partitions_read: int = 0  # partitions that had records in the window
    seconds: float = 0.0
    planned: int = 0  # records between each partition's start and the high watermark: at most read
    starts: dict[int, int] = field(default_factory=dict)
    moved_copies: int = 0  # records the workers moved to their key's partition: the original is written


ProgressCallback = Callable[[int, int, int], None]  # (records read, events written, records planned)


# Takes the in-window records of one poll (confluent-kafka messages, log order per partition) and
# answers how many it counts (events written, events folded) for the progress display.
BatchHandler = Callable[[list[Any]], int]


def read_window(
    bootstrap: str,
    topic: str,
    start_ms: int | None,
    stop_ms: int,
    handle: BatchHandler,
    summary: Summary,
    progress: ProgressCallback | None = None,
    idle_timeout_s: float = 30.0,
) -> int:
    """Hand ``handle`` the records of every partition of ``topic`` from the first one stamped at or
    after ``start_ms`` (``None``: from the partition's beginning) up to the first one stamped at or
    after ``stop_ms``, or to the high watermark seen when the read began. Returns the sum of what
    ``handle`` counted; fills the reading figures of ``summary``."""
    from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

    counted = 0
    consumer = Consumer(
        {
            **client_config(bootstrap),
            "group.id": "session-engine-export",  # never joined nor committed: assign() only
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            # The end of a partition as an event: its last offset may be a transaction's commit
            # marker (the fold loop moves misplaced records in transactions), which no consumer
            # returns, so "the last record read" would never reach the high watermark.
            "enable.partition.eof": True,
            "fetch.max.bytes": 52428800,
            "queued.max.messages.kbytes": 262144,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            raise KafkaException(f"topic {topic} does not exist")
        partitions = sorted(metadata.partitions)
        summary.partitions = len(partitions)
        firsts: dict[int, int] = {}
        if start_ms is not None:
            found = consumer.offsets_for_times(
                [TopicPartition(topic, p, max(start_ms, 0)) for p in partitions], timeout=30
            )
            for tp in found:
                if tp.error is not None:
                    raise KafkaException(tp.error)
                firsts[tp.partition] = tp.offset
        ends: dict[int, int] = {}
        assignment = []
        for partition in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            # -1: no record stamped at or after the start; the partition has nothing to read.
            first = low if start_ms is None else firsts.get(partition, -1)
            if 0 <= first < high:
                summary.starts[partition] = first
                ends[partition] = high
                summary.planned += high - first
                assignment.append(TopicPartition(topic, partition, first))
        summary.partitions_read = len(assignment)
        if assignment:
            consumer.assign(assignment)
        remaining = set(ends)
        planned_left = summary.planned
        idle_since = time.monotonic()
        while remaining:
            messages = consumer.consume(10_000, 0.5)
            if not messages:
                if time.monotonic() - idle_since > idle_timeout_s:
                    raise TimeoutError(
                        f"no record for {idle_timeout_s:.0f}s while partitions {sorted(remaining)} have more"
                    )
                continue
            idle_since = time.monotonic()
            batch = []
            for message in messages:
                error = message.error()
                if error is not None and error.code() == KafkaError._PARTITION_EOF:
                    if message.partition() in remaining:
                        remaining.discard(message.partition() or 0)
                        planned_left -= max(0, ends[message.partition() or 0] - (message.offset() or 0))
                    continue
                if error is not None:
                    raise KafkaException(error)
                partition, offset = message.partition() or 0, message.offset() or 0
                if partition not in remaining or offset >= ends[partition]:
                    continue
                _, timestamp = message.timestamp()
                if timestamp >= stop_ms:
                    # Past the window: the rest of this partition is later still (up to the slack).
                    remaining.discard(partition)
                    consumer.pause([TopicPartition(topic, partition)])
                    planned_left -= ends[partition] - offset
                    continue
                summary.read += 1
                planned_left -= 1
                batch.append(message)
                if offset + 1 >= ends[partition]:
                    remaining.discard(partition)
            if batch:
                counted += handle(batch)
            if progress is not None:
                progress(summary.read, counted, summary.read + max(planned_left, 0))
    finally:
        consumer.close()
    return counted
