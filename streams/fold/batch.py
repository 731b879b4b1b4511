"""One batch of one partition's records through the fold, with no I/O: the data plane's pure step.

Records are grouped by session in log order; each touched session is read once (through ``read``,
which the loop backs with its cache and the store), folded over its events of the batch by the one
per-session step every fold of the log shares (``projections.step``: erasures, the lifetime, the
size limit), and encoded once. The outcome equals folding the records one at a time: each session sees its
events in order, and a record that cannot be folded is set aside with its reason.

Every stored session remembers the offset of the last record folded into it, so a record at or
below it is a redelivery after a crash and is skipped exactly, whatever the batch size. The
``recent_ids`` memory inside the state stays as the guard against clients that retry an event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from projections.rules import Rules
from projections.step import NO_SESSION, Session, fold_session
from schemas.events import Event, EventDecodeError, decode_event, too_far_ahead, type_name
from schemas.session import SessionState
from streams.fold import locator

log = logging.getLogger(__name__)


class Stored(NamedTuple):
    """A session as the store holds it: the offset of the last record folded into it, the state,
    and its locator (the offsets of its events: ``streams.fold.locator``)."""

    offset: int
    state: SessionState
    locator: bytes = b""
    activity_ms: int = 0  # the time of its last event (epoch ms); 0: unknown


class Written(NamedTuple):
    offset: int  # of the last record folded into the session
    encoded: bytes  # the state, encoded once
    state: SessionState
    locator: bytes  # the stored locator with this batch's events appended (or a fresh one)
    activity_ms: int  # the time of the last event folded (epoch ms)


class DeadRecord(NamedTuple):
    offset: int
    key: bytes | None
    value: bytes | None
    reason: str
    event_type: str = ""  # empty when the record did not decode
    event_id: str = ""


@dataclass
class BatchOutcome:
    writes: dict[bytes, Written] = field(default_factory=dict)  # changed sessions only
    dead: list[DeadRecord] = field(default_factory=list)
    folded: list[tuple[str, bytes]] = field(default_factory=list)  # (event id, its session key)
    # Locators that grew too long, or of erased sessions, sealed under keys of their own
    # (locator.chunk_key -> its bytes): the timeline still finds an erased session's events.
    sealed: dict[bytes, bytes] = field(default_factory=dict)
    # Sessions the batch ended with a ``session.erased``: deleted (store and changelog tombstone).
    erased: dict[bytes, int] = field(default_factory=dict)  # session key -> the erasure's offset
    skipped: int = 0  # records at or below their session's folded offset (redeliveries)
    # Events folded, per event class (named once per batch by ``folded_by_type``, not per event).
    folded_by_class: dict[type, int] = field(default_factory=dict)

    def folded_by_type(self) -> dict[str, int]:
        """Events folded per event type."""
        return {type_name(cls): count for cls, count in self.folded_by_class.items()}

    def dead_by_type(self) -> dict[str, int]:
        """Dead letters per event type ("" for records that did not decode)."""
        counts: dict[str, int] = {}
        for dead in self.dead:
            counts[dead.event_type] = counts.get(dead.event_type, 0) + 1
        return counts


def batch_figures(outcomes: Iterable[BatchOutcome]) -> tuple[dict[str, int], dict[str, int], int]:
    """A batch's events folded by type, dead letters by type ("": did not decode) and redeliveries
    skipped, over its partitions (what the metrics and the explorer count)."""
    folded: dict[str, int] = {}
    dead: dict[str, int] = {}
    skipped = 0
    for outcome in outcomes:
        for event_type, count in outcome.folded_by_type().items():
            folded[event_type] = folded.get(event_type, 0) + count
        if outcome.dead:
            for event_type, count in outcome.dead_by_type().items():
                dead[event_type] = dead.get(event_type, 0) + count
        skipped += outcome.skipped
    return folded, dead, skipped


Reader = Callable[[bytes], Stored | None]
# (key, value, offset) of one partition, in offset order.
SourceRecord = tuple[bytes | None, bytes | None, int]


def fold_batch(
    records: Iterable[SourceRecord],
    read: Reader,
    rules: Rules,
    max_session_bytes: int,
    lifetime_ms: int = 0,
    stamps: Sequence[int] | None = None,
    max_skew_ms: int = 0,
) -> BatchOutcome:
    """``lifetime_ms`` (0: forever): an event more than this after its session's latest one
    starts the session afresh (the old one expired: ``projections.step``, which the replays and
    ``sessionctl export --sessions`` fold with too). ``stamps``: the records' Kafka timestamps
    (epoch ms, 0 unknown), one per record; with ``max_skew_ms``, an event stamped further ahead of
    its record's timestamp is set aside (:func:`record_refusal`)."""
    outcome = BatchOutcome()
    by_session: dict[bytes, list[tuple[int, Event, bytes]]] = {}
    for index, (key, value, offset) in enumerate(records):
        if value is None:
            outcome.dead.append(DeadRecord(offset, key, value, "the record has no value"))
            continue
        try:
            event = decode_event(value)
        except EventDecodeError as exc:
            outcome.dead.append(DeadRecord(offset, key, value, f"{exc.path}: {exc.message}"))
            continue
        reason = record_refusal(key, event, stamps[index] if stamps is not None else 0, max_skew_ms)
        if reason or key is None:  # (a None key has its reason: for the type checker)
            outcome.dead.append(DeadRecord(offset, key, value, reason, type_name(type(event)), event.id))
            continue
        pending = by_session.get(key)
        if pending is None:
            by_session[key] = [(offset, event, value)]
        else:
            pending.append((offset, event, value))
    for key, events in by_session.items():
        _fold_session(key, events, read(key), rules, max_session_bytes, lifetime_ms, outcome)
    return outcome


