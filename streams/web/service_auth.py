"""Service API keys: the request-side check. The keys and their scopes are parsed by
``Settings.service_key_scopes`` (from SESSIONS_SERVICE_KEYS)."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from aiohttp import web


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
