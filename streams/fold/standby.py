"""Standby copies: partitions this worker does not own, kept warm by tailing their changelog into
their stores (the restore's raw copy, kept running; nothing decoded), so that a promotion catches
up only what the owner wrote since the last copy, and ``X-Session-Allow-Stale`` reads can be
answered from the copy with how stale it may be.

The tail reads ``read_committed``: a batch its owner could not commit (a fenced owner's late one,
``streams.fold.checkpoint``) is never copied. A partition's end comes as an EOF event, past the
commit marker that closes its owner's last transaction: that is when a copy counts as caught up.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from streams.fold.changelog import record_value
from streams.fold.restore import RESTORE_BATCH
from streams.fold.store import PartitionStore

LAG_EVERY_S = 0.5  # how often the copies' lag against the changelog's end is looked at


class Standbys:
    """The loop's thread only, except :meth:`lag` and :meth:`caught_up_at` (any thread)."""

    def __init__(self, topic: str, store_of: Callable[[int], PartitionStore]) -> None:
        self.topic = topic  # the changelog of the table generation served
        self.consumer: Consumer | None = None  # set by the loop's start (no I/O before)
        self._store_of = store_of  # a partition's store, opened when needed
        self.partitions: frozenset[int] = frozenset()
        self._caught_up_at: dict[int, float] = {}  # partition -> when it last had the end (epoch s)
        self._lag: dict[int, int] = {}
        self._looked_at = 0.0

    def keep_warm(self, standbys: frozenset[int]) -> None:
        """Tail exactly ``standbys``' changelog partitions into their stores from now on (a
        promoted partition leaves first: nothing tailed lands after this)."""
        assert self.consumer is not None
        leaving, joining = self.partitions - standbys, standbys - self.partitions
        if leaving:
            self.consumer.incremental_unassign([TopicPartition(self.topic, p) for p in sorted(leaving)])
            for partition in leaving:
                self._caught_up_at.pop(partition, None)
                self._lag.pop(partition, None)
        starts = []
        for partition in sorted(joining):
            offset = self._store_of(partition).changelog_offset
            starts.append(TopicPartition(self.topic, partition, offset if offset is not None else OFFSET_BEGINNING))
        if starts:
            self.consumer.incremental_assign(starts)
        self.partitions = standbys

    def tail(self, timeout_s: float) -> None:
        """Copy what the owners committed to the standbys' changelog partitions into their stores."""
        assert self.consumer is not None
        messages = self.consumer.consume(RESTORE_BATCH, timeout_s)
        by_partition: dict[int, list[tuple[bytes, bytes | None]]] = {}
        last: dict[int, int] = {}
        ends: dict[int, int] = {}
        for message in messages:
            partition = message.partition() or 0
            if partition not in self.partitions:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    ends[partition] = message.offset() or 0
                continue
            by_partition.setdefault(partition, []).append(record_value(message))
            last[partition] = message.offset() or 0
        for partition, records in by_partition.items():
            self._store_of(partition).restore(records, max(last[partition] + 1, ends.pop(partition, 0)))
        for partition, end in ends.items():
            store = self._store_of(partition)
            if end > (store.changelog_offset or 0):
                store.restore((), end)
        now = time.monotonic()
        if now - self._looked_at < LAG_EVERY_S and not by_partition:
            return
        self._looked_at = now
        for partition in self.partitions:
            try:
                _, high = self.consumer.get_watermark_offsets(TopicPartition(self.topic, partition), cached=True)
            except Exception:  # noqa: BLE001 - no figure yet
                continue
            position = self._store_of(partition).changelog_offset or 0
            if high < 0:
                continue
            self._lag[partition] = max(0, high - position)
            if position >= high:
                self._caught_up_at[partition] = time.time()

    def lag(self) -> dict[int, int]:
        """Changelog records not yet copied, per standby partition (as last seen)."""
        return dict(self._lag)

    def caught_up_at(self, partition: int) -> float | None:
        """When the partition's copy last had everything its owner had committed (epoch s);
        None when it is no standby here or never caught up."""
        return self._caught_up_at.get(partition) if partition in self.partitions else None
