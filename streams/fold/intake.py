"""What one ``consume`` call brought, sorted for the fold: per served partition, the records to fold
(with their Kafka timestamps), where the batch ends, and the records that sit on another partition
than their key's (a producer's partitioner other than murmur2), which are moved, not folded here."""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field

from confluent_kafka import Message

from streams.fold.batch import SourceRecord
from streams.fold.outgoing import Moved
from streams.kafka.partitioner import MOVED_FROM_HEADER, misplaced, partition_of
from streams.kafka.records import record_timestamp

log = logging.getLogger(__name__)


@dataclass
class Intake:
    records: dict[int, list[SourceRecord]] = field(default_factory=dict)  # to fold, per partition
    stamps: dict[int, list[int]] = field(default_factory=dict)  # their Kafka timestamps (epoch ms)
    ends: dict[int, int] = field(default_factory=dict)  # the offset after each partition's last record
    elsewhere: dict[int, list[Message]] = field(default_factory=dict)  # records of other partitions' keys
    messages: list[Message] = field(default_factory=list)

    def timestamp(self, partition: int, offset: int) -> int:
        """A record's Kafka timestamp (a dead letter keeps it); 0 when not found. Dead letters are
        rare: a scan is fine."""
        for message in self.messages:
            if message.partition() == partition and message.offset() == offset:
                return record_timestamp(message)
        return 0


def split(messages: list[Message], serving: Collection[int], partitions: int) -> Intake:
    """A partition whose records all belong elsewhere has an empty list to fold: its marker still
    moves past them."""
    intake = Intake(messages=messages)
    by_partition, stamps, ends, elsewhere = intake.records, intake.stamps, intake.ends, intake.elsewhere
    for message in messages:
        error = message.error()
        if error is not None:
            if error.fatal():
                raise RuntimeError(f"consumer: {error.str()}")
            log.warning("consumer: %s", error.str())
            continue
        partition = message.partition() or 0
        if partition not in serving:
            continue  # fetched just before a revocation
        records = by_partition.get(partition)
        if records is None:
            records = by_partition[partition] = []
            stamps[partition] = []
        key, offset = message.key(), message.offset() or 0
        ends[partition] = offset + 1
        if misplaced(key, partition, partitions):
            elsewhere.setdefault(partition, []).append(message)  # its key's owner folds it
            continue
        records.append((key, message.value(), offset))
        stamps[partition].append(record_timestamp(message))
    return intake


def moves(messages: list[Message], partition: int, partitions: int) -> list[Moved]:
    """Each record read on ``partition`` whose key belongs on another, as it is appended there (its
    headers kept, plus where it was read; its timestamp kept)."""
    moved: list[Moved] = []
    for message in messages:
        key = message.key()
        assert key is not None  # a record without a key is never misplaced
        raw = message.headers() or []
        headers: list[tuple[str, str | bytes | None]] = list(raw.items() if isinstance(raw, dict) else raw)
        headers.append((MOVED_FROM_HEADER, f"{partition}@{message.offset()}".encode()))
        moved.append((partition_of(key, partitions), key, message.value(), headers, record_timestamp(message)))
    return moved
