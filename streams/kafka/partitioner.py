"""Which partition of the events topic a session's records belong on: the one rule for the worker's
routing, its fold and its re-appends.

Kafka's Java default (murmur2 of the key), which the worker's own producers use
(``partitioner=murmur2_random``). librdkafka clients (confluent-kafka for Python, Go, .NET;
node-rdkafka) default to CRC32 instead: the fold loop moves what they put elsewhere
(``streams.fold.loop``), and ``docs/events.md`` says how to produce so that nothing needs moving.
"""

from __future__ import annotations

from functools import lru_cache

from aiokafka.partitioner import murmur2

# On a record the fold loop moved to its key's partition: where it was read ("<partition>@<offset>").
# Readers of every record (the event export) skip these copies; readers of sessions skip the originals.
MOVED_FROM_HEADER = "moved.from"

# The pure-Python murmur2 takes about 10 µs a key; the fold asks once per record, and sessions come
# back many times, so the answers are kept (a key of 36 bytes: about 150 bytes an entry).
CACHED_KEYS = 65_536


@lru_cache(maxsize=CACHED_KEYS)
def partition_of(key: bytes, partitions: int) -> int:
    """The partition of ``partitions`` a record keyed ``key`` belongs on."""
    partition: int = (murmur2(key) & 0x7FFFFFFF) % partitions
    return partition


def misplaced(key: bytes | None, partition: int, partitions: int) -> bool:
    """The record sits on another partition than its key's: its session is not folded from here."""
    return key is not None and partition_of(key, partitions) != partition
