"""Restoring a partition from its changelog: the assignment's catch-up (from where the store stands
to the changelog's end) and a rebuild of a lost data folder (the same from offset 0). Raw records
copied in ``WriteBatch``es of up to ``RESTORE_BATCH``: nothing decoded or re-packed.

Reads are ``read_committed`` (the consumer's configuration, ``streams.fold.loop``): a batch its
writer could not commit, a fenced owner's late one, is never restored. The last offset of a
transactional changelog is a commit marker, which no consumer returns: the end of the partition
comes as an EOF event instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, TopicPartition

from streams.fold.changelog import record_value
from streams.fold.partition import OpenPartition
from streams.fold.store import PartitionStore
from streams.kafka.clients import watermarks_once_kafka_answers

log = logging.getLogger(__name__)

RESTORE_BATCH = 20_000


@dataclass
class Restored:
    records: int = 0
    seconds: float = 0.0
    complete: bool = True  # False when should_stop cut it short (what was copied is kept)


def catch_up(
    consumer: Consumer,
    topic: str,
    partition: int,
    store: PartitionStore,
    should_stop: Callable[[], bool],
    poll_timeout_s: float = 0.2,
    on_progress: Callable[[int], None] | None = None,
) -> Restored:
    """Copy the changelog from where the store stands to its end (the end seen when starting).

    A store that claims more than the changelog holds (the topic was recreated) is wiped and rebuilt.
    """
    started = time.monotonic()
    tp = TopicPartition(topic, partition)
    ends = watermarks_once_kafka_answers(consumer, tp, should_stop)  # through a broker's death
    if ends is None:
        return Restored(complete=False, seconds=time.monotonic() - started)
    low, high = ends
    start = store.changelog_offset
    if start is not None and start > high:
        log.warning(
            "store of partition %d stands at changelog offset %d but %s[%d] ends at %d: rebuilding it",
            partition, start, topic, partition, high,
        )  # fmt: skip
        store.wipe()
        start = None
    start = max(start if start is not None else low, low)
    restored = Restored()
    if start >= high:
        return restored
    consumer.assign([TopicPartition(topic, partition, start)])
    try:
        position = start
        while position < high:
            if should_stop():
                break
            # consume() returns once it has this many, or at the timeout: asking for no more than
            # what is left returns at once, except at the end when commit markers (which it never
            # returns) sit there; a short timeout, and the end of the partition comes as an event.
            messages = consumer.consume(min(RESTORE_BATCH, high - position), poll_timeout_s)
            records = []
            for message in messages:
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        # The end (read_committed: past the last commit marker, which no consumer
                        # returns): the restore is complete even though no record sits there.
                        position = max(position, min(high, message.offset() or 0))
                        continue
                    if error.fatal():
                        raise RuntimeError(f"reading {topic}[{partition}]: {error.str()}")
                    # A broker going or coming (the client reconnects and fetches on by itself).
                    log.warning("reading %s[%d]: %s", topic, partition, error.str())
                    continue
                offset = message.offset() or 0
                if offset >= high:
                    continue
                records.append(record_value(message))
                position = offset + 1
            if records:
                store.restore(records, position)
                restored.records += len(records)
                if on_progress is not None:
                    on_progress(len(records))
            elif not messages:
                # Compaction may leave no record at the very end: the consumer's position says.
                position = max(position, _position(consumer, tp))
                if position < high:
                    log.info("catching up %s[%d]: at %d of %d", topic, partition, position, high)
        if position >= high and store.changelog_offset != high:
            store.restore((), high)
    finally:
        consumer.unassign()
    restored.seconds = time.monotonic() - started
    restored.complete = position >= high
    return restored


def _position(consumer: Consumer, tp: TopicPartition) -> int:
    (current,) = consumer.position([tp])
    return int(current.offset) if current.offset >= 0 else -1


def restore_partition(
    consumer: Consumer,
    topic: str,
    partition: int,
    state: OpenPartition,
    should_stop: Callable[[], bool],
    on_progress: Callable[[int], None],
) -> bool:
    """An assignment's restore of one partition (its transactional id already taken over, so the
    changelog's end is final); False when ``should_stop`` cut it short: the store keeps what was
    copied, and the next assignment goes on from there."""
    restored = catch_up(consumer, topic, partition, state.store, should_stop, on_progress=on_progress)
    if restored.records:
        # Another worker may have folded this partition meanwhile: what was cached is old.
        state.cache.clear()
        rate = restored.records / restored.seconds if restored.seconds else 0.0
        log.info(
            "partition %d: %d changelog records restored in %.2fs (%.0f/s)",
            partition, restored.records, restored.seconds, rate,
        )  # fmt: skip
    if not restored.complete:
        log.info("partition %d: restore cut short by a rebalance; it goes on at the next assignment", partition)
    return restored.complete
