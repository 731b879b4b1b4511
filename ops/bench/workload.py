"""The bench's events: a seeded, deterministic mix over a fixed set of sessions.

Mostly ``navigation.page_viewed`` (urls with and without query parameters, some carrying utm
values the sample rules turn into a campaign), some ``navigation.campaign_clicked`` and some
``session.public_set`` (locale, country + postal code, an identified e-mail, free keys). Objects
are built with the tests' builders (``streams.devkit.events``), then go through the contract
(``schemas.events.event_from_object`` + ``encode_event``), so the bytes are what the API appends.
The same seed gives the same bytes, run after run; a workload remembers how many events each
session got, so a reader knows which ``eventCount`` means "this event is folded". A record carries
its event's time, which it is produced with as its Kafka timestamp (as the API's appender does, so
that ``sessionctl export`` finds a time range with Kafka's time index).

The RSS phase's topic (:func:`one_event_sessions`) gets :class:`LongSessions` interleaved through it
(:func:`interleave`): a few sessions of many events each, far apart in the log, whose timelines and
past states the history phase reads.

The scale mode's topics (:class:`TemplatedWorkload`, ten million events and more) have the same mix
without going through the contract for every event: a pool of the workload's own events, encoded
once, is stamped with each record's session id, event id and time (:func:`event_pattern`).
"""

from __future__ import annotations

import random
import uuid
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from schemas.events import encode_event, event_from_object
from streams.devkit.events import BASE_TIME, at, envelope, public_values

SOURCE = "/bench"

CATEGORIES = ("shoes", "shirts", "bags", "watches", "kitchen", "toys", "books", "garden")
SOURCES = ("google", "facebook", "newsletter", "instagram", "bing")
MEDIUMS = ("cpc", "email", "social", "display")
CAMPAIGNS = ("blackfriday", "BlackFriday", "summer", "cybermonday", "backtoschool", "")
CULTURES = ("pt-BR", "en-US", "es-AR")
POSTAL_CODES = ("04561-000", "04561000", "01310-100", "20040-002", "30130-010")
EMAILS = ("joao@example.com", "maria@example.com", "ana@example.org")


@dataclass(frozen=True)
class Record:
    """One event as produced: its session, the session's event count once it is folded, the bytes,
    and the event's time (ms since the epoch: the record's Kafka timestamp; None: the broker's clock)."""

    session: str
    count: int
    key: bytes
    value: bytes
    timestamp_ms: int | None = None


def skewed_index(sessions: int, roll: float) -> int:
    """The session an event goes to, from a uniform ``roll`` in [0, 1): skewed, a few long sessions and
    many short ones (the head of the list is browsed most)."""
    return min(sessions - 1, int(sessions * roll**1.6))


def epoch_ms(seconds: float) -> int:
    """``seconds`` after the builders' base time, in ms since the epoch (what ``at(seconds)`` writes)."""
    return int(BASE_TIME.timestamp()) * 1000 + round(seconds * 1000)


