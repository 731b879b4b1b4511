"""The changelog: a compacted topic, partition for partition with the event topic, that can rebuild
every store.

Per fold batch and partition the loop appends one record per changed session (key = session id,
value = the bytes the store keeps: the offset of the last event folded into it, 8 bytes big-endian,
then the encoded state; the same offset in decimal in the header ``source.offset``, for tools) and
then a marker (key = ``store.SOURCE_OFFSET``, value = the next event offset to fold, 8 bytes).
Each batch of a partition is one transaction (``streams.fold.checkpoint``) and every reader reads
``read_committed``: a marker in the changelog means every state of its batch, and of every batch
before it, is there too, and a batch its writer could not commit (a fenced owner's) is never read.

Restoring is a copy of raw bytes into the store, nothing decoded or re-packed: a session's value
is its stored value, a marker becomes the store's source offset.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from streams.fold.store import SOURCE_OFFSET, PartitionStore, pack_offset

log = logging.getLogger(__name__)

SOURCE_OFFSET_HEADER = "source.offset"
RESTORE_BATCH = 20_000


@dataclass
class Restored:
    records: int = 0
    seconds: float = 0.0
    complete: bool = True  # False when should_stop cut it short (what was copied is kept)


def record_value(message: Message) -> tuple[bytes, bytes | None]:
    """A changelog record as the store keeps it: the same bytes (a None value deletes)."""
    return message.key() or b"", message.value()


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
    low, high = consumer.get_watermark_offsets(tp, timeout=10, cached=False)
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
                    raise RuntimeError(f"reading {topic}[{partition}]: {error.str()}")
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


def marker(next_source_offset: int) -> tuple[bytes, bytes]:
    return SOURCE_OFFSET, pack_offset(next_source_offset)
