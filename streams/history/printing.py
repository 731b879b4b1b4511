"""A session's timeline and past state as text for people (``sessionctl history``). Pure."""

from __future__ import annotations

from typing import Any

import orjson

# The fields worth a glance, in the order they are shown, before anything else in `data`.
INTERESTING = ("url", "utm_source", "utm_medium", "utm_campaign", "utmi_cp", "referrerUrl", "userId", "sku")
VALUE_WIDTH = 60


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
