"""One session's events, read back for its timeline and its past states.

The owner's store locates them (``FoldLoop.locate``: the offsets of the events folded into the
session, kept next to its state), so the cost grows with the session, never with the topic.
The records come from the local history store beside the partition's store (``FoldLoop``
fills it as it folds) and, for any it lacks (a partition restored on this worker from the
changelog, a history store that was deleted or turned off), from Kafka by offset; what Kafka gave
is kept in the history store for the next reader.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import orjson
from confluent_kafka import Consumer, KafkaError, TopicPartition

from projections.history import replay
from projections.rules import Rules
from schemas.events import Event, EventDecodeError, decode_event
from streams.fold.loop import FoldLoop
from streams.history.window import ExportError, parse_instant
from streams.kafka.clients import client_config, close_within
from streams.kafka.producer import KAFKA_CLIENT_LOG
from streams.privacy.keyring import KeyRing
from streams.privacy.sealing import open_json

log = logging.getLogger(__name__)

# Offsets closer than this to the last one read are reached by reading on: a new assignment costs
# ~200 ms before its first record, reading on ~2 us a record (so up to 20,000 records, ~40 ms).
READ_ON_GAP = 20_000


class HistoryUnavailable(RuntimeError):
    """Kafka did not give the session's records in time."""


class Located(NamedTuple):
    offset: int
    value: bytes  # the record as the log holds it (CloudEvents JSON)
    event: Event


