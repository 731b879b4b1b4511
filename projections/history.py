"""A session's past, folded again from its events: what each event changed, the state at an
instant, the state right after an event. Pure: the events come from the caller (the worker reads
them from its history store or from Kafka), and the fold is the one the worker runs
(:func:`projections.session.apply`), with the rules of today.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import NamedTuple

from projections.errors import EventRejected
from projections.rules import EMPTY_RULES, Rules
from projections.session import apply, ends_session
from schemas.events import Event
from schemas.session import Namespaces, SessionState


class Step(NamedTuple):
    """One event of a session's history and what folding it did."""

    event: Event
    state: SessionState | None  # right after the event
    changes: list[str]  # the "namespace.key" paths whose value it changed (transformers included)
    rejected: bool  # the fold refused it (the worker dead-lettered it): nothing changed


def changed_paths(before: Namespaces, after: Namespaces) -> list[str]:
    """Paths set, changed or removed between two documents, in a stable order."""
    if before is after:
        return []
    paths = []
    for namespace in sorted(before.keys() | after.keys()):
        old, new = before.get(namespace, {}), after.get(namespace, {})
        if old is new:
            continue
        for key in sorted(old.keys() | new.keys()):
            if old.get(key) != new.get(key):
                paths.append(f"{namespace}.{key}")
    return paths


class Lifetime:
    """A session's lifetime (None: forever): an event that comes more than ``lifetime`` after the
    latest event time folded so far starts the session afresh; the old one had expired. The fold
    engine applies the same rule (``streams.fold.batch``), so a replay meets the same restarts."""

    def __init__(self, lifetime: timedelta | None) -> None:
        # In whole milliseconds, as the engine stores a session's activity.
        self.lifetime_ms = None if lifetime is None else int(lifetime.total_seconds() * 1000)
        self.latest_ms: int | None = None

    def expired_by(self, event: Event) -> bool:
        return self.expired_at(event.time)

    def expired_at(self, moment: datetime) -> bool:
        if self.lifetime_ms is None or self.latest_ms is None:
            return False
        return _ms(moment) - self.latest_ms > self.lifetime_ms

    def folded(self, event: Event) -> None:
        self.latest_ms = _ms(event.time) if self.latest_ms is None else max(self.latest_ms, _ms(event.time))


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def replay(events: Iterable[Event], rules: Rules = EMPTY_RULES, lifetime: timedelta | None = None) -> Iterator[Step]:
    """Fold the events in order, yielding each with the state after it and what it changed."""
    state: SessionState | None = None
    clock = Lifetime(lifetime)
    for event in events:
        if ends_session(event):  # erased: nothing is left, whatever the lifetime says
            yield Step(event, None, changed_paths(state.namespaces if state is not None else {}, {}), False)
            state, clock = None, Lifetime(lifetime)
            continue
        base = None if clock.expired_by(event) else state
        try:
            after = apply(base, event, rules)
        except EventRejected:
            yield Step(event, state, [], True)
            continue
        clock.folded(event)
        before: Namespaces = base.namespaces if base is not None else {}
        yield Step(event, after, changed_paths(before, after.namespaces), False)
        state = after


def state_at(
    events: Iterable[Event], instant: datetime, rules: Rules = EMPTY_RULES, lifetime: timedelta | None = None
) -> SessionState | None:
    """The fold, in log order, of the events whose time is at or before ``instant`` (None: none,
    or the session had expired by then).

    A skewed event (earlier in the log, later in time) is left out even when later ones are in."""
    state: SessionState | None = None
    clock = Lifetime(lifetime)
    for event in events:
        if event.time <= instant:
            if ends_session(event):
                state, clock = None, Lifetime(lifetime)
                continue
            base = None if clock.expired_by(event) else state
            try:
                state = apply(base, event, rules)
            except EventRejected:
                continue
            clock.folded(event)
    if state is not None and clock.expired_at(instant):
        return None  # inactive for longer than its lifetime at that instant: expired
    return state


class UnknownEvent(LookupError):
    """The event id is not one of the session's events."""


def state_after(
    events: Iterable[Event], event_id: str, rules: Rules = EMPTY_RULES, lifetime: timedelta | None = None
) -> SessionState | None:
    """The state right after the event with ``event_id`` (its first occurrence): the fold of the
    events before it and itself, in log order. None when the session had no state by then (the
    event was refused and nothing came before it)."""
    for step in replay(events, rules, lifetime):
        if step.event.id == event_id:
            return step.state
    raise UnknownEvent(event_id)
