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
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, Protocol

import msgspec
import orjson

from schemas.events import EVENT_TYPE_NAMES, EVENT_TYPES, Envelope, Event, EventDecodeError, decode_event, type_name
from schemas.personal import SEALED_MARK as _SEALED_MARK
from streams.kafka.clients import client_config
from streams.kafka.partitioner import MOVED_FROM_HEADER
from streams.privacy.sealing import FindKey, open_json, redact_json

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from streams.privacy.cipher import MasterKeys

log = logging.getLogger(__name__)

DEFAULT_SLACK: Final = timedelta(minutes=5)
FORMATS: Final = ("jsonl", "parquet")

# Fields of ``data`` shared by several event types that get a typed (nullable string) column. No
# personal field (``email``, names, ``phone``, ``document``): which of them an export may carry is
# for the security issue to decide. The whole ``data`` is in the ``data`` column as JSON.
COMMON_FIELDS: Final = (
    "url",
    "referrerUrl",
    "title",
    "pageType",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utmi_cp",
    "utmi_p",
    "utmi_pc",
)
ENVELOPE_FIELDS: Final = ("id", "type", "subject", "time", "source", "dataschema", "partition", "offset")
COLUMNS: Final = (*ENVELOPE_FIELDS, *COMMON_FIELDS, "data")

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)


