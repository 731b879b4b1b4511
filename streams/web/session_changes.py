"""What a storefront request changes in a session, as events: the origin of a new session, the public
values and where each came from, the login an identity cookie vouches for, the recorded cookies."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from projections.rules import CoordinatesError, parse_coordinates
from projections.session import rfc3339
from projections.transformers import CHECKOUT_COOKIE, IMPERSONATED_KEY, read_value
from schemas.events import Event, EventDecodeError, event_from_object
from schemas.session import SessionState
from streams.web.errors import HttpError

if TYPE_CHECKING:
    pass


SOURCE = "/api/sessions"
# The request cookies a session records (VTEX's ``cookie`` namespace): the storefront's cart and
# the telesales UI's impersonated customer.
RECORDED_COOKIES = (CHECKOUT_COOKIE, IMPERSONATED_KEY)


class Origin(NamedTuple):
    """Where a new session of a request belongs: its account and the binding of its host."""

    account: str | None
    binding: str | None

    def created_data(self) -> dict[str, str]:
        data = {"account": self.account, "binding": self.binding}
        return {name: value for name, value in data.items() if value is not None}


NO_ORIGIN = Origin(None, None)  # the default account, no binding


class Identity(NamedTuple):
    """The identity cookie of a request: the login a valid one vouches for, else None."""

    login: dict[str, Any] | None


class PublicChange(NamedTuple):
    """The public values of a write, and where each came from (for the error that names it)."""

    values: dict[str, Any]
    from_query: frozenset[str]

    def path(self, key: str) -> str:
        return key if key in self.from_query else f"$.public.{key}"


def _now() -> str:
    return rfc3339(datetime.now(UTC))


def new_event(type_: str, subject: str, data: dict[str, Any], source: str = SOURCE) -> Event:
    """An event the API itself emits: a fresh id, now as its time. A 400 names what does not check."""
    envelope = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": source,
        "type": type_,
        "subject": subject,
        "time": _now(),
        "data": data,
    }
    try:
        return event_from_object(envelope)
    except EventDecodeError as exc:  # the inputs were checked; this names what slipped through
        raise HttpError(400, "invalid_session_change", exc.message, [{"path": exc.path}]) from None


def read_key(state: SessionState, key: str) -> Any:
    """A key of the session (``namespace.key``, or ``@fact``); None when absent or cleared."""
    value = read_value(state.namespaces, state.facts, key)
    return None if value == "" else value


def check_public(public: PublicChange) -> None:
    """Public values the transformers read in a given shape: refused (naming the field) when a
    client writes them in another, rather than silently deriving nothing."""
    geo = public.values.get("geoCoordinates")
    if geo not in (None, ""):
        try:
            parse_coordinates(geo)
        except CoordinatesError as exc:
            raise HttpError(
                400, "invalid_public_value", f"geoCoordinates: {exc}", [{"path": public.path("geoCoordinates")}]
            ) from None


def identity_events(current: SessionState | None, session_id: str, identity: Identity) -> list[Event]:
    """The login a valid cookie vouches for, when the session does not have it yet; the logout
    of a login that came from the cookie, when the cookie is no longer valid (gone, expired). A
    login a trusted service recorded is never undone by a request without the cookie."""
    login = current.facts.get("login") if current is not None else None
    if identity.login is not None:
        same = login is not None and all(login.get(k) == identity.login.get(k) for k in ("userId", "email", "admin"))
        return [] if same else [new_event("auth.logged_in", session_id, identity.login)]
    if login is not None and login.get("viaCookie") is True:
        return [new_event("auth.logged_out", session_id, {})]
    return []


def cookie_changes(current: SessionState | None, cookies: dict[str, str | None]) -> dict[str, str | None]:
    """The cookies whose value differs from what the session recorded (None: it is gone)."""
    recorded = current.namespaces.get("cookie", {}) if current is not None else {}
    changes: dict[str, str | None] = {}
    for name, value in cookies.items():
        before = (recorded.get(name) or {}).get("value")
        if value != before and not (value is None and before is None):
            changes[name] = value
    return changes
