"""Service API keys: bearer keys with scopes, from SESSIONS_SERVICE_KEYS."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from aiohttp import web

from streams.settings import SettingsError

SCOPES = frozenset({"sessions:read", "sessions:history", "sessions:erase", "events:trusted"})


def parse_service_keys(text: str) -> Mapping[str, frozenset[str]]:
    """``"<key>=<scope> <scope>;<key2>=<scope>"`` -> {key: scopes}."""
    keys: dict[str, frozenset[str]] = {}
    for index, entry in enumerate(part.strip() for part in text.split(";")):
        if not entry:
            continue
        key, sep, scopes_text = entry.partition("=")
        scopes = frozenset(scopes_text.split())
        if not sep or len(key.strip()) < 16:
            raise SettingsError(f"SESSIONS_SERVICE_KEYS entry {index}: expected '<key of 16+ chars>=<scopes>'")
        unknown = scopes - SCOPES
        if unknown or not scopes:
            raise SettingsError(
                f"SESSIONS_SERVICE_KEYS entry {index}: unknown or no scopes {sorted(unknown)}; known: {sorted(SCOPES)}"
            )
        keys[key.strip()] = scopes
    return keys


def scopes_of(request: web.Request, keys: Mapping[str, frozenset[str]]) -> frozenset[str]:
    """The scopes of the request's bearer key; empty when there is none or it is unknown."""
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented:
        return frozenset()
    for key, scopes in keys.items():
        if hmac.compare_digest(key.encode(), presented.strip().encode()):
            return scopes
    return frozenset()
