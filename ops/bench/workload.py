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
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

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
        # Skewed: a few long sessions, many short ones (the head of the list is browsed most).
        return min(self.sessions - 1, int(self.sessions * self.rng.random() ** 1.6))

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


_SUBJECT = "5d0c7a8e-0000-4000-8000-00000000000a"
_ID = "0b7f3a52-0000-4000-8000-00000000000b"


def one_event_sessions(sessions: int, run: int) -> Iterator[Record]:
    """``sessions`` sessions of one page view each (the RSS phase's workload), fast: one event goes
    through the contract, the others are its bytes with a session id and an event id of their own."""
    data = {"url": "https://shop.example/shoes/p-12345?sc=1&color=red", "title": "Shoes | Shop Example"}
    obj = envelope("navigation.page_viewed", _SUBJECT, 0.125, data, SOURCE, _ID)
    template = encode_event(event_from_object(obj))
    assert template.count(_SUBJECT.encode()) == 1 and template.count(_ID.encode()) == 1
    pattern = template.replace(b"%", b"%%").replace(_SUBJECT.encode(), b"%(s)b").replace(_ID.encode(), b"%(i)b")
    tag = run & 0xFFFF
    for i in range(sessions):
        subject = f"{i:08x}-{tag:04x}-4000-8000-000000000000"
        key = subject.encode()
        event_id = f"{i:08x}-{tag:04x}-4000-9000-000000000000".encode()
        yield Record(subject, 1, key, pattern % {b"s": key, b"i": event_id})


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