def record_refusal(key: bytes | None, event: Event, stamp_ms: int, max_skew_ms: int) -> str:
    """Why a decoded record is not folded at all ("" when it is), whoever folds the log (the worker,
    ``sessionctl export --sessions``): its key is not its event's subject, or its event's time lies
    further than ``max_skew_ms`` (0: no limit) ahead of the record's Kafka timestamp ``stamp_ms``
    (0: unknown), as the API refuses at intake (one event a day ahead keeps its session alive a day)."""
    if key is None or key != event.subject.encode():
        return "record key does not equal the event's subject"
    if max_skew_ms and stamp_ms > 0:
        ahead = too_far_ahead(event.time, stamp_ms, max_skew_ms, "its record's Kafka timestamp")
        if ahead:
            return f"$.time: {ahead}"
    return ""


def _fold_session(
    key: bytes,
    events: list[tuple[int, Event, bytes]],
    stored: Stored | None,
    rules: Rules,
    max_session_bytes: int,
    lifetime_ms: int,
    outcome: BatchOutcome,
) -> None:
    """Fold one session's events of the batch by the one per-session policy
    (``projections.step``), then do the batch's bookkeeping: redeliveries skipped, refusals
    dead-lettered, locators grown (and sealed at an erasure), the state written once."""
    folded_offset = stored.offset if stored is not None else -1
    if events[0][0] <= folded_offset:  # offsets grow within a batch: the redeliveries come first
        fresh = [entry for entry in events if entry[0] > folded_offset]
        outcome.skipped += len(events) - len(fresh)
        if not fresh:
            return
        events = fresh
    session = Session(stored.state, stored.activity_ms) if stored is not None else NO_SESSION
    result = fold_session(session, [event for _, event, _ in events], rules, lifetime_ms, max_session_bytes)
    # The locator this batch's events extend, and its last entry (an erasure seals it and starts over).
    base_locator = stored.locator if stored is not None else b""
    base_last = last_offset = folded_offset
    applied: list[Event] = []
    applied_offsets: list[int] = []
    for (offset, event, value), done in zip(events, result.outcomes, strict=True):
        if done.refusal:
            if done.error is not None:
                log.error(
                    "fold failed for event %s",
                    event.id,
                    exc_info=done.error,
                    extra={"session_id": event.subject, "event_id": event.id},
                )
            outcome.dead.append(DeadRecord(offset, key, value, done.refusal, type_name(type(event)), event.id))
            continue
        applied.append(event)
        last_offset = offset
        if done.ended:  # erased: its events stay located (sealed), nothing else is left
            erased = locator.append(base_locator, base_last, [*applied_offsets, offset])
            outcome.sealed[locator.chunk_key(key, locator.offsets(erased)[0])] = erased
            base_locator, base_last, applied_offsets = b"", offset, []
        else:
            applied_offsets.append(offset)
    if not applied:
        return
    state = result.session.state
    if state is None:  # the batch's last word on the session was its erasure
        outcome.erased[key] = last_offset
    else:
        grown = locator.append(base_locator, base_last, applied_offsets)
        if len(grown) > locator.LOCATOR_MAX_BYTES:
            outcome.sealed[locator.chunk_key(key, locator.offsets(grown)[0])] = grown
            grown = b""
        outcome.writes[key] = Written(last_offset, result.encoded, state, grown, result.session.activity_ms)
    outcome.folded.extend((event.id, key) for event in applied)
    by_class = outcome.folded_by_class
    for event in applied:  # counted once the session's events are written, as `folded` is
        by_class[type(event)] = by_class.get(type(event), 0) + 1
