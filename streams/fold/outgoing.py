"""What a folded batch sends to Kafka, per partition, before anything reaches the store: the changelog
records (sealed locators, one state or tombstone per changed session, the marker naming the next
event offset to fold), the dead letters, and the records moved to their key's partition. Built
without I/O; ``streams.fold.checkpoint`` sends them."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from streams.fold.batch import BatchOutcome
from streams.fold.changelog import SOURCE_OFFSET_HEADER
from streams.kafka.producer_calls import Header

log = logging.getLogger(__name__)

# A record re-appended on its key's partition: (that partition, key, value, headers, timestamp).
Moved = tuple[int, bytes, bytes | None, list[Header], int]


@dataclass(frozen=True)
class Target:
    """Where the checkpoint writes (one table generation) and how."""

    bootstrap: str
    events_topic: str
    changelog_topic: str
    dlq_topic: str
    writer_id: str
    transactional: bool = True


@dataclass
class Outgoing:
    """One partition's records of one batch (or one expiry sweep)."""

    changelog: list[tuple[bytes, bytes | None, list[Header]]] = field(default_factory=list)
    dead: list[tuple[bytes | None, bytes | None, list[Header], int]] = field(default_factory=list)  # + timestamp
    next_source_offset: int | None = None  # the batch's marker; None: no marker (an expiry)
    # Records read here that belong on another partition of the events topic: (that partition,
    # key, value, headers, timestamp), re-appended there with the marker that goes past them.
    moved: list[Moved] = field(default_factory=list)


@dataclass
class Published:
    """What became of each partition's records."""

    committed: dict[int, int | None] = field(default_factory=dict)  # -> changelog offset of its marker
    fenced: set[int] = field(default_factory=set)  # another worker owns it now: let go of it
    failed: set[int] = field(default_factory=set)  # not written (refused, or gave up): fold it again
    moved: bool = False  # the group generation changed: a revocation is on its way


def batch_records(
    target: Target,
    partition: int,
    outcome: BatchOutcome,
    packed: Mapping[bytes, bytes | None],
    next_source_offset: int,
    as_logged: Mapping[tuple[int, int], bytes],
    timestamp: Callable[[int, int], int],
) -> Outgoing:
    """A batch's records for one partition: sealed locators, states (tombstones for erased ones),
    dead letters, then the marker naming the next event offset to fold."""
    out = Outgoing(next_source_offset=next_source_offset)
    for key, chunk in outcome.sealed.items():
        out.changelog.append((key, chunk, []))
    for key, written in outcome.writes.items():
        out.changelog.append((key, packed[key], [(SOURCE_OFFSET_HEADER, str(written.offset).encode())]))
    for key, erased_at in outcome.erased.items():  # a tombstone: compaction forgets the state
        out.changelog.append((key, None, [(SOURCE_OFFSET_HEADER, str(erased_at).encode())]))
    for dead in outcome.dead:
        log.warning(
            "dead letter %s[%d]@%d: %s", target.events_topic, partition, dead.offset, dead.reason,
            extra={"session_id": _session_id(dead.key), "event_id": dead.event_id or None},
        )  # fmt: skip
        headers: list[Header] = [
            ("dlq.reason", dead.reason.encode()),
            ("dlq.topic", target.events_topic.encode()),
            ("dlq.partition", str(partition).encode()),
            ("dlq.offset", str(dead.offset).encode()),
        ]
        # As logged: a record whose personal values were opened for the fold goes sealed.
        value = as_logged.get((partition, dead.offset), dead.value)
        out.dead.append((dead.key, value, headers, timestamp(partition, dead.offset)))
    return out


def expiry_records(sealed: Mapping[bytes, bytes], sessions: Iterable[bytes]) -> Outgoing:
    """An expiry's records for one partition: the sealed locators, then the sessions' tombstones."""
    out = Outgoing()
    out.changelog.extend((key, chunk, []) for key, chunk in sealed.items())
    out.changelog.extend((key, None, []) for key in sessions)
    return out


def _session_id(key: bytes | None) -> str | None:
    """A record key as a session id for a log record (None when it has none or is not text)."""
    if not key:
        return None
    try:
        return key.decode()[:64]
    except UnicodeDecodeError:
        return None
