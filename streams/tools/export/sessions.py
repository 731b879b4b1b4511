"""``sessionctl export --sessions``: the session documents as of ``T2`` of the sessions active in
``[T1, T2)``, to JSON Lines or Parquet.

A session's document as of ``T2`` is the pure fold of its events whose ``time`` is before ``T2``, in
log order, by the worker's own per-session step (``projections.step``, with the worker's rules and
lifetime): a ``session.erased`` leaves no document (unless later events start a new session), and
an event more than the lifetime after the session's latest one starts it afresh, as the worker
serves it. So every partition is read from its beginning, not from ``T1``: up to the first record
stamped at or after ``T2 + slack`` (the slack rule of ``streams.tools.export.events``), folding as it
goes. A session is *active in the range* when at least one of its events has its ``time`` in
``[T1, T2)``; only those are written, each as its last document before ``T2``, even when it expired
after its last event (the export describes the sessions active in the range, not only those still
alive at ``T2``).

The folded states are kept encoded (msgspec JSON bytes, behind a flag byte saying whether the
session is active and its activity for the lifetime rule: ``pack``), in a temporary RocksDB store
by default, so that millions of sessions cost disk, not Python objects. Records the worker would
not fold are skipped the way it skips them: a record that is not an event, whose key is not its
event's subject, an event the session refuses (``EventRejected``, or a failing rule), an event that
would grow the session over ``max_session_bytes``.

Sealed personal values are redacted, or opened with the master key, before an event is decoded
(``streams.tools.export.events``, the ``unseal`` of :class:`SessionFolder`): the fold sees the stand-ins
(``[redacted]``, ``[erased]``) or the clear values, and logins are folded either way.
"""

from __future__ import annotations

import logging
import os
import shutil
import struct
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final, NamedTuple, Protocol

from projections.rules import Rules
from projections.step import NO_SESSION, Session, fold_session
from schemas.events import Event, EventDecodeError, decode_event
from schemas.session import SessionState, decode_state
from streams.fold.batch import record_refusal
from streams.history.window import DEFAULT_SLACK, ProgressCallback, Summary, read_window, to_ms
from streams.kafka.partitioner import misplaced
from streams.kafka.records import record_timestamp
from streams.privacy.sealing import is_sealed, redact_json
from streams.tools.export.events import Unseal
from streams.tools.export.session_files import SessionWriter, open_session_writer

log = logging.getLogger(__name__)

ACTIVE: Final = b"\x01"
INACTIVE: Final = b"\x00"


# --- pure part ----------------------------------------------------------------------------------


_ACTIVITY = struct.Struct(">q")  # the session's activity (epoch ms), after the flag byte


class Packed(NamedTuple):
    active: bool  # the session has an event in the range
    encoded: bytes  # its state (b"": none, e.g. erased)
    activity_ms: int  # the latest event time folded into it (``projections.lifetime``)


def pack(active: bool, encoded: bytes, activity_ms: int = 0) -> bytes:
    """A stored session: one flag byte (active in the range or not), its activity, its encoded state."""
    return (ACTIVE if active else INACTIVE) + _ACTIVITY.pack(activity_ms) + encoded


def unpack(stored: bytes) -> Packed:
    (activity_ms,) = _ACTIVITY.unpack_from(stored, 1)
    return Packed(stored[:1] == ACTIVE, stored[1 + _ACTIVITY.size :], activity_ms)


@dataclass
class FoldCounts:
    skipped: int = 0  # records that are not events (no value, not JSON, not a known event)
    mismatched: int = 0  # events the worker dead-letters whatever their session (``record_refusal``)
    later: int = 0  # events whose time is at or after T2 (read because of the slack, not folded)
    folded: int = 0  # events folded (erasures included)
    refused: int = 0  # events the session refused, or that would grow it over the size limit


