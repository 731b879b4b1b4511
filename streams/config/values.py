"""How a setting's text becomes its value: numbers, booleans and paths, and the lists some settings
hold (rate limits, CORS origins, service keys and their scopes), with errors that name the variable."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PREFIX = "SESSIONS_"
# What a service API key may be granted (SESSIONS_SERVICE_KEYS).
SCOPES = frozenset({"sessions:read", "sessions:history", "sessions:erase", "events:trusted", "operations:read"})


class SettingsError(ValueError):
    """A setting that cannot be used; the message names the variable."""


@dataclass(frozen=True)
class Limit:
    """``rate`` requests a second on average, bursts of up to ``burst``."""

    rate: float
    burst: float


_LIMIT = re.compile(r"^(address|session)=(\d+(?:\.\d+)?)/s(?::(\d+))?$")
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?$")


def parse_rate_limits(text: str) -> tuple[Limit | None, Limit | None]:
    """``"address=20/s:40,session=10/s"`` -> (per address, per session); burst defaults to 2x rate."""
    found: dict[str, Limit] = {}
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        match = _LIMIT.match(entry)
        if match is None or float(match[2]) <= 0:
            raise SettingsError(
                f"{PREFIX}RATE_LIMITS entry {entry!r}: expected address=<n>/s[:<burst>] or session=<n>/s[:<burst>]"
            )
        rate = float(match[2])
        found[match[1]] = Limit(rate, float(match[3]) if match[3] else max(1.0, 2 * rate))
    return found.get("address"), found.get("session")


def parse_cors_origins(text: str) -> frozenset[str]:
    origins = set()
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        if not _ORIGIN.match(entry):
            raise SettingsError(f"{PREFIX}CORS_ORIGINS entry {entry!r}: expected scheme://host[:port], no path")
        origins.add(entry)
    return frozenset(origins)


def parse_service_keys(text: str) -> Mapping[str, frozenset[str]]:
    """``"<key>=<scope> <scope>;<key2>=<scope>"`` -> {key: scopes}. Errors name the entry's index,
    never the key."""
    keys: dict[str, frozenset[str]] = {}
    for index, entry in enumerate(part.strip() for part in text.split(";")):
        if not entry:
            continue
        key, sep, scopes_text = entry.partition("=")
        scopes = frozenset(scopes_text.split())
        if not sep or len(key.strip()) < 16:
            raise SettingsError(f"{PREFIX}SERVICE_KEYS entry {index}: expected '<key of 16+ chars>=<scopes>'")
        unknown = scopes - SCOPES
        if unknown or not scopes:
            raise SettingsError(
                f"{PREFIX}SERVICE_KEYS entry {index}: unknown or no scopes {sorted(unknown)}; known: {sorted(SCOPES)}"
            )
        keys[key.strip()] = scopes
    return keys


def parse_value(name: str, raw: str, kind: Any) -> Any:
    kind = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "Path":
            return Path(raw)
        if kind == "bool":
            return _boolean(name, raw)
    except ValueError:
        raise SettingsError(f"{name} must be a{'n integer' if kind == 'int' else ' number'}, got {raw!r}") from None
    return raw


def _boolean(name: str, raw: str) -> bool:
    text = raw.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")
