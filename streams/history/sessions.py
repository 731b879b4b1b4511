"""``sessionctl export --sessions``: the session documents as of ``T2`` of the sessions active in
``[T1, T2)``, to JSON Lines or Parquet.

A session's document as of ``T2`` is the pure fold (``projections.session.apply``, the worker's
code, with the worker's rules) of its events whose ``time`` is before ``T2``, in log order. So every
partition is read from its beginning, not from ``T1``: up to the first record stamped at or after
``T2 + slack`` (the slack rule of ``streams.history.export``), folding as it goes. A session is
*active in the range* when at least one of its events has its ``time`` in ``[T1, T2)``; only those
are written.

The folded states are kept encoded (msgspec JSON bytes, one flag byte in front saying whether the
session is active), in a temporary RocksDB store by default, so that millions of sessions cost disk,
not Python objects. Records the worker would not fold are skipped the way it skips them: a record
that is not an event, whose key is not its event's subject, an event the session refuses
(``EventRejected``, or a failing rule), an event that would grow the session over
``max_session_bytes``.

Sealed personal values are redacted, or opened with the master key, before an event is decoded
(``streams.history.export``, the ``unseal`` of :class:`SessionFolder`): the fold sees the stand-ins
(``[redacted]``, ``[erased]``) or the clear values, and logins are folded either way.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Final, Protocol

from projections.rules import Rules
from projections.session import apply
from schemas.events import Event, EventDecodeError, decode_event
from schemas.session import SessionState, decode_state, encode_state, encode_view
from streams.history.export import (
    DEFAULT_SLACK,
    ProgressCallback,
    RowGroups,
    Summary,
    Unseal,
    read_window,
    to_ms,
)
from streams.privacy.sealing import is_sealed, redact_json

log = logging.getLogger(__name__)

# Typed (nullable string) columns of the Parquet file: (column, namespace, key). The commercial
# context the segment is made of, no personal field; the whole document is in ``document``.
SESSION_FIELDS: Final = (
    ("utm_source", "public", "utm_source"),
    ("utm_medium", "public", "utm_medium"),
    ("utm_campaign", "public", "utm_campaign"),
    ("channel", "store", "channel"),
    ("countryCode", "store", "countryCode"),
    ("currencyCode", "store", "currencyCode"),
    ("cultureInfo", "store", "cultureInfo"),
    ("regionId", "checkout", "regionId"),
    ("isAuthenticated", "authentication", "isAuthenticated"),
)
SESSION_COLUMNS: Final = (
    "id",
    "first_event_time",
    "last_event_time",
    "event_count",
    *(name for name, _, _ in SESSION_FIELDS),
    "document",
)

ACTIVE: Final = b"\x01"
INACTIVE: Final = b"\x00"


# --- pure part ----------------------------------------------------------------------------------


def pack(active: bool, encoded: bytes) -> bytes:
    """A stored session: one flag byte (active in the range or not), then the encoded state."""
    return (ACTIVE if active else INACTIVE) + encoded


def unpack(stored: bytes) -> tuple[bool, bytes]:
    return stored[:1] == ACTIVE, stored[1:]


@dataclass
class FoldCounts:
    skipped: int = 0  # records that are not events (no value, not JSON, not a known event)
    mismatched: int = 0  # events whose record key is not their subject (the worker dead-letters them)
    later: int = 0  # events whose time is at or after T2 (read because of the slack, not folded)
    folded: int = 0  # events applied
    refused: int = 0  # events the session refused, or that would grow it over the size limit


def fold_events(
    state: SessionState | None,
    events: Iterable[Event],
    rules: Rules,
    max_session_bytes: int,
    counts: FoldCounts,
) -> tuple[SessionState | None, bytes]:
    """One session's events applied in order as the worker applies them; the state and its
    encoding (``b""`` when there is no state). A refused event leaves the state as it was."""
    events = list(events)
    candidate, applied = state, 0
    for event in events:
        try:
            candidate = apply(candidate, event, rules)
        except Exception:  # noqa: BLE001 - EventRejected or a failing rule: the worker dead-letters it
            counts.refused += 1
            continue
        applied += 1
    if candidate is None:
        return None, b""
    encoded = encode_state(candidate)
    if len(encoded) <= max_session_bytes:
        counts.folded += applied
        return candidate, encoded
    # Over the limit: again, encoding after each event to refuse exactly the events that overgrow it.
    counts.refused -= len(events) - applied
    encoded = encode_state(state) if state is not None else b""
    for event in events:
        try:
            next_state = apply(state, event, rules)
        except Exception:  # noqa: BLE001 - as above
            counts.refused += 1
            continue
        next_encoded = encode_state(next_state)
        if len(next_encoded) > max_session_bytes:
            counts.refused += 1
            continue
        state, encoded = next_state, next_encoded
        counts.folded += 1
    return state, encoded


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

    def __post_init__(self) -> None:
        self.counts = FoldCounts()
        self._wanted = frozenset(s.encode() for s in self.sessions)

    def take(self, records: Iterable[tuple[bytes | None, bytes | None]]) -> int:
        """Fold a batch of ``(key, value)`` records in log order; returns the events folded."""
        counts = self.counts
        before = counts.folded
        by_session: dict[bytes, list[Event]] = {}
        active: set[bytes] = set()
        for key, value in records:
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
            if key is None or key != event.subject.encode():
                counts.mismatched += 1
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
            was_active, encoded = unpack(stored) if stored is not None else (False, b"")
            state = decode_state(encoded) if encoded else None
            state, encoded = fold_events(state, events, self.rules, self.max_session_bytes, counts)
            if state is not None:
                changed[key] = pack(was_active or key in active, encoded)
        if changed:
            self.states.put_many(changed)
        return counts.folded - before

    def documents(self) -> Iterator[SessionState]:
        """The sessions active in the range, in session id order."""
        for _, stored in self.states.items():
            active, encoded = unpack(stored)
            if active:
                yield decode_state(encoded)


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def session_row(state: SessionState) -> dict[str, Any]:
    """One row of the Parquet file: the meta, the common values (strings, None where absent), the
    document as the service API serves it."""
    row: dict[str, Any] = {
        "id": state.id,
        "first_event_time": parse_time(state.meta.first_event_time),
        "last_event_time": parse_time(state.meta.last_event_time),
        "event_count": state.meta.event_count,
    }
    for name, namespace, key in SESSION_FIELDS:
        entry = state.namespaces.get(namespace, {}).get(key)
        value = None if entry is None else entry.get("value")
        row[name] = None if value is None else str(value)
    row["document"] = encode_view(state).decode()
    return row


# --- writers ------------------------------------------------------------------------------------


class SessionWriter(Protocol):
    def write(self, state: SessionState) -> None: ...

    def close(self) -> None: ...


class JsonlSessionWriter:
    def __init__(self, path: Path) -> None:
        self._file: IO[bytes] = open(path, "wb")

    def write(self, state: SessionState) -> None:
        self._file.write(encode_view(state) + b"\n")

    def close(self) -> None:
        self._file.close()


class ParquetSessionWriter:
    def __init__(self, path: Path, batch_rows: int = 50_000) -> None:
        import pyarrow as pa

        string = pa.string()
        stamp = pa.timestamp("us", tz="UTC")
        self.schema = pa.schema(
            [
                pa.field("id", string, nullable=False),
                pa.field("first_event_time", stamp, nullable=False),
                pa.field("last_event_time", stamp, nullable=False),
                pa.field("event_count", pa.int64(), nullable=False),
                *(pa.field(name, string) for name, _, _ in SESSION_FIELDS),
                pa.field("document", string, nullable=False),
            ]
        )
        self._groups = RowGroups(path, self.schema, [name for name, _, _ in SESSION_FIELDS], batch_rows)

    def write(self, state: SessionState) -> None:
        self._groups.append(tuple(session_row(state).values()))

    def close(self) -> None:
        self._groups.close()


def open_session_writer(fmt: str, path: Path) -> SessionWriter:
    return ParquetSessionWriter(path) if fmt == "parquet" else JsonlSessionWriter(path)


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
        return folder.take((message.key(), message.value()) for message in records)

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
) -> SessionsSummary:
    """The export written to ``path.partial`` and renamed to ``path`` once complete; the folded
    states wait in a temporary RocksDB store beside nothing else (the system's temp folder)."""
    partial = path.with_name(path.name + ".partial")
    states = DiskStates()
    try:
        folder = SessionFolder(start, end, rules, states, sessions, max_session_bytes, unseal)
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
