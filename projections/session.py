"""The fold: ``apply(state, event) -> state``, pure and deterministic.

Nothing here reads a clock, draws an id or touches I/O: whatever varies was decided before the event
was appended and is recorded in it, so replaying the same events always rebuilds the same state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, Final
from urllib.parse import parse_qsl

import msgspec

from projections.errors import EventRejected
from projections.rules import EMPTY_RULES, Rules
from projections.transformers import read_value, run_transformers
from schemas.events import (
    CampaignClicked,
    CartItemAdded,
    CookiesRecorded,
    Event,
    LoggedIn,
    LoggedOut,
    PageViewed,
    PublicSet,
    RegionResolved,
    SessionCreated,
    SessionErased,
    SessionTransformed,
)
from schemas.session import Namespaces, SessionMeta, SessionState


def rfc3339(moment: datetime) -> str:
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


@lru_cache(maxsize=8192)
def _parse_query(query: str) -> dict[str, str]:
    # Shared between calls (pages repeat across sessions): callers must not mutate the result.
    return dict(parse_qsl(query, keep_blank_values=True))


def query_parameters(url: str) -> dict[str, str]:
    """The url's query-string parameters; a repeated name keeps its last value, as VTEX does."""
    if "?" not in url:
        return {}
    # What urlsplit(url).query gives (the fragment goes first, then everything after the first
    # "?"), without building the other four parts for every page view.
    return _parse_query(url.partition("#")[0].partition("?")[2])


_SCALARS = (str, int, float, bool, type(None))


def _unchanged(entry: dict[str, Any] | None, value: Any) -> bool:
    # Only same-typed scalars count as equal: 1 == True in Python, yet JSON keeps them apart.
    if entry is None or not isinstance(value, _SCALARS):
        return False
    current = entry.get("value")
    return type(current) is type(value) and current == value


BINDING_KEY = "__bindingId"
# What a switch to another binding resets, unless the same write sets it: the choices that belong
# to the binding left (its sales channel, its locale) and the cart made in that channel. On VTEX,
# render-session drops the whole session then (GET /api/sessions/invalidToken); here the session
# and its history stay, and so do the login, the campaigns, the region and other public keys.
BINDING_SCOPED: Final = ("sc", "locale", "cultureInfo", "orderFormId")
BINDING_SCOPED_COOKIES: Final = ("checkout.vtex.com",)


def _public_change(namespaces: Namespaces, facts: dict[str, Any], values: dict[str, Any]) -> Change:
    """Write the values into ``public``; only keys whose value really changes wake transformers."""
    old = namespaces.get("public", {})
    changed = [key for key, value in values.items() if not _unchanged(old.get(key), value)]
    if not changed:
        return Change(namespaces, facts, frozenset())
    public = dict(old)
    for key in changed:
        public[key] = {"value": values[key]}
    keys = {f"public.{key}" for key in changed}
    updated = {**namespaces, "public": public}
    if BINDING_KEY in changed and old.get(BINDING_KEY, {}).get("value") not in (None, ""):
        for key in BINDING_SCOPED:
            if key not in values and public.pop(key, None) is not None:
                keys.add(f"public.{key}")
        cookies = {k: v for k, v in updated.get("cookie", {}).items() if k not in BINDING_SCOPED_COOKIES}
        keys.update(f"cookie.{k}" for k in updated.get("cookie", {}) if k not in cookies)
        updated["cookie"] = cookies
        if not cookies:
            del updated["cookie"]
    return Change(updated, facts, frozenset(keys))


@dataclass(frozen=True)
class Change:
    """What one event does before the transformers run: inputs written, facts recorded."""

    namespaces: Namespaces
    facts: dict[str, Any]
    changed: frozenset[str]


def _page_viewed(event: PageViewed, namespaces: Namespaces, facts: dict[str, Any]) -> Change:
    return _public_change(namespaces, facts, query_parameters(event.data.url))