class LogReader:
    """Reads given offsets of one topic's partitions. No I/O until the first read; one read at a
    time (one consumer, reassigned per read)."""

    def __init__(self, bootstrap: str, topic: str, client_id: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.client_id = client_id
        self._consumer: Consumer | None = None
        self._lock = threading.Lock()

    def read(self, partition: int, offsets: Iterable[int], timeout_s: float = 5.0) -> dict[int, bytes]:
        targets = set(offsets)
        wanted = sorted(targets)
        if not wanted:
            return {}
        with self._lock:
            consumer = self._open()
            found: dict[int, bytes] = {}
            deadline = time.monotonic() + timeout_s
            position: int | None = None  # the next offset the consumer will give; None: unassigned
            try:
                for offset in wanted:
                    if offset in found:
                        continue
                    if position is None or not position <= offset < position + READ_ON_GAP:
                        consumer.assign([TopicPartition(self.topic, partition, offset)])
                        position = offset
                    while offset not in found:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            raise HistoryUnavailable(f"{self.topic}[{partition}]@{offset} not read in {timeout_s}s")
                        # As many records as it takes to reach the offset (consume returns as soon as
                        # it has them; asking for more would wait out the timeout near the end).
                        wanted_now = max(1, min(5000, offset - position + 1))
                        for message in consumer.consume(wanted_now, min(left, 0.5)):
                            error = message.error()
                            if error is not None:
                                if error.code() == KafkaError._PARTITION_EOF:
                                    continue
                                raise HistoryUnavailable(error.str())
                            at = message.offset() or 0
                            position = at + 1
                            value = message.value()
                            if value is not None and at in targets:
                                found[at] = value
                        if position is not None and position > offset and offset not in found:
                            # Gone (retention, compaction) or never an event: nothing to wait for.
                            log.warning("%s[%d]@%d: not in the log", self.topic, partition, offset)
                            break
            finally:
                consumer.unassign()
            return found

    def _open(self) -> Consumer:
        if self._consumer is None:
            self._consumer = Consumer(
                {
                    **client_config(self.bootstrap),
                    "group.id": f"{self.client_id}-history",  # never joined nor committed: assign() only
                    "client.id": f"{self.client_id}-history",
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "enable.partition.eof": False,
                    "fetch.wait.max.ms": 10,
                    "max.partition.fetch.bytes": 1048576,
                    "queued.min.messages": 1000,
                    "logger": KAFKA_CLIENT_LOG,
                }
            )
        return self._consumer

    def close(self) -> None:
        with self._lock:
            consumer, self._consumer = self._consumer, None
            close_within([consumer], "the timeline reader")


@dataclass
class SessionHistory:
    """A session's located events, from the local history store first, then from Kafka."""

    fold: FoldLoop
    reader: LogReader
    # Opens the personal values for the history's readers (``sessions:history``); a session whose
    # data keys were destroyed (erased) shows them as ``[erased]``. None: shown as logged.
    keys: KeyRing | None = None

    def events(self, session_id: str, timeout_s: float = 5.0) -> list[Located] | None:
        """Every event folded into the session, in log order; None when the session never had one.

        Blocking (store and Kafka reads): call it from a thread. Raises ``StoreClosed`` when this
        worker does not serve the session's partition, :class:`HistoryUnavailable` when Kafka does
        not answer in time."""
        key = session_id.encode()
        offsets = self.fold.locate(key)
        if not offsets:
            return None
        records = self.fold.history_get(key, offsets)
        missing = [offset for offset in offsets if offset not in records]
        if missing:
            fetched = self.reader.read(self.fold.partition_of(key), missing, timeout_s)
            records.update(fetched)
            self.fold.history_put(key, fetched)
        located = []
        for offset in offsets:
            value = records.get(offset)
            if value is None:
                continue  # logged by the reader: gone from the log
            if self.keys is not None:  # only records holding a sealed value are parsed
                value = open_json(value, self.keys.find)
            try:
                event = decode_event(value)
            except EventDecodeError as exc:  # folded once, so only a contract change can do this
                log.warning("offset %d of session %s no longer decodes: %s", offset, session_id, exc)
                continue
            located.append(Located(offset, value, event))
        return located


# --- one page of a timeline (pure) ---------------------------------------------------------------

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class TimelineQueryError(ValueError):
    """A bad query parameter: ``parameter`` names it."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message


@dataclass(frozen=True)
class TimelineQuery:
    limit: int = DEFAULT_LIMIT
    after_offset: int = -1  # the cursor: the log offset of the last event of the previous page
    start: datetime | None = None  # event time at or after
    end: datetime | None = None  # event time before


def timeline_query(params: Mapping[str, str]) -> TimelineQuery:
    """``limit``, ``cursor``, ``from``, ``to`` of a request; raises :class:`TimelineQueryError`."""
    limit = DEFAULT_LIMIT
    if "limit" in params:
        text = params["limit"]
        if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
            raise TimelineQueryError("limit", f"{text[:32]!r} is not a whole number from 1 to {MAX_LIMIT}")
        limit = int(text)
    after_offset = -1
    if params.get("cursor"):
        after_offset = decode_cursor(params["cursor"])
    start = _instant(params, "from")
    end = _instant(params, "to")
    if start is not None and end is not None and end <= start:
        raise TimelineQueryError("to", "must be after from: the range [from, to) is empty or reversed")
    return TimelineQuery(limit, after_offset, start, end)


def _instant(params: Mapping[str, str], name: str) -> datetime | None:
    if name not in params:
        return None
    try:
        return parse_instant(params[name], name)
    except ExportError as exc:
        raise TimelineQueryError(name, exc.message) from None


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o{offset}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if text[:1] == "o" and text[1:].isdigit():
            return int(text[1:])
    except (ValueError, UnicodeDecodeError):
        pass
    raise TimelineQueryError("cursor", "not a cursor this API gave (pass the `next` of the previous page)")


def timeline_page(
    located: list[Located], rules: Rules, query: TimelineQuery, lifetime: timedelta | None = None
) -> dict[str, Any]:
    """``{"events": [...], "next": cursor | None}``: the session's events after the cursor whose
    time is in the range, each as the log holds it plus the paths it changed. Every page folds the
    session from its first event (what an event changed depends on all before it)."""
    page: list[dict[str, Any]] = []
    last_offset: int | None = None
    more = False
    for (offset, value, _), step in zip(
        located, replay([item.event for item in located], rules, lifetime), strict=True
    ):
        if offset <= query.after_offset:
            continue
        when = step.event.time
        if (query.start is not None and when < query.start) or (query.end is not None and when >= query.end):
            continue
        if len(page) == query.limit:
            more = True
            break
        document = orjson.loads(value)
        document["changes"] = step.changes
        if step.rejected:  # refused by today's rules, though folded when it came
            document["rejected"] = True
        page.append(document)
        last_offset = offset
    return {"events": page, "next": encode_cursor(last_offset) if more and last_offset is not None else None}
