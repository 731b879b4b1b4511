"""Schema versions and the upcasters that lift old records to the current version at decode time.

The log is kept forever, so a breaking change to an event's data is a new version: emitters
stamp ``dataschema`` with it, and a record of an older version is rewritten, step by step, into
the current shape before it reaches the fold. A record with no ``dataschema`` is version 1 (what
was appended before versions were stamped).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

SCHEMA_PREFIX: Final = "urn:session-engine:schema:"

# The current version of every event type; a type not listed has only version 1.
CURRENT: Final[dict[str, int]] = {"navigation.page_viewed": 2}

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
_VERSION_NUMBER: Final = re.compile(r"[0-9]{1,6}")


def schema_uri(event_type: str, version: int) -> str:
    return f"{SCHEMA_PREFIX}{event_type}:v{version}"


def current_version(event_type: str) -> int:
    return CURRENT.get(event_type, 1)


def version_of(event_type: str, dataschema: str | None) -> int | None:
    """The version a ``dataschema`` names; None when it is not one of ours for this type."""
    if dataschema is None:
        return 1
    prefix = f"{SCHEMA_PREFIX}{event_type}:v"
    number = dataschema[len(prefix) :] if dataschema.startswith(prefix) else ""
    # ASCII digits only, and few: str.isdigit() also takes "²", which int() refuses.
    if not _VERSION_NUMBER.fullmatch(number):
        return None
    return int(number)


def _page_viewed_v1_to_v2(event: dict[str, Any]) -> dict[str, Any]:
    # v2 names the referrer like the url it is (``referrerUrl``) and adds ``pageType``.
    if not isinstance(event.get("data"), dict):
        return event  # let the decoder name what is wrong
    data = dict(event["data"])
    if "referrer" in data:
        data["referrerUrl"] = data.pop("referrer")
    data.setdefault("pageType", "other")
    return {**event, "data": data}


# (type, from version) -> the function that lifts a record to from version + 1.
UPCASTERS: Final[dict[tuple[str, int], Upcaster]] = {
    ("navigation.page_viewed", 1): _page_viewed_v1_to_v2,
}


def upcast(event: dict[str, Any], event_type: str, version: int) -> dict[str, Any]:
    """Lift a record of ``version`` to the current version; KeyError when a step is missing."""
    for step in range(version, current_version(event_type)):
        event = UPCASTERS[(event_type, step)](event)
    return {**event, "dataschema": schema_uri(event_type, current_version(event_type))}