@dataclass
class Workload:
    """A deterministic stream of events over ``sessions`` sessions (call :meth:`take` repeatedly)."""

    seed: int
    sessions: int
    rng: random.Random = field(init=False)
    session_ids: list[str] = field(init=False)
    counts: list[int] = field(init=False)
    clock_s: float = field(init=False, default=0.0)
    last_seconds: float = field(init=False, default=0.0)  # the time of the latest event made
    produced: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        if self.sessions < 1:
            raise ValueError("a workload needs at least one session")
        self.rng = random.Random(self.seed)
        self.session_ids = [self._uuid() for _ in range(self.sessions)]
        self.counts = [0] * self.sessions

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _seconds(self) -> float:
        """The next event's time, whole milliseconds after the builders' base time."""
        self.clock_s += self.rng.expovariate(50.0)  # ~20 ms apart on average
        self.last_seconds = int(self.clock_s * 1000) / 1000
        return self.last_seconds

    def _pick_session(self) -> int:
        return skewed_index(self.sessions, self.rng.random())

    def _envelope(self, kind: str, subject: str, data: dict[str, Any]) -> dict[str, Any]:
        event_id = self._uuid()
        return envelope(kind, subject, self._seconds(), data, SOURCE, event_id)

    def _page_view(self, subject: str) -> dict[str, Any]:
        rng = self.rng
        category = rng.choice(CATEGORIES)
        url = f"https://shop.example/{category}/p-{rng.randrange(100_000)}"
        roll = rng.random()
        if roll < 0.35:
            pass  # a plain product page
        elif roll < 0.65:
            url += f"?sc=1&color={rng.choice(('red', 'blue', 'black'))}&size={rng.randrange(34, 46)}"
        elif roll < 0.90:
            url += (
                f"?utm_source={rng.choice(SOURCES)}&utm_medium={rng.choice(MEDIUMS)}"
                f"&utm_campaign={rng.choice(CAMPAIGNS)}&sc=1"
            )
        else:
            url += f"?utmi_cp=cp-{rng.randrange(20)}&cultureInfo={rng.choice(CULTURES)}&ref=home"
        data: dict[str, Any] = {"url": url}
        if rng.random() < 0.5:
            data["title"] = f"{category.title()} | Shop Example"
        return self._envelope("navigation.page_viewed", subject, data)

    def _campaign_click(self, subject: str) -> dict[str, Any]:
        rng = self.rng
        data = {
            "utm_source": rng.choice(SOURCES),
            "utm_medium": rng.choice(MEDIUMS),
            "utm_campaign": rng.choice(CAMPAIGNS) or "blackfriday",
        }
        if rng.random() < 0.3:
            data["utmi_cp"] = f"cp-{rng.randrange(20)}"
        return self._envelope("navigation.campaign_clicked", subject, data)

    def _public_set(self, subject: str) -> dict[str, Any]:
        rng = self.rng
        roll = rng.random()
        values: dict[str, Any]
        if roll < 0.3:
            values = {"country": "BRA", "postalCode": rng.choice(POSTAL_CODES)}
        elif roll < 0.5:
            values = {"cultureInfo": rng.choice(CULTURES)}
        elif roll < 0.6:
            values = {"storeUserEmail": rng.choice(EMAILS)}
        else:
            values = {f"variable{rng.randrange(5)}": rng.choice((rng.randrange(1000), True, "value", None))}
        return self._envelope("session.public_set", subject, public_values(values))

    def next_object(self) -> tuple[int, dict[str, Any]]:
        index = self._pick_session()
        subject = self.session_ids[index]
        roll = self.rng.random()
        if roll < 0.80:
            obj = self._page_view(subject)
        elif roll < 0.90:
            obj = self._campaign_click(subject)
        else:
            obj = self._public_set(subject)
        return index, obj

    def take(self, n: int) -> list[Record]:
        """The next ``n`` events, encoded as the contract encodes them."""
        records: list[Record] = []
        for _ in range(n):
            index, obj = self.next_object()
            value = encode_event(event_from_object(obj))
            self.counts[index] += 1
            subject = self.session_ids[index]
            stamp = epoch_ms(self.last_seconds)
            records.append(Record(subject, self.counts[index], subject.encode(), value, stamp))
        self.produced += n
        return records

    def touched(self) -> Iterator[tuple[str, int]]:
        """Every session that has events so far, with the event count it should show."""
        for subject, count in zip(self.session_ids, self.counts, strict=True):
            if count:
                yield subject, count


def sample_page_view() -> bytes:
    """One typical page view with query parameters (the decode micro-benchmark's input)."""
    data = {
        "url": "https://shop.example/shoes/p-12345?utm_source=google&utm_medium=cpc&utm_campaign=blackfriday&sc=1",
        "title": "Shoes | Shop Example",
    }
    obj = envelope(
        "navigation.page_viewed", "5d0c7a8e-4a9e-4f51-8f0e-2b7f6c1d9e33", 0.125, data, SOURCE,
        "0b7f3a52-2f7e-4b9c-9d43-3f1f8f0f6a11",
    )  # fmt: skip
    return encode_event(event_from_object(obj))


# Numbered ids (session index or event number, the run's tag): what the generated topics' sessions
# and events are called; LongSessions' differ in their fourth group (a000, b000).
NUMBERED_SESSION = b"%08x-%04x-4000-8000-000000000000"
NUMBERED_EVENT = b"%08x-%04x-4000-9000-%012x"

