"""``/metrics`` (the Prometheus text format, public like ``/healthz``) and the middleware that
counts every HTTP request by its route template, never its raw path (which holds session ids and
tokens)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Middleware
from faust.web import View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.observability.metrics import UNMATCHED, Metrics
from streams.web.errors import Handler
from streams.web.service_auth import page, public

if TYPE_CHECKING:
    from streams.control.engine import Engine


def route_of(request: web.Request) -> str:
    """The template of the route that matched (``/api/v1/sessions/{session_id}``), or ``unmatched``."""
    match_info = request.match_info
    route = getattr(match_info, "route", None)
    resource = getattr(route, "resource", None)
    if resource is None:
        return UNMATCHED
    canonical: str = resource.canonical
    return canonical


def metrics_middleware(metrics: Metrics) -> Middleware:
    @web.middleware
    async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:  # aiohttp's own (a redirect; errors become JSON inside)
            status = exc.status
            raise
        finally:
            metrics.request(route_of(request), request.method, status, time.perf_counter() - started)

    return count_requests


def register_metrics(engine: Engine) -> None:
    """The middleware goes first (outermost): it sees the status the client gets."""
    metrics = engine.metrics
    metrics.watch_fold(engine.fold)
    keys = engine.keys
    if keys is not None:
        metrics.watch_keys(lambda: keys.sessions_with_keys)
    engine.app.web.web_app.middlewares.insert(0, metrics_middleware(metrics))  # type: ignore[attr-defined]

    @page(engine.app, "/metrics", engine.service_keys, engine.access)
    class MetricsPage(View):
        @public()
        async def get(self, request: web.Request) -> web.Response:
            body = generate_latest(metrics.registry)
            response = web.Response(body=body)
            response.headers["Content-Type"] = CONTENT_TYPE_LATEST
            return response
