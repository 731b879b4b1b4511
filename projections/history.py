"""A session's past, folded again from its events: what each event changed, the state at an
instant, the state right after an event. Pure: the events come from the caller (the worker reads
them from its history store or from Kafka), and the fold is the one the worker runs
(:func:`projections.session.apply`), with the rules of today.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import NamedTuple

from projections.errors import EventRejected
from projections.rules import EMPTY_RULES, Rules
from projections.session import apply
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


def replay(events: Iterable[Event], rules: Rules = EMPTY_RULES) -> Iterator[Step]:
    """Fold the events in order, yielding each with the state after it and what it changed."""
    state: SessionState | None = None
    for event in events:
        try:
            after = apply(state, event, rules)
        except EventRejected:
            yield Step(event, state, [], True)
            continue
        before: Namespaces = state.namespaces if state is not None else {}
        yield Step(event, after, changed_paths(before, after.namespaces), False)
        state = after


def state_at(events: Iterable[Event], instant: datetime, rules: Rules = EMPTY_RULES) -> SessionState | None:
    """The fold, in log order, of the events whose time is at or before ``instant`` (None: none).

    A skewed event (earlier in the log, later in time) is left out even when later ones are in."""
    state: SessionState | None = None
    for event in events:
        if event.time <= instant:
            try:
                state = apply(state, event, rules)
            except EventRejected:
                continue
    return state


class UnknownEvent(LookupError):
    """The event id is not one of the session's events."""


def state_after(events: Iterable[Event], event_id: str, rules: Rules = EMPTY_RULES) -> SessionState | None:
    """The state right after the event with ``event_id`` (its first occurrence): the fold of the
    events before it and itself, in log order. None when the session had no state by then (the
    event was refused and nothing came before it)."""
    for step in replay(events, rules):
        if step.event.id == event_id:
            return step.state
    raise UnknownEvent(event_id)
