"""Request hygiene on the storefront routes: CORS for the storefront's own origins, and rate
limits per client address and per session (429 with ``Retry-After``).

Both are off until configured (``SESSIONS_CORS_ORIGINS``, ``SESSIONS_RATE_LIMITS``). Limits are
per worker (token buckets in memory): a deployment of N workers behind a round-robin load balancer
lets a client through at up to N times the rate. A request another worker forwarded to the owner
was counted where it came in; it carries a proof (an HMAC under the session signing key, which
every worker of a deployment shares) and is not counted twice.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from streams.config.values import Limit
from streams.web.errors import HttpError
from streams.web.routing import FORWARDED

if TYPE_CHECKING:
    from streams.control.engine import Engine

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
STOREFRONT_PREFIXES = ("/api/sessions", "/api/segments", "/api/events")
CORS_METHODS = "GET, POST, PATCH, OPTIONS"
CORS_HEADERS = "Content-Type"
CORS_MAX_AGE_S = 600
MAX_TRACKED = 100_000  # buckets kept per limit; the least recently used go first


def is_storefront(path: str) -> bool:
    return path.startswith(STOREFRONT_PREFIXES)


# --- CORS -------------------------------------------------------------------------------------


def cors_middleware(origins: frozenset[str]) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Lets the listed origins call the storefront routes from a browser, with their cookies."""

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is None or not is_storefront(request.path):
            return await handler(request)
        allowed = origin in origins
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            if not allowed:
                raise HttpError(403, "origin_not_allowed", f"origin {origin[:100]!r} is not in SESSIONS_CORS_ORIGINS")
            return web.Response(
                status=204,
                headers={
                    "Access-Control-Allow-Origin": origin,
                    "Access-Control-Allow-Credentials": "true",
                    "Access-Control-Allow-Methods": CORS_METHODS,
                    "Access-Control-Allow-Headers": CORS_HEADERS,
                    "Access-Control-Max-Age": str(CORS_MAX_AGE_S),
                    "Vary": "Origin",
                },
            )
        try:
            response = await handler(request)
        except HttpError as exc:
            response = exc.response()
        if allowed:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Credentials"] = "true"
            response.headers["Access-Control-Expose-Headers"] = "Retry-After"
        response.headers.add("Vary", "Origin")
        return response

    return cors


# --- rate limits ------------------------------------------------------------------------------


class Buckets:
    """Token buckets by key (pure: the caller passes the time)."""

    def __init__(self, limit: Limit, max_keys: int = MAX_TRACKED) -> None:
        self.limit = limit
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, when)

    def take(self, key: str, now: float) -> float:
        """0 when the request may go; else the seconds until it could."""
        tokens, when = self._buckets.pop(key, (self.limit.burst, now))
        tokens = min(self.limit.burst, tokens + (now - when) * self.limit.rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.limit.rate
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait


def client_address(request: web.Request, proxy_hops: int) -> str:
    """The client's address: the peer's, or with ``proxy_hops`` trusted proxies in front, the
    address the outermost of them saw (X-Forwarded-For, counted from the right: the entries to
    its left are the client's to write)."""
    if proxy_hops > 0:
        hops = [part.strip() for part in request.headers.get("X-Forwarded-For", "").split(",") if part.strip()]
        if len(hops) >= proxy_hops:
            return hops[-proxy_hops]
    return request.remote or ""


def rate_limit_middleware(
    engine: Engine, by_address: Limit | None, by_session: Limit | None, proxy_hops: int
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    addresses = Buckets(by_address) if by_address else None
    sessions = Buckets(by_session) if by_session else None
    settings = engine.settings

    @web.middleware
    async def rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not is_storefront(request.path) or request.method == "OPTIONS" or "Authorization" in request.headers:
            return await handler(request)  # services are trusted by their key (a wrong one is a 401)
        proof = request.headers.get(FORWARDED)
        if proof and engine.tokens.proves(forward_message(request), proof):
            return await handler(request)  # counted by the worker it came in through
        now = time.monotonic()
        waits = []
        if addresses is not None:
            waits.append(addresses.take(client_address(request, proxy_hops), now))
        if sessions is not None:
            token = request.match_info.get("session_token") or request.cookies.get(settings.session_cookie)
            session_id = engine.tokens.session_id(token)
            if session_id is not None:
                waits.append(sessions.take(session_id, now))
        wait = max(waits, default=0.0)
        if wait > 0:
            raise HttpError(
                429, "rate_limited", "too many requests: slow down", headers={"Retry-After": str(math.ceil(wait))}
            )
        return await handler(request)

    return rate_limit


def forward_message(request: web.Request) -> str:
    """What a forwarded request's proof signs: its method and path."""
    return f"{request.method} {request.path}"


def install(engine: Engine) -> None:
    """Adds the configured middlewares (none when neither setting is set)."""
    settings = engine.settings
    middlewares = engine.app.web.web_app.middlewares  # type: ignore[attr-defined]
    if settings.cors_origin_set:
        middlewares.append(cors_middleware(settings.cors_origin_set))
    by_address, by_session = settings.rate_limit_pair
    if by_address or by_session:
        middlewares.append(rate_limit_middleware(engine, by_address, by_session, settings.trusted_proxy_hops))