_SUBJECT = "5d0c7a8e-0000-4000-8000-00000000000a"
_ID = "0b7f3a52-0000-4000-8000-00000000000b"


def one_event_sessions(sessions: int, run: int) -> Iterator[Record]:
    """``sessions`` sessions of one page view each (the RSS phase's workload), fast: one event goes
    through the contract, the others are its bytes with a session id and an event id of their own."""
    data = {"url": "https://shop.example/shoes/p-12345?sc=1&color=red", "title": "Shoes | Shop Example"}
    obj = envelope("navigation.page_viewed", _SUBJECT, 0.125, data, SOURCE, _ID)
    pattern = event_pattern(encode_event(event_from_object(obj)), s=_SUBJECT, i=_ID)
    tag = run & 0xFFFF
    for i in range(sessions):
        key = NUMBERED_SESSION % (i, tag)
        event_id = NUMBERED_EVENT % (i, tag, 0)
        yield Record(key.decode(), 1, key, pattern % {b"s": key, b"i": event_id})


def event_pattern(value: bytes, **fields: str) -> bytes:
    """``value`` (an encoded event) as a ``bytes %`` pattern: each of ``fields``' values (each found
    exactly once) replaced by ``%(<name>)b``, so that ``pattern % {b"<name>": ...}`` gives the same
    event with other values there (session ids, event ids, times: strings the contract copies as is)."""
    pattern = value.replace(b"%", b"%%")
    for name, text in fields.items():
        found = text.encode()
        if value.count(found) != 1:
            raise ValueError(f"{name}={text!r} occurs {value.count(found)} times in the event, not once")
        pattern = pattern.replace(found, b"%(" + name.encode() + b")b")
    return pattern


@dataclass(frozen=True)
class LongSessions:
    """``count`` sessions of ``length`` page views each (the history phase's sessions): their ids, the
    ids of their events in order, and an instant in the middle of each (after its first half)."""

    ids: list[str]
    event_ids: dict[str, list[str]]
    middle: dict[str, str]  # session -> RFC 3339 instant between event length//2 and the next one
    records: list[Record]  # event k of every session before event k + 1 of any

    @property
    def length(self) -> int:
        return len(self.event_ids[self.ids[0]]) if self.ids else 0


# The long sessions' events are 10 s apart (event k at 10 + 10k s): far inside the sessions' lifetime.
LONG_EVENT_SPACING_S = 10.0


