"""Service API keys and the access every route declares.

The keys and their scopes are parsed by ``Settings.service_key_scopes`` (SESSIONS_SERVICE_KEYS);
:class:`ServiceKeys` keeps only their SHA-256 digests and compares a presented key's digest with
every one of them in constant time.

Every HTTP method of every page states its access where it is declared: ``@requires(scope)`` (a
bearer key with that scope, else 401/403) or ``@public(...)`` (no key needed; ``elevated`` names a
scope that unlocks more, like ``events:trusted`` on the event intake). :func:`page` registers a
view class with faust and refuses, at start, a method that states neither; the registry
(``Engine.access``) is what the OpenAPI document's ``x-scope`` is checked against
(``tests/integration/test_route_scopes.py``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from streams.web.errors import HttpError

SESSIONS_READ = "sessions:read"
SESSIONS_HISTORY = "sessions:history"
EVENTS_TRUSTED = "events:trusted"
SESSIONS_ERASE = "sessions:erase"
OPERATIONS_READ = "operations:read"  # the explorer's operations view: figures, no session data
PUBLIC = "public"
HTTP_METHODS = ("get", "post", "patch", "put", "delete")

_PATTERN = re.compile(r"\{(\w+):[^}]*\}")  # "{name:regex}" -> "{name}", as the document writes it
F = TypeVar("F", bound=Callable[..., Awaitable[web.StreamResponse]])


def _digest(key: str) -> bytes:
    # A header's bytes that are not UTF-8 reach us as lone surrogates (aiohttp decodes with
    # surrogateescape): hashed as the bytes they were, such a key is simply not one of ours (a 401),
    # where a strict encode raised and answered 500.
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


class ServiceKeys:
    """The configured keys as SHA-256 digests with their scopes; never the keys themselves."""

    def __init__(self, keys: Mapping[str, frozenset[str]]) -> None:
        self._entries = [(_digest(key), scopes) for key, scopes in keys.items()]

    def __len__(self) -> int:
        return len(self._entries)

    def scopes(self, presented: str) -> frozenset[str] | None:
        """The scopes of a presented key; None when it is not one of ours. Every entry is compared
        (constant time per entry, no early exit), so the timing says nothing about which matched."""
        digest = _digest(presented)
        found: frozenset[str] | None = None
        for known, scopes in self._entries:
            if hmac.compare_digest(known, digest):
                found = scopes
        return found


def bearer(request: web.Request) -> str | None:
    """The request's bearer credential; None without one ("" for a malformed header)."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer":
        return ""
    return presented.strip()


def unauthorized(message: str) -> HttpError:
    return HttpError(401, "unauthorized", message, headers={"WWW-Authenticate": 'Bearer realm="sessions"'})


def authenticate(request: web.Request, keys: ServiceKeys) -> frozenset[str] | None:
    """The scopes of the request's key; None when it sends none. A key that is sent but not known
    (or a malformed Authorization header) is a 401, never a silent downgrade."""
    presented = bearer(request)
    if presented is None:
        return None
    scopes = keys.scopes(presented) if presented else None
    if scopes is None:
        raise unauthorized("the bearer key is not a known service key")
    return scopes


def require(request: web.Request, keys: ServiceKeys, scope: str) -> None:
    """401 without a known key, 403 when the key lacks ``scope``."""
    scopes = authenticate(request, keys)
    if scopes is None:
        raise unauthorized(f"this route needs a bearer service key with the {scope} scope")
    if scope not in scopes:
        raise HttpError(403, "forbidden", f"the service key lacks the {scope} scope")


@dataclass(frozen=True)
class Access:
    """What a route needs: ``scope`` (None: public) and ``elevated``: on a public route, the scope
    that unlocks more; on a scoped one, the scope needed instead when the request has one of the
    query parameters ``elevated_by`` (``?at=`` of a session read needs ``sessions:history``)."""

    scope: str | None
    elevated: str | None = None
    elevated_by: tuple[str, ...] = ()

    def needed(self, query: Mapping[str, str]) -> str | None:
        """The scope a request needs."""
        if self.elevated is not None and any(name in query for name in self.elevated_by):
            return self.elevated
        return self.scope

    @property
    def label(self) -> str:
        """The OpenAPI document's ``x-scope``."""
        return self.scope or PUBLIC


def requires(scope: str, instead: str | None = None, when: tuple[str, ...] = ()) -> Callable[[F], F]:
    """Declares (and, through :func:`page`, enforces) that a view method needs ``scope``, or the
    scope ``instead`` when the request has one of the query parameters ``when``."""

    def mark(method: F) -> F:
        method.__access__ = Access(scope, instead, when)  # type: ignore[attr-defined]
        return method

    return mark


def public(elevated: str | None = None) -> Callable[[F], F]:
    """Declares that a view method needs no key (``elevated``: a scope that unlocks more)."""

    def mark(method: F) -> F:
        method.__access__ = Access(None, elevated)  # type: ignore[attr-defined]
        return method

    return mark


def page(app: Any, path: str, keys: ServiceKeys, registry: dict[tuple[str, str], Access]) -> Callable[[type], type]:
    """``app.page(path)`` for a view whose every HTTP method declares its access; a scoped method
    is wrapped so the key is checked before it runs. A method without a declaration stops the
    worker at start."""

    def register(view: type) -> type:
        for name in HTTP_METHODS:
            method = view.__dict__.get(name)
            if method is None:
                continue
            access: Access | None = getattr(method, "__access__", None)
            if access is None:
                raise TypeError(f"{name.upper()} {path}: no @requires(scope) or @public() declared")
            registry[(name.upper(), _PATTERN.sub(r"{\1}", path))] = access
            if access.scope is not None:
                setattr(view, name, _guarded(method, keys, access))
        return app.page(path)(view)  # type: ignore[no-any-return]

    return register


def _guarded(method: Callable[..., Awaitable[web.StreamResponse]], keys: ServiceKeys, access: Access) -> Any:
    async def guarded(self: Any, request: web.Request, *args: Any, **kwargs: Any) -> web.StreamResponse:
        scope = access.needed(request.query)
        assert scope is not None  # a scoped route
        require(request, keys, scope)
        return await method(self, request, *args, **kwargs)

    guarded.__name__ = method.__name__
    guarded.__access__ = method.__access__  # type: ignore[attr-defined]
    return guarded
