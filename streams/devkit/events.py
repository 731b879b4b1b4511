"""Builders for valid events (JSON objects as an emitter would send them), for the tests and the bench.

Times are seconds after :data:`BASE_TIME`, written as the fold writes times (``rfc3339``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from projections.session import rfc3339

# A day before the run, on the hour: recent enough that no session is inactive for longer than the
# default lifetime (SESSIONS_SESSION_TTL_S) and a day of offsets stays in the past.
BASE_TIME = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)


def new_session_id() -> str:
    return str(uuid.uuid4())


def at(seconds: float) -> str:
    return rfc3339(BASE_TIME + timedelta(seconds=seconds))


def envelope(
    type_: str, subject: str, seconds: float, data: dict[str, Any], source: str = "/tests", event_id: str | None = None
) -> dict[str, Any]:
    """A CloudEvents envelope; a fresh random id unless ``event_id`` is given."""
    return {
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "source": source,
        "type": type_,
        "subject": subject,
        "time": at(seconds),
        "data": data,
    }


def page_view(subject: str, url: str, seconds: float = 0, **extra: Any) -> dict[str, Any]:
    return envelope("navigation.page_viewed", subject, seconds, {"url": url, **extra})


def campaign_click(subject: str, seconds: float = 0, **utm: str) -> dict[str, Any]:
    return envelope("navigation.campaign_clicked", subject, seconds, utm)


def public_set(subject: str, values: dict[str, Any], seconds: float = 0) -> dict[str, Any]:
    return envelope("session.public_set", subject, seconds, public_values(values))


def public_values(values: dict[str, Any]) -> dict[str, Any]:
    """The data of a ``session.public_set`` that sets ``values``."""
    return {"public": {k: {"value": v} for k, v in values.items()}}


def logged_in(subject: str, user_id: str, email: str, seconds: float = 0, **profile: Any) -> dict[str, Any]:
    data = {"userId": user_id, "email": email, **profile}
    return envelope("auth.logged_in", subject, seconds, data, source="/tests/identity")


def logged_out(subject: str, seconds: float = 0) -> dict[str, Any]:
    return envelope("auth.logged_out", subject, seconds, {}, source="/tests/identity")


def session_erased(subject: str, seconds: float = 0) -> dict[str, Any]:
    return envelope("session.erased", subject, seconds, {}, source="/api/v1/sessions")


def session_created(subject: str, account: str | None = None, seconds: float = 0) -> dict[str, Any]:
    return envelope("session.created", subject, seconds, {"account": account} if account else {})


def cart_item_added(
    subject: str, sku: str, quantity: int, price: float, currency: str = "BRL", seconds: float = 0
) -> dict[str, Any]:
    data = {"sku": sku, "quantity": quantity, "price": price, "currency": currency}
    return envelope("cart.item_added", subject, seconds, data)


def cookies_recorded(subject: str, cookies: dict[str, str | None], seconds: float = 0) -> dict[str, Any]:
    return envelope("session.cookies_recorded", subject, seconds, {"cookies": cookies}, source="/api/sessions")


def region_resolved(subject: str, key: str, region_id: str | None, seconds: float = 0) -> dict[str, Any]:
    data = {"key": key, "regionId": region_id}
    return envelope("checkout.region_resolved", subject, seconds, data, source="/api/sessions")


def session_transformed(
    subject: str, app: str, inputs: str, outputs: dict[str, dict[str, Any]], seconds: float = 0
) -> dict[str, Any]:
    data = {
        "app": app,
        "inputs": inputs,
        "outputs": {ns: {k: {"value": v} for k, v in keys.items()} for ns, keys in outputs.items()},
    }
    return envelope("session.transformed", subject, seconds, data, source="/api/sessions")


# One valid example of every event type (the contract tests run each through the files and the
# decoder; tests/unit/test_event_types.py fails when a type has none).
EXAMPLES: dict[str, Callable[[str], dict[str, Any]]] = {
    "navigation.page_viewed": lambda sid: page_view(sid, "https://s/?a=1", referrerUrl="https://r/", pageType="cart"),
    "navigation.campaign_clicked": lambda sid: campaign_click(sid, utm_source="x", utm_campaign="y"),
    "session.public_set": lambda sid: public_set(sid, {"k": [1, {"a": None}]}),
    "session.created": lambda sid: session_created(sid, "demo"),
    "auth.logged_in": lambda sid: logged_in(sid, "u", "a@b.co", firstName="A", priceTables=["t1"]),
    "auth.logged_out": lambda sid: logged_out(sid),
    "cart.item_added": lambda sid: cart_item_added(sid, "sku-1", 2, 19.9, "BRL"),
    "session.erased": lambda sid: session_erased(sid),
    "session.cookies_recorded": lambda sid: cookies_recorded(sid, {"checkout.vtex.com": "__ofid=0a1b2c"}),
    "checkout.region_resolved": lambda sid: region_resolved(sid, "0" * 64, "v2.1BB18CE648B5111D0933734ED83EC783"),
    "session.transformed": lambda sid: session_transformed(
        sid,
        "storefront-permissions",
        "0" * 64,
        {"public": {"sc": "2"}, "storefront-permissions": {"organization": "o-1"}},
    ),
}