def long_sessions(count: int, length: int, run: int) -> LongSessions:
    """Sessions of ``length`` events each, through the contract; ids apart from
    :func:`one_event_sessions`' (their fourth group is ``a000``, their events' ``b000``)."""
    tag = run & 0xFFFF
    ids = [f"{j:08x}-{tag:04x}-4000-a000-000000000000" for j in range(count)]
    event_ids: dict[str, list[str]] = {s: [] for s in ids}
    records: list[Record] = []
    for k in range(length):
        seconds = LONG_EVENT_SPACING_S * (k + 1)
        for j, subject in enumerate(ids):
            event_id = f"{j:08x}-{k:04x}-4000-b000-{tag:012x}"
            data = {"url": f"https://shop.example/{CATEGORIES[k % len(CATEGORIES)]}/p-{k}", "title": f"Page {k}"}
            if k % 10 == 0:
                data["url"] += f"?utm_source={SOURCES[k % len(SOURCES)]}&utm_medium=cpc&utm_campaign=summer"
            obj = envelope("navigation.page_viewed", subject, seconds, data, SOURCE, event_id)
            value = encode_event(event_from_object(obj))
            records.append(Record(subject, k + 1, subject.encode(), value, epoch_ms(seconds)))
            event_ids[subject].append(event_id)
    half = LONG_EVENT_SPACING_S * (length // 2) + LONG_EVENT_SPACING_S / 2
    return LongSessions(ids, event_ids, {s: at(half) for s in ids}, records)


def interleave(base: Iterable[Record], base_count: int, extra: list[Record]) -> Iterator[Record]:
    """``base`` (``base_count`` records) with ``extra`` spread evenly through it: extra record m comes
    after about (m + 0.5) / len(extra) of the base records."""
    places = [int((m + 0.5) * base_count / len(extra)) for m in range(len(extra))] if extra else []
    m = 0
    for index, record in enumerate(base):
        while m < len(places) and places[m] <= index:
            yield extra[m]
            m += 1
        yield record
    yield from extra[m:]


# The scale mode's pool of distinct events (of the default mix) that its records are stamped from.
TEMPLATE_POOL = 4096
# Event times stay in the past: the broker refuses records more than an hour ahead of its clock
# (Kafka 4's log.message.timestamp.after.max.ms) and BASE_TIME is a day before the run.
MAX_SPAN_S = 20 * 3600.0
DEFAULT_SPACING_MS = 20.0  # what Workload's clock averages
SECOND_TEXT = len("2026-12-01T12:00:07")  # at()'s text up to its whole seconds


@dataclass
class TemplatedWorkload:
    """The default workload's mix at any size, streamed, fast enough for ten million events: a pool of
    ``TEMPLATE_POOL`` events made by :class:`Workload` (through the contract), each record one of them
    at random with its own session id (picked with the same skew, :func:`skewed_index`), event id and
    time (``spacing_ms`` apart, whole milliseconds; the Kafka timestamp is the same time). Session
    ids are numbered (``<index>-<tag>-4000-8000-...``, apart from :class:`LongSessions`'), so the
    event count of each lives in an array, not in a dict of a million strings."""

    seed: int
    sessions: int
    spacing_ms: float = DEFAULT_SPACING_MS
    patterns: list[bytes] = field(init=False)
    counts: array[int] = field(init=False)

    def __post_init__(self) -> None:
        if self.sessions < 1:
            raise ValueError("a workload needs at least one session")
        pool = Workload(self.seed, min(self.sessions, TEMPLATE_POOL)).take(TEMPLATE_POOL)
        self.patterns = []
        for record in pool:
            envelope_ = orjson.loads(record.value)
            self.patterns.append(
                event_pattern(record.value, s=envelope_["subject"], i=envelope_["id"], t=envelope_["time"])
            )
        self.counts = array("I", bytes(4 * self.sessions))

    @classmethod
    def spanning(cls, seed: int, sessions: int, events: int) -> TemplatedWorkload:
        """Events as far apart as the default workload's, closer when ``events`` would reach past
        ``MAX_SPAN_S`` after BASE_TIME."""
        return cls(seed, sessions, min(DEFAULT_SPACING_MS, MAX_SPAN_S * 1000 / max(1, events)))

    @property
    def tag(self) -> int:
        return self.seed & 0xFFFF

    def session_id(self, index: int) -> str:
        return (NUMBERED_SESSION % (index, self.tag)).decode()

    def records(self, events: int) -> Iterator[Record]:
        """``events`` records, streamed (nothing of them is kept but the counts); the same seed, the same
        records, each call."""
        self.counts = array("I", bytes(4 * self.sessions))
        rng = random.Random(self.seed)
        roll, patterns, counts, sessions = rng.random, self.patterns, self.counts, self.sessions
        tag, pool = self.tag, len(patterns)
        base_ms = epoch_ms(0)
        # at() costs microseconds and the topic is millions of events: its text is cut in two, the
        # whole second's ("2026-12-01T12:00:07") and the millisecond's (".250000Z", or "Z" on a whole
        # second: BASE_TIME is on the hour), each made by at() once.
        fractions = [at(ms / 1000)[SECOND_TEXT:].encode() for ms in range(1000)]
        second, second_text = -1, b""
        for n in range(events):
            index = skewed_index(sessions, roll())
            key = NUMBERED_SESSION % (index, tag)
            event_id = NUMBERED_EVENT % (n >> 48, tag, n & 0xFFFFFFFFFFFF)
            offset_ms = int(n * self.spacing_ms)
            if offset_ms // 1000 != second:
                second = offset_ms // 1000
                second_text = at(second)[:SECOND_TEXT].encode()
            moment = second_text + fractions[offset_ms % 1000]
            value = patterns[int(roll() * pool)] % {b"s": key, b"i": event_id, b"t": moment}
            counts[index] += 1
            yield Record(key.decode(), counts[index], key, value, base_ms + offset_ms)

    def touched(self) -> int:
        """How many sessions have events so far."""
        return self.sessions - self.counts.count(0)