class ExportError(ValueError):
    """A bad option: ``option`` names it (``--from``), ``message`` says what is wrong."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option
        self.message = message


# --- pure part ----------------------------------------------------------------------------------


def parse_instant(text: str, option: str) -> datetime:
    """An RFC 3339 instant with a timezone (``2026-11-26T12:00:00Z``, ``...+02:00``), in UTC."""
    try:
        instant = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ExportError(option, f"{text!r} is not an RFC 3339 instant (e.g. 2026-11-26T12:00:00Z)") from None
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ExportError(option, f"{text!r} has no timezone: add Z or an offset such as +00:00")
    return instant.astimezone(UTC)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str, option: str = "--slack") -> timedelta:
    """``300``, ``300s``, ``5m``, ``1h``, ``1d``, ``250ms`` (a bare number is seconds)."""
    match = _DURATION.match(text)
    if match is None:
        raise ExportError(option, f"{text!r} is not a duration (e.g. 5m, 300s, 1h)")
    return timedelta(seconds=float(match[1]) * _UNIT_SECONDS[match[2] or "s"])


def check_range(start: datetime, end: datetime) -> None:
    if end < start:
        raise ExportError("--to", f"{end.isoformat()} is before --from {start.isoformat()}: the range is reversed")
    if end == start:
        raise ExportError("--to", "equals --from: the range [from, to) is empty")


def check_types(types: Iterable[str]) -> frozenset[str]:
    chosen = frozenset(types)
    unknown = sorted(chosen - EVENT_TYPE_NAMES)
    if unknown:
        raise ExportError(
            "--type", f"unknown event type {', '.join(unknown)}; known: {', '.join(sorted(EVENT_TYPE_NAMES))}"
        )
    return chosen


def to_ms(instant: datetime) -> int:
    return (instant - _EPOCH) // timedelta(milliseconds=1)


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
            or (self.types and _TYPE_NAMES[type(event)] not in self.types)
            or (self.sessions and event.subject not in self.sessions)
        ):
            self.outside += 1
            return None
        return event, value


_TYPE_NAMES: Final[dict[type[Envelope], str]] = {cls: type_name(cls) for cls in EVENT_TYPES}


def moved_copy(message: Any) -> bool:
    """A copy the fold loop appended on the record's key's partition (``streams.fold.loop``): the
    event is exported once, from where it was produced."""
    headers = message.headers()
    return bool(headers) and any(name == MOVED_FROM_HEADER for name, _ in headers)


def event_type(event: Event) -> str:
    return _TYPE_NAMES[type(event)]


def parquet_row(event: Event, partition: int, offset: int) -> dict[str, Any]:
    """One row of the Parquet file: the envelope, the common fields (None where the type has none),
    ``data`` as JSON (upcast to the current version), and where the record is in the log."""
    return dict(zip(COLUMNS, parquet_cells(event, partition, offset), strict=True))


_JSON: Final = msgspec.json.Encoder()
# Per data type, the common fields it has (the others are None in every row of that type).
_COMMON_BY_TYPE: dict[type, tuple[int, ...]] = {}


def parquet_cells(event: Event, partition: int, offset: int) -> tuple[Any, ...]:
    """:func:`parquet_row`'s cells in ``COLUMNS`` order: the export's inner loop, kept lean."""
    data = event.data
    present = _COMMON_BY_TYPE.get(type(data))
    if present is None:
        names = getattr(type(data), "__struct_fields__", ())
        present = _COMMON_BY_TYPE[type(data)] = tuple(i for i, name in enumerate(COMMON_FIELDS) if name in names)
    common: list[Any] = [None] * len(COMMON_FIELDS)
    for index in present:
        value = getattr(data, COMMON_FIELDS[index])
        if value is not None:
            common[index] = value if isinstance(value, str) else str(value)
    return (
        event.id,
        _TYPE_NAMES[type(event)],
        event.subject,
        event.time,  # aware: Arrow stores the instant (UTC)
        event.source,
        event.dataschema,
        partition,
        offset,
        *common,
        _JSON.encode(data).decode(),
    )


def jsonl_line(value: bytes) -> bytes:
    """The record's value as it is, on one line (a value with line breaks, only possible as JSON
    whitespace, is re-encoded compactly)."""
    if b"\n" in value or b"\r" in value:
        value = orjson.dumps(orjson.loads(value))
    return value + b"\n"


# --- writers ------------------------------------------------------------------------------------


class Writer(Protocol):
    def write(self, event: Event, value: bytes, partition: int, offset: int) -> None: ...

    def close(self) -> None: ...


class JsonlWriter:
    def __init__(self, path: Path) -> None:
        self._file: IO[bytes] = open(path, "wb")

    def write(self, event: Event, value: bytes, partition: int, offset: int) -> None:
        self._file.write(jsonl_line(value))

    def close(self) -> None:
        self._file.close()


class RowGroups:
    """A Parquet file written a row group at a time: rows are tuples of cells in the schema's
    order, turned into Arrow columns every ``batch_rows`` (shared by the event and session exports)."""

    def __init__(self, path: Path, schema: Any, repeated: list[str], batch_rows: int = 50_000) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._pa = pa
        self.schema = schema
        # Dictionary encoding only where values repeat (ids, URLs and JSON would only pay for trying).
        self._writer = pq.ParquetWriter(str(path), schema, compression="zstd", use_dictionary=repeated)
        self._rows: list[tuple[Any, ...]] = []
        self._batch_rows = batch_rows

    def append(self, row: tuple[Any, ...]) -> None:
        self._rows.append(row)
        if len(self._rows) >= self._batch_rows:
            self._flush()

    def _flush(self) -> None:
        if self._rows:
            pa = self._pa
            columns = zip(*self._rows, strict=True)
            arrays = [pa.array(column, type=field.type) for column, field in zip(columns, self.schema, strict=True)]
            self._writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
            self._rows = []

    def close(self) -> None:
        self._flush()
        self._writer.close()


class ParquetWriter:
    def __init__(self, path: Path, batch_rows: int = 50_000) -> None:
        import pyarrow as pa

        string = pa.string()
        self.schema = pa.schema(
            [
                pa.field("id", string, nullable=False),
                pa.field("type", string, nullable=False),
                pa.field("subject", string, nullable=False),
                pa.field("time", pa.timestamp("us", tz="UTC"), nullable=False),
                pa.field("source", string, nullable=False),
                pa.field("dataschema", string),
                pa.field("partition", pa.int32(), nullable=False),
                pa.field("offset", pa.int64(), nullable=False),
                *(pa.field(name, string) for name in COMMON_FIELDS),
                pa.field("data", string, nullable=False),
            ]
        )
        repeated = ["type", "source", "dataschema", "pageType", *(n for n in COMMON_FIELDS if n.startswith("utm"))]
        self._groups = RowGroups(path, self.schema, repeated, batch_rows)

    def write(self, event: Event, value: bytes, partition: int, offset: int) -> None:
        self._groups.append(parquet_cells(event, partition, offset))

    def close(self) -> None:
        self._groups.close()


def open_writer(fmt: str, path: Path) -> Writer:
    return ParquetWriter(path) if fmt == "parquet" else JsonlWriter(path)


# --- reading Kafka ------------------------------------------------------------------------------


@dataclass
class Summary:
    written: int = 0
    skipped: int = 0  # records that are not events
    read: int = 0  # records read from Kafka, all partitions
    partitions: int = 0  # partitions of the topic
    partitions_read: int = 0  # partitions that had records in the window
    seconds: float = 0.0
    planned: int = 0  # records between each partition's start and the high watermark: at most read
    starts: dict[int, int] = field(default_factory=dict)
    moved_copies: int = 0  # records the workers moved to their key's partition: the original is written


ProgressCallback = Callable[[int, int, int], None]  # (records read, events written, records planned)


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


# Takes the in-window records of one poll (confluent-kafka messages, log order per partition) and
# answers how many it counts (events written, events folded) for the progress display.
BatchHandler = Callable[[list[Any]], int]


def read_window(
    bootstrap: str,
    topic: str,
    start_ms: int | None,
    stop_ms: int,
    handle: BatchHandler,
    summary: Summary,
    progress: ProgressCallback | None = None,
    idle_timeout_s: float = 30.0,
) -> int:
    """Hand ``handle`` the records of every partition of ``topic`` from the first one stamped at or
    after ``start_ms`` (``None``: from the partition's beginning) up to the first one stamped at or
    after ``stop_ms``, or to the high watermark seen when the read began. Returns the sum of what
    ``handle`` counted; fills the reading figures of ``summary``."""
    from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

    counted = 0
    consumer = Consumer(
        {
            **client_config(bootstrap),
            "group.id": "session-engine-export",  # never joined nor committed: assign() only
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            # The end of a partition as an event: its last offset may be a transaction's commit
            # marker (the fold loop moves misplaced records in transactions), which no consumer
            # returns, so "the last record read" would never reach the high watermark.
            "enable.partition.eof": True,
            "fetch.max.bytes": 52428800,
            "queued.max.messages.kbytes": 262144,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            raise KafkaException(f"topic {topic} does not exist")
        partitions = sorted(metadata.partitions)
        summary.partitions = len(partitions)
        firsts: dict[int, int] = {}
        if start_ms is not None:
            found = consumer.offsets_for_times(
                [TopicPartition(topic, p, max(start_ms, 0)) for p in partitions], timeout=30
            )
            for tp in found:
                if tp.error is not None:
                    raise KafkaException(tp.error)
                firsts[tp.partition] = tp.offset
        ends: dict[int, int] = {}
        assignment = []
        for partition in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            # -1: no record stamped at or after the start; the partition has nothing to read.
            first = low if start_ms is None else firsts.get(partition, -1)
            if 0 <= first < high:
                summary.starts[partition] = first
                ends[partition] = high
                summary.planned += high - first
                assignment.append(TopicPartition(topic, partition, first))
        summary.partitions_read = len(assignment)
        if assignment:
            consumer.assign(assignment)
        remaining = set(ends)
        planned_left = summary.planned
        idle_since = time.monotonic()
        while remaining:
            messages = consumer.consume(10_000, 0.5)
            if not messages:
                if time.monotonic() - idle_since > idle_timeout_s:
                    raise TimeoutError(
                        f"no record for {idle_timeout_s:.0f}s while partitions {sorted(remaining)} have more"
                    )
                continue
            idle_since = time.monotonic()
            batch = []
            for message in messages:
                error = message.error()
                if error is not None and error.code() == KafkaError._PARTITION_EOF:
                    if message.partition() in remaining:
                        remaining.discard(message.partition() or 0)
                        planned_left -= max(0, ends[message.partition() or 0] - (message.offset() or 0))
                    continue
                if error is not None:
                    raise KafkaException(error)
                partition, offset = message.partition() or 0, message.offset() or 0
                if partition not in remaining or offset >= ends[partition]:
                    continue
                _, timestamp = message.timestamp()
                if timestamp >= stop_ms:
                    # Past the window: the rest of this partition is later still (up to the slack).
                    remaining.discard(partition)
                    consumer.pause([TopicPartition(topic, partition)])
                    planned_left -= ends[partition] - offset
                    continue
                summary.read += 1
                planned_left -= 1
                batch.append(message)
                if offset + 1 >= ends[partition]:
                    remaining.discard(partition)
            if batch:
                counted += handle(batch)
            if progress is not None:
                progress(summary.read, counted, summary.read + max(planned_left, 0))
    finally:
        consumer.close()
    return counted


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


# --- progress -----------------------------------------------------------------------------------


class RichProgress:
    """A progress bar on a terminal: records read of at most those planned, events, events/s, ETA.
    ``label`` names the job (``sessionctl rebuild`` shows its folds with it too)."""

    def __init__(self, label: str = "export") -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._began = time.monotonic()
        self._progress = Progress(
            TextColumn(label),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("records · {task.fields[events]} events · {task.fields[rate]:,.0f} events/s · ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._task = self._progress.add_task(label, total=None, events=0, rate=0.0)

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def __call__(self, read: int, written: int, planned: int) -> None:
        rate = written / max(time.monotonic() - self._began, 1e-6)
        self._progress.update(self._task, completed=read, total=planned, events=written, rate=rate)


class LogProgress:
    """Plain lines on stderr (not a terminal): the first as soon as something was written (a sign
    of life, which a caller may wait for), then one every ``every_s`` seconds."""

    def __init__(
        self, every_s: float = 5.0, stream: IO[str] | None = None, label: str = "export", verb: str = "written"
    ) -> None:
        self._label, self._verb = label, verb
        self._began = self._last = time.monotonic()
        self._every_s = every_s
        self._stream = stream or sys.stderr
        self._told = False

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def __call__(self, read: int, written: int, planned: int) -> None:
        now = time.monotonic()
        if now - self._last < self._every_s and (self._told or not written):
            return
        self._last, self._told = now, True
        rate = written / max(now - self._began, 1e-6)
        print(
            f"{self._label}: {read}/{planned} records read, {written} events {self._verb}, {rate:,.0f} events/s",
            file=self._stream,
            flush=True,
        )
