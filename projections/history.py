"""A session's past, folded again from its events: what each event changed, the state at an
instant, the state right after an event. Pure: the events come from the caller (the worker reads
them from its history store or from Kafka), and the fold is the worker's own step
(:func:`projections.step.step`: erasures end a session, the lifetime restarts it), with the rules
of today.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import NamedTuple

from projections.errors import EventRejected
from projections.lifetime import epoch_ms, expired, lifetime_ms_of
from projections.rules import EMPTY_RULES, Rules
from projections.session import ends_session
from projections.step import NO_SESSION, continues, step
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


def replay(events: Iterable[Event], rules: Rules = EMPTY_RULES, lifetime: timedelta | None = None) -> Iterator[Step]:
    """Fold the events in order (the worker's step: ``projections.step``), yielding each with the
    state after it and what it changed."""
    session, lifetime_ms = NO_SESSION, lifetime_ms_of(lifetime)
    for event in events:
        # What the event changed is measured from what it folded into: nothing when it starts the
        # session afresh; everything the session held when it ends it.
        base = session.state if ends_session(event) or continues(session, event, lifetime_ms) else None
        try:
            after = step(session, event, rules, lifetime_ms)
        except EventRejected:
            yield Step(event, session.state, [], True)
            continue
        before: Namespaces = base.namespaces if base is not None else {}
        yield Step(event, after.state, changed_paths(before, after.state.namespaces if after.state else {}), False)
        session = after


def state_at(
    events: Iterable[Event], instant: datetime, rules: Rules = EMPTY_RULES, lifetime: timedelta | None = None
) -> SessionState | None:
    """The fold, in log order, of the events whose time is at or before ``instant`` (None: none,
    or the session had expired by then).

    A skewed event (earlier in the log, later in time) is left out even when later ones are in."""
    session, lifetime_ms = NO_SESSION, lifetime_ms_of(lifetime)
    for event in events:
        if event.time <= instant:
            try:
                session = step(session, event, rules, lifetime_ms)
            except EventRejected:
                continue
    if expired(session.activity_ms, epoch_ms(instant), lifetime_ms):
        return None  # inactive for longer than its lifetime at that instant: expired
    return session.state


class UnknownEvent(LookupError):
    """The event id is not one of the session's events."""


def state_after(
    events: Iterable[Event], event_id: str, rules: Rules = EMPTY_RULES, lifetime: timedelta | None = None
) -> SessionState | None:
    """The state right after the event with ``event_id`` (its first occurrence): the fold of the
    events before it and itself, in log order. None when the session had no state by then (the
    event was refused and nothing came before it)."""
    for replayed in replay(events, rules, lifetime):
        if replayed.event.id == event_id:
            return replayed.state
    raise UnknownEvent(event_id)
