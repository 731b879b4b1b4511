"""The bench's events: a seeded, deterministic mix over a fixed set of sessions.

Mostly ``navigation.page_viewed`` (urls with and without query parameters, some carrying utm
values the sample rules turn into a campaign), some ``navigation.campaign_clicked`` and some
``session.public_set`` (locale, country + postal code, an identified e-mail, free keys). Objects
are built with the tests' builders (``streams.testing.events``), then go through the contract
(``schemas.events.event_from_object`` + ``encode_event``), so the bytes are what the API appends.
The same seed gives the same bytes, run after run; a workload remembers how many events each
session got, so a reader knows which ``eventCount`` means "this event is folded".
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from schemas.events import encode_event, event_from_object
from streams.testing.events import envelope, public_values

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
    """One event as produced: its session, the session's event count once it is folded, the bytes."""

    session: str
    count: int
    key: bytes
    value: bytes


@dataclass
class Workload:
    """A deterministic stream of events over ``sessions`` sessions (call :meth:`take` repeatedly)."""

    seed: int
    sessions: int
    rng: random.Random = field(init=False)
    session_ids: list[str] = field(init=False)
    counts: list[int] = field(init=False)
    clock_s: float = field(init=False, default=0.0)
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
        return int(self.clock_s * 1000) / 1000

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
            records.append(Record(subject, self.counts[index], subject.encode(), value))
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