def _campaign_clicked(event: CampaignClicked, namespaces: Namespaces, facts: dict[str, Any]) -> Change:
    data = event.data
    utm = {
        "utm_source": data.utm_source,
        "utm_medium": data.utm_medium,
        "utm_campaign": data.utm_campaign,
        "utmi_cp": data.utmi_cp,
        "utmi_p": data.utmi_p,
        "utmi_pc": data.utmi_pc,
    }
    return _public_change(namespaces, facts, {k: v for k, v in utm.items() if v is not None})


def _public_set(event: PublicSet, namespaces: Namespaces, facts: dict[str, Any]) -> Change:
    return _public_change(namespaces, facts, {k: v.value for k, v in event.data.public.items()})


def _session_created(event: SessionCreated, namespaces: Namespaces, facts: dict[str, Any]) -> Change:
    recorded = {"account": event.data.account, "binding": event.data.binding}
    recorded = {name: value for name, value in recorded.items() if value is not None}
    return Change(namespaces, {**facts, **recorded}, frozenset(f"@{name}" for name in recorded))


def _cookies_recorded(event: CookiesRecorded, namespaces: Namespaces, facts: dict[str, Any]) -> Change:
    cookies = dict(namespaces.get("cookie", {}))
    for name, value in event.data.cookies.items():
        if value is None:
            cookies.pop(name, None)
        else:
            cookies[name] = {"value": value}
    updated = {**namespaces, "cookie": cookies}
    if not cookies:
        del updated["cookie"]
    return Change(updated, facts, frozenset(f"cookie.{name}" for name in event.data.cookies))


def _session_transformed(event: SessionTransformed, namespaces: Namespaces, facts: dict[str, Any]) -> Change:
    # VTEX's merge of a transform answer: a value overwrites, "" clears, a key left out is kept.
    updated = dict(namespaces)
    changed = set()
    for namespace, keys in event.data.outputs.items():
        entries = dict(updated.get(namespace, {}))
        for key, output in keys.items():
            if output.value == "":
                if entries.pop(key, None) is not None:
                    changed.add(f"{namespace}.{key}")
            elif not _unchanged(entries.get(key), output.value):
                entries[key] = {"value": output.value}
                changed.add(f"{namespace}.{key}")
        updated[namespace] = entries
        if not entries:
            del updated[namespace]
    # Which inputs each app last answered for: the API calls it again only when they change.
    answered = {**facts.get("apps", {}), event.data.app: event.data.inputs}
    return Change(updated, {**facts, "apps": answered}, frozenset(changed))


def _region_resolved(event: RegionResolved, namespaces: Namespaces, facts: dict[str, Any]) -> Change:
    lookup = {"key": event.data.key, "regionId": event.data.regionId}
    return Change(namespaces, {**facts, "region": lookup}, frozenset({"@region"}))


def _logged_in(event: LoggedIn, namespaces: Namespaces, facts: dict[str, Any]) -> Change:
    login = {k: v for k, v in msgspec.structs.asdict(event.data).items() if v is not None and v != []}
    return Change(namespaces, {**facts, "login": login}, frozenset({"@login"}))


def _session_erased(event: SessionErased, namespaces: Namespaces, facts: dict[str, Any]) -> Change:
    raise TypeError("session.erased ends the session: fold with ends_session() before apply()")


def _logged_out(event: LoggedOut, namespaces: Namespaces, facts: dict[str, Any]) -> Change:
    remaining = {k: v for k, v in facts.items() if k != "login"}
    return Change(namespaces, remaining, frozenset({"@login"}))


