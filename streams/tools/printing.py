"""A session's timeline and past state as text for people (``sessionctl history``). Pure."""

from __future__ import annotations

from typing import Any

import orjson

from schemas.personal import event_places, state_places

# The fields worth a glance, in the order they are shown, before anything else in `data`.
INTERESTING = ("url", "utm_source", "utm_medium", "utm_campaign", "utmi_cp", "referrerUrl", "userId", "sku")
VALUE_WIDTH = 60
# What a personal value (``schemas.personal``) is printed as unless asked for in clear: a terminal's
# scrollback, a pasted ticket or a CI log is no place for a shopper's e-mail.
REDACTED = "[redacted]"


def redact_events(events: list[dict[str, Any]], personal_public: frozenset[str]) -> list[dict[str, Any]]:
    """Copies of timeline events with their personal values replaced by ``REDACTED``."""
    copies: list[dict[str, Any]] = orjson.loads(orjson.dumps(events))
    for record in copies:
        for container, name, _ in list(event_places(record, personal_public)):
            container[name] = REDACTED
    return copies


def redact_document(document: dict[str, Any], personal_public: frozenset[str]) -> dict[str, Any]:
    """A copy of a session document with its personal values replaced by ``REDACTED``."""
    copy: dict[str, Any] = orjson.loads(orjson.dumps(document))
    for container, name, _ in list(state_places(copy, personal_public)):
        container[name] = REDACTED
    return copy


def timeline_lines(events: list[dict[str, Any]]) -> list[str]:
    """One line per event: time, type, its interesting fields; then what it changed."""
    lines = []
    for event in events:
        fields = "  ".join(f"{k}={_short(v)}" for k, v in _fields(event.get("data") or {}))
        lines.append(f"{event.get('time', '?'):<24} {event.get('type', '?'):<28} {fields}".rstrip())
        changes = event.get("changes") or []
        flag = "  (refused by today's rules)" if event.get("rejected") else ""
        lines.append(f"{'':<24} changed: {', '.join(changes) if changes else '-'}{flag}")
    return lines


def document_lines(document: dict[str, Any]) -> list[str]:
    """``namespace.key = value`` for every entry of a session document, sorted; then its meta."""
    lines = []
    for namespace, entries in sorted((document.get("namespaces") or {}).items()):
        for key, entry in sorted(entries.items()):
            value = entry.get("value") if isinstance(entry, dict) else entry
            lines.append(f"{namespace}.{key} = {_short(value)}")
    meta = document.get("meta") or {}
    if meta:
        first, last = meta.get("firstEventTime", "?"), meta.get("lastEventTime", "?")
        lines.append(f"({meta.get('eventCount', '?')} events, {first} .. {last})")
    return lines


def _fields(data: dict[str, Any]) -> list[tuple[str, Any]]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and all(isinstance(v, dict) and "value" in v for v in value.values()):
            flat.update({f"{key}.{k}": v["value"] for k, v in value.items()})  # {"public": {k: {"value": v}}}
        elif value is not None:
            flat[key] = value
    first = [(k, flat.pop(k)) for k in INTERESTING if k in flat]
    return first + sorted(flat.items())


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 1] + "…"
