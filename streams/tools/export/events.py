"""``sessionctl export``: the events whose ``time`` is in ``[T1, T2)``, from every partition of the
event topic, to JSON Lines or Parquet.

Where to read is found with Kafka's time index, not by reading from offset 0: every record the
engine appends carries its event's ``time`` as its Kafka timestamp (``streams.kafka.producer``),
so per partition the read starts at ``offsets_for_times(T1 - slack)`` and stops at the first
record whose Kafka timestamp is at or after ``T2 + slack``, or at the high watermark seen when the
export began. Which events are written is decided by the event's own ``time``, never by the Kafka
timestamp: the slack only widens the window read, so that a record whose Kafka timestamp is off its
event's ``time`` by up to the slack (written by another producer, a skewed clock, a late emitter)
is still found.

Personal fields (``schemas.personal``) are sealed in the log. Every record read that holds a sealed
value (``is_sealed``: a substring check, the whole cost for the others) is turned into clear JSON
before it is decoded: by default with every sealed value replaced by its ``[redacted]`` stand-in
(``redact_json``), or, with the deployment's master key, opened with the sessions' data keys
(``open_json``: a value whose key was destroyed by an erasure reads ``[erased]``). So logins are
exported, and folded by ``export --sessions``, either way; see :func:`personal_fields`.

The pure part (parsing the options, the record filter, the Parquet rows) is above the I/O part
(confluent-kafka, the writers, the progress display).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from schemas.events import EVENT_TYPE_NAMES, Event, EventDecodeError, decode_event
from schemas.personal import SEALED_MARK as _SEALED_MARK
from streams.privacy.sealing import FindKey, open_json, redact_json

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from streams.privacy.cipher import MasterKeys

from streams.history.window import (
    DEFAULT_SLACK,
    ExportError,
    ProgressCallback,
    Summary,
    moved_copy,
    read_window,
    to_ms,
)
from streams.tools.export.writers import Writer, event_type, open_writer

log = logging.getLogger(__name__)


def check_types(types: Iterable[str]) -> frozenset[str]:
    chosen = frozenset(types)
    unknown = sorted(chosen - EVENT_TYPE_NAMES)
    if unknown:
        raise ExportError(
            "--type", f"unknown event type {', '.join(unknown)}; known: {', '.join(sorted(EVENT_TYPE_NAMES))}"
        )
    return chosen


# A record's value (event JSON holding sealed values) -> the same JSON with them replaced: redacted
# (``redact_json``, the default) or opened (``open_json`` with the key ring's ``find``).
Unseal = Callable[[bytes], bytes]


def opener(find: FindKey) -> Unseal:
    """Opens the sealed values of a record with ``find``; a destroyed key gives ``[erased]``."""

    def unseal(raw: bytes) -> bytes:
        return open_json(raw, find)

    return unseal


def remembering_misses(find: FindKey) -> FindKey:
    """``find`` that asks only once for a key it did not find: the key ring reads its topic to the
    end for every unknown key, and the keys of an erased session are unknown for good."""
    missing: set[tuple[str, str]] = set()

    def found(session_id: str, kid: str) -> AESGCM | None:
        if (session_id, kid) in missing:
            return None
        key = find(session_id, kid)
        if key is None:
            missing.add((session_id, kid))
        return key

    return found


@dataclass
class RecordFilter:
    """Which records an export writes: those that decode as an event whose ``time`` is in
    ``[start, end)`` (and of the chosen types and sessions, when given). Counts what it refused.
    A record holding sealed values is first passed through ``unseal`` (redacted by default)."""

    start: datetime
    end: datetime
    types: frozenset[str] = frozenset()
    sessions: frozenset[str] = frozenset()
    skipped: int = 0  # records that are not events (no value, not JSON, not a known event)
    outside: int = 0  # events read but not chosen (out of the range, another type or session)
    unseal: Unseal = redact_json

    def select(self, value: bytes | None) -> Event | None:
        """The event to write, or None."""
        chosen = self.choose(value)
        return chosen[0] if chosen is not None else None

    def choose(self, value: bytes | None) -> tuple[Event, bytes] | None:
        """The event to write and its value to write (sealed values redacted or opened), or None."""
        if value is None:
            self.skipped += 1
            return None
        if _SEALED_MARK in value:  # is_sealed, inlined: the inner loop of every export
            try:
                value = self.unseal(value)
            except ValueError:  # not JSON: decode_event refuses it below
                pass
        try:
            event = decode_event(value)
        except EventDecodeError:
            self.skipped += 1
            return None
        if (
            not self.start <= event.time < self.end
            or (self.types and event_type(event) not in self.types)
            or (self.sessions and event.subject not in self.sessions)
        ):
            self.outside += 1
            return None
        return event, value


def export_range(
    bootstrap: str,
    topic: str,
    selection: RecordFilter,
    writer: Writer,
    slack: timedelta = DEFAULT_SLACK,
    progress: ProgressCallback | None = None,
    idle_timeout_s: float = 30.0,
) -> Summary:
    """Read the window of every partition of ``topic`` and write the events ``selection`` chooses."""
    began = time.monotonic()
    summary = Summary()

    def write(records: list[Any]) -> int:
        written = 0
        for message in records:
            if moved_copy(message):
                summary.moved_copies += 1
                continue
            chosen = selection.choose(message.value())
            if chosen is not None:
                writer.write(chosen[0], chosen[1], message.partition() or 0, message.offset() or 0)
                written += 1
        return written

    summary.written = read_window(
        bootstrap,
        topic,
        to_ms(selection.start - slack),
        to_ms(selection.end + slack),
        write,
        summary,
        progress,
        idle_timeout_s,
    )
    summary.skipped = selection.skipped
    summary.seconds = time.monotonic() - began
    return summary


def export_to_file(
    bootstrap: str,
    topic: str,
    selection: RecordFilter,
    fmt: str,
    path: Path,
    slack: timedelta = DEFAULT_SLACK,
    progress: ProgressCallback | None = None,
) -> Summary:
    """The export written to ``path.partial`` and renamed to ``path`` once complete."""
    partial = path.with_name(path.name + ".partial")
    writer = open_writer(fmt, partial)
    try:
        summary = export_range(bootstrap, topic, selection, writer, slack, progress)
    except BaseException:
        writer.close()
        partial.unlink(missing_ok=True)
        raise
    writer.close()
    os.replace(partial, path)
    return summary


# --- personal fields ----------------------------------------------------------------------------

KEYS_CATCH_UP_S: Final = 120.0


@contextmanager
def personal_fields(
    bootstrap: str, keys_topic: str, master: MasterKeys | None, client_id: str = "sessionctl-export"
) -> Iterator[Unseal]:
    """How an export shows sealed values: redacted when ``master`` is None (nothing is read then),
    else opened with the data keys of ``keys_topic`` (a key ring read to its end once, before the
    export reads anything; keys appended later are looked for when met, as a worker does)."""
    if master is None:
        yield redact_json
        return
    from streams.privacy.keyring import KeyRing

    ring = KeyRing(bootstrap, keys_topic, master, client_id)
    ring.start()
    try:
        ring.catch_up(KEYS_CATCH_UP_S)
        yield opener(remembering_misses(ring.find))
    finally:
        ring.stop()