def _cart_item_added(event: CartItemAdded, namespaces: Namespaces, facts: dict[str, Any]) -> Change:
    # The cart's totals; amounts are added as decimals, so 0.1 + 0.2 is 0.3 as a shopper reads it.
    item = event.data
    currency = read_value(namespaces, facts, "cart.cartCurrency")
    if currency is not None and currency != item.currency:
        raise EventRejected(f"the item's currency {item.currency} is not the cart's currency {currency}")
    items = read_value(namespaces, facts, "cart.cartItems") or 0
    value = Decimal(repr(read_value(namespaces, facts, "cart.cartValue") or 0.0))
    cart: dict[str, dict[str, Any]] = {
        "cartItems": {"value": items + item.quantity},
        "cartValue": {"value": float(value + item.quantity * Decimal(repr(item.price)))},
        "cartCurrency": {"value": item.currency},
    }
    return Change({**namespaces, "cart": cart}, facts, frozenset(f"cart.{key}" for key in cart))


# How many event ids a session remembers to skip duplicates: redeliveries after a crash come from
# the uncommitted tail (seconds of traffic), client retries within a short time.
RECENT_IDS = 64


def is_duplicate(state: SessionState, event: Event) -> bool:
    """The session remembers the event's id: it was applied already (a redelivery or a retry)."""
    return event.id in state.recent_ids


# What each event type does, by its exact type (the contract's members are final structs): one
# dict lookup per event. (Not functools.singledispatch: its call cost more per event than most rules,
# and the compiled build, ``make compile``, has no ``dispatch()`` to look a rule up once.)
_CHANGES: Final[dict[type, Callable[[Any, Namespaces, dict[str, Any]], Change]]] = {
    PageViewed: _page_viewed,
    CampaignClicked: _campaign_clicked,
    PublicSet: _public_set,
    SessionCreated: _session_created,
    CookiesRecorded: _cookies_recorded,
    SessionTransformed: _session_transformed,
    RegionResolved: _region_resolved,
    LoggedIn: _logged_in,
    SessionErased: _session_erased,
    LoggedOut: _logged_out,
    CartItemAdded: _cart_item_added,
}


def _change(event: Event, namespaces: Namespaces, facts: dict[str, Any]) -> Change:
    change_of = _CHANGES.get(type(event))
    if change_of is None:  # a contract member without a rule
        raise TypeError(f"no fold rule for {type(event).__name__}")
    return change_of(event, namespaces, facts)


def apply(state: SessionState | None, event: Event, rules: Rules = EMPTY_RULES) -> SessionState:
    """Fold one event into the session it belongs to (``None`` = no session yet).

    An event whose id the session remembers was applied already: the state comes back unchanged.
    Raises :class:`EventRejected` for an event the session refuses.
    """
    if state is not None and is_duplicate(state, event):
        return state
    when = rfc3339(event.time)
    if state is None:
        namespaces: Namespaces = {}
        facts: dict[str, Any] = {}
        meta = SessionMeta(event_count=1, first_event_time=when, last_event_time=when)
    else:
        namespaces, facts = state.namespaces, state.facts
        meta = SessionMeta(
            event_count=state.meta.event_count + 1,
            first_event_time=state.meta.first_event_time,
            last_event_time=when,
        )
    change = _change(event, namespaces, facts)
    derived = run_transformers(change.namespaces, change.facts, rules, change.changed, created=state is None)
    recent = [*(state.recent_ids[-(RECENT_IDS - 1) :] if state is not None else ()), event.id]
    return SessionState(id=event.subject, namespaces=derived, meta=meta, facts=change.facts, recent_ids=recent)


def ends_session(event: Event) -> bool:
    """The event ends its session (``session.erased``): nothing is left of it, and the next event
    of the same id starts a new one. Every fold checks this before :func:`apply`."""
    return type(event) is SessionErased


def fold(events: Iterable[Event], state: SessionState | None = None, rules: Rules = EMPTY_RULES) -> SessionState | None:
    """Apply events in order; the reference every faster path must agree with.

    A rejected event leaves the state as it was, as in the worker (which dead-letters it).
    """
    for event in events:
        if ends_session(event):
            state = None
            continue
        try:
            state = apply(state, event, rules)
        except EventRejected:
            continue
    return state
