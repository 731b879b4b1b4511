"""Schema version names: what ``dataschema`` says, and which version that is.

The log is kept forever, so a breaking change to an event's data is a new version: emitters
stamp ``dataschema`` with it, and a record of an older version is rewritten, step by step, into
the current shape before it reaches the fold (each older struct's ``upcast`` in
``schemas/events.py``). A record with no ``dataschema`` is version 1 (what was appended before
versions were stamped).
"""

from __future__ import annotations

import re
from typing import Final

SCHEMA_PREFIX: Final = "urn:session-engine:schema:"

_VERSION_NUMBER: Final = re.compile(r"[0-9]{1,6}")


def schema_uri(event_type: str, version: int) -> str:
    return f"{SCHEMA_PREFIX}{event_type}:v{version}"


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