class States(Protocol):
    """Where the folded sessions wait, packed (``pack``), keyed by session id."""

    def get(self, key: bytes) -> bytes | None: ...

    def put_many(self, items: dict[bytes, bytes]) -> None: ...

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every session, in key order."""
        ...

    def close(self) -> None: ...


class MemoryStates:
    def __init__(self) -> None:
        self._states: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        return self._states.get(key)

    def put_many(self, items: dict[bytes, bytes]) -> None:
        self._states.update(items)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        for key in sorted(self._states):
            yield key, self._states[key]

    def close(self) -> None:
        self._states.clear()


@dataclass
class SessionFolder:
    """Folds records of one read into ``states``; decides which events count for which session."""

    start: datetime
    end: datetime
    rules: Rules
    states: States
    sessions: frozenset[str] = frozenset()  # only these (all when empty)
    max_session_bytes: int = 256 * 1024
    unseal: Unseal = redact_json  # a record holding sealed values: redacted (default) or opened
    lifetime_ms: int = 0  # sessions' lifetime, as the worker's (0: forever)
    max_skew_ms: int = 0  # events further ahead of their record's timestamp are not folded (0: no limit)

    def __post_init__(self) -> None:
        self.counts = FoldCounts()
        self._wanted = frozenset(s.encode() for s in self.sessions)

    def take(self, records: Iterable[tuple[bytes | None, bytes | None]], stamps: Sequence[int] | None = None) -> int:
        """Fold a batch of ``(key, value)`` records in log order (``stamps``: their Kafka timestamps,
        epoch ms); returns the events folded."""
        counts = self.counts
        before = counts.folded
        by_session: dict[bytes, list[Event]] = {}
        active: set[bytes] = set()
        for index, (key, value) in enumerate(records):
            if value is None:
                counts.skipped += 1
                continue
            if self._wanted and key not in self._wanted:
                continue
            if is_sealed(value):
                try:
                    value = self.unseal(value)
                except ValueError:  # not JSON: decode_event refuses it below
                    pass
            try:
                event = decode_event(value)
            except EventDecodeError:
                counts.skipped += 1
                continue
            stamp = stamps[index] if stamps is not None else 0
            if record_refusal(key, event, stamp, self.max_skew_ms) or key is None:
                counts.mismatched += 1  # the worker dead-letters it
                continue
            if event.time >= self.end:
                counts.later += 1
                continue
            if event.time >= self.start:
                active.add(key)
            pending = by_session.get(key)
            if pending is None:
                by_session[key] = [event]
            else:
                pending.append(event)
        changed: dict[bytes, bytes] = {}
        for key, events in by_session.items():
            stored = self.states.get(key)
            if stored is None:
                was_active, session = False, NO_SESSION
            else:
                was_active, encoded, activity_ms = unpack(stored)
                session = Session(decode_state(encoded) if encoded else None, activity_ms)
            result = fold_session(session, events, self.rules, self.lifetime_ms, self.max_session_bytes)
            refused = sum(1 for outcome in result.outcomes if outcome.refusal)
            counts.refused += refused
            counts.folded += len(events) - refused
            if refused == len(events) and (was_active or key not in active):
                continue  # nothing changed
            # An erased session is kept with no state (``documents`` leaves it out): the store has
            # no delete, and a later batch's events start a new session from nothing either way.
            changed[key] = pack(was_active or key in active, result.encoded, result.session.activity_ms)
        if changed:
            self.states.put_many(changed)
        return counts.folded - before

    def documents(self) -> Iterator[SessionState]:
        """The sessions active in the range, in session id order."""
        for _, stored in self.states.items():
            active, encoded, _ = unpack(stored)
            if active and encoded:  # no state: erased (and nothing after it)
                yield decode_state(encoded)


# --- the temporary store and the read -----------------------------------------------------------


class DiskStates:
    """A RocksDB store in a temporary folder (raw mode, no WAL: it is thrown away at ``close``)."""

    def __init__(self, parent: str | None = None) -> None:
        from rocksdict import Options, Rdict, WriteOptions

        self._folder = tempfile.mkdtemp(prefix="sessionctl-export-", dir=parent)
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        try:
            self._db = Rdict(self._folder, options)
        except BaseException:
            shutil.rmtree(self._folder, ignore_errors=True)
            raise
        self._write_options = WriteOptions()
        self._write_options.disable_wal = True  # type: ignore[method-assign,assignment]  # a property; the stub says method

    def get(self, key: bytes) -> bytes | None:
        value = self._db.get(key)
        return None if value is None else bytes(value)

    def put_many(self, items: dict[bytes, bytes]) -> None:
        from rocksdict import WriteBatch

        batch = WriteBatch(raw_mode=True)
        for key, value in items.items():
            batch.put(key, value)
        self._db.write(batch, self._write_options)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        yield from self._db.items()

    def close(self) -> None:
        try:
            self._db.close()
        finally:
            shutil.rmtree(self._folder, ignore_errors=True)


@dataclass
class SessionsSummary(Summary):
    sessions: int = 0  # documents written
    folded: int = 0  # events folded, all sessions
    mismatched: int = 0
    refused: int = 0
    misplaced: int = 0  # records on another partition than their key's (their moved copies are folded)


def export_sessions(
    bootstrap: str,
    topic: str,
    folder: SessionFolder,
    writer: SessionWriter,
    slack: timedelta = DEFAULT_SLACK,
    progress: ProgressCallback | None = None,
    idle_timeout_s: float = 30.0,
) -> SessionsSummary:
    """Read every partition from its beginning to ``T2 + slack``, fold, write the active sessions."""
    began = time.monotonic()
    summary = SessionsSummary()

    def fold(records: list[Any]) -> int:
        # As the worker: a record on another partition than its key's is folded from its moved
        # copy on the key's partition (``streams.fold.loop``), never from where it was produced.
        placed = [m for m in records if not misplaced(m.key(), m.partition() or 0, summary.partitions)]
        summary.misplaced += len(records) - len(placed)
        return folder.take([(m.key(), m.value()) for m in placed], [record_timestamp(m) for m in placed])

    summary.folded = read_window(
        bootstrap, topic, None, to_ms(folder.end + slack), fold, summary, progress, idle_timeout_s
    )
    for state in folder.documents():
        writer.write(state)
        summary.sessions += 1
    summary.written = summary.sessions
    summary.skipped = folder.counts.skipped
    summary.mismatched = folder.counts.mismatched
    summary.refused = folder.counts.refused
    summary.seconds = time.monotonic() - began
    return summary


def export_sessions_to_file(
    bootstrap: str,
    topic: str,
    start: datetime,
    end: datetime,
    rules: Rules,
    fmt: str,
    path: Path,
    sessions: frozenset[str] = frozenset(),
    slack: timedelta = DEFAULT_SLACK,
    max_session_bytes: int = 256 * 1024,
    progress: ProgressCallback | None = None,
    unseal: Unseal = redact_json,
    lifetime_ms: int = 0,
    max_skew_ms: int = 0,
) -> SessionsSummary:
    """The export written to ``path.partial`` and renamed to ``path`` once complete; the folded
    states wait in a temporary RocksDB store beside nothing else (the system's temp folder)."""
    partial = path.with_name(path.name + ".partial")
    states = DiskStates()
    try:
        folder = SessionFolder(start, end, rules, states, sessions, max_session_bytes, unseal, lifetime_ms, max_skew_ms)
        writer = open_session_writer(fmt, partial)
        try:
            summary = export_sessions(bootstrap, topic, folder, writer, slack, progress)
        except BaseException:
            writer.close()
            partial.unlink(missing_ok=True)
            raise
        writer.close()
        os.replace(partial, path)
        return summary
    finally:
        states.close()
