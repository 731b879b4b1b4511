"""The fold: ``apply(state, event) -> state``, pure and deterministic.

Nothing here reads a clock, draws an id or touches I/O: whatever varies was decided before the event
was appended and is recorded in it, so replaying the same events always rebuilds the same state.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import singledispatch
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from schemas.events import (
    CampaignClicked,
    Event,
    PageViewed,
    PublicSet,
    SessionCreated,
)
from schemas.session import Namespaces, SessionMeta, SessionState


def rfc3339(moment: datetime) -> str:
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def query_parameters(url: str) -> dict[str, str]:
    """The url's query-string parameters; a repeated name keeps its last value, as VTEX does."""
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def _with_public(namespaces: Namespaces, values: dict[str, Any]) -> Namespaces:
    if not values:
        return namespaces
    public = dict(namespaces.get("public", {}))
    for key, value in values.items():
        public[key] = {"value": value}
    return {**namespaces, "public": public}


@singledispatch
def _changes(event: Event, namespaces: Namespaces) -> Namespaces:
    raise TypeError(f"no fold rule for {type(event).__name__}")  # a contract member without a rule


@_changes.register
def _(event: PageViewed, namespaces: Namespaces) -> Namespaces:
    return _with_public(namespaces, query_parameters(event.data.url))


@_changes.register
def _(event: CampaignClicked, namespaces: Namespaces) -> Namespaces:
    data = event.data
    utm = {
        "utm_source": data.utm_source,
        "utm_medium": data.utm_medium,
        "utm_campaign": data.utm_campaign,
        "utmi_cp": data.utmi_cp,
        "utmi_p": data.utmi_p,
        "utmi_pc": data.utmi_pc,
    }
    return _with_public(namespaces, {k: v for k, v in utm.items() if v is not None})


@_changes.register
def _(event: PublicSet, namespaces: Namespaces) -> Namespaces:
    return _with_public(namespaces, {k: v.value for k, v in event.data.public.items()})


@_changes.register
def _(event: SessionCreated, namespaces: Namespaces) -> Namespaces:
    return namespaces


def apply(state: SessionState | None, event: Event) -> SessionState:
    """Fold one event into the session it belongs to (``None`` = no session yet)."""
    when = rfc3339(event.time)
    if state is None:
        namespaces: Namespaces = {}
        meta = SessionMeta(event_count=1, first_event_time=when, last_event_time=when)
    else:
        namespaces = state.namespaces
        meta = SessionMeta(
            event_count=state.meta.event_count + 1,
            first_event_time=state.meta.first_event_time,
            last_event_time=when,
        )
    return SessionState(id=event.subject, namespaces=_changes(event, namespaces), meta=meta)


def fold(events: Iterable[Event], state: SessionState | None = None) -> SessionState | None:
    """Apply events in order; the reference every faster path must agree with."""
    for event in events:
        state = apply(state, event)
    return state
