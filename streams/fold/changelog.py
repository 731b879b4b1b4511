"""The changelog: a compacted topic, partition for partition with the event topic, that can rebuild
every store.

Per fold batch and partition the loop appends one record per changed session (key = session id,
value = the bytes the store keeps: the offset of the last event folded into it, 8 bytes big-endian,
then the encoded state; the same offset in decimal in the header ``source.offset``, for tools) and
then a marker (key = ``store.SOURCE_OFFSET``, value = the next event offset to fold, 8 bytes).
Each batch of a partition is one transaction (``streams.fold.checkpoint``) and every reader reads
``read_committed``: a marker in the changelog means every state of its batch, and of every batch
before it, is there too, and a batch its writer could not commit (a fenced owner's) is never read.

Restoring (``streams.fold.restore``) is a copy of raw bytes into the store, nothing decoded or
re-packed: a session's value is its stored value, a marker becomes the store's source offset.
"""

from __future__ import annotations

from confluent_kafka import Message

from streams.fold.store import SOURCE_OFFSET, pack_offset

SOURCE_OFFSET_HEADER = "source.offset"


def record_value(message: Message) -> tuple[bytes, bytes | None]:
    """A changelog record as the store keeps it: the same bytes (a None value deletes)."""
    return message.key() or b"", message.value()


def marker(next_source_offset: int) -> tuple[bytes, bytes]:
    return SOURCE_OFFSET, pack_offset(next_source_offset)
