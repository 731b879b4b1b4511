"""The session explorer: its static page at ``/`` and the service endpoints only it needed.

- ``GET /``, ``/explorer/app.js``, ``/explorer/app.css``: public; the files in ``explorer/`` beside
  this module (vanilla JS, no build step, nothing loaded from the network). The page asks for a
  service key, keeps it in the browser's session storage and sends it as a bearer key; it shows the
  documents exactly as the API serves them to that key.
- ``GET /api/v1/sessions`` (``sessions:read``): recently active sessions, gathered from every
  worker of the group (each keeps its last few hundred in memory, ``streams.observability.activity``).
- ``GET /api/v1/sessions/{id}/segment`` (``sessions:read``): the segment the session maps to.
- ``GET /api/v1/operations`` (``operations:read``): events folded and dead letters per second,
  lag per partition, and the workers with the partitions each owns, gathered from every worker.

A worker asks the others with the caller's ``Authorization`` and ``X-Session-Engine-Forwarded``;
a worker asked so answers for itself only. One that does not answer is listed as unreachable.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from faust.web import View
from yarl import URL

from projections.segment import encode_segment_token, segment_of
from schemas.session import decode_state
from streams.web.bodies import session_id_param
from streams.web.errors import json_response
from streams.web.history import bad_parameter
from streams.web.routing import FORWARDED, forward_if_not_owner, read_owned
from streams.web.service_auth import OPERATIONS_READ, SESSIONS_READ, page, public, requires

if TYPE_CHECKING:
    from streams.control.engine import Engine

STATIC = Path(__file__).with_name("explorer")
FILES = {"/": "index.html", "/explorer/app.js": "app.js", "/explorer/app.css": "app.css"}
CONTENT_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
# The page loads only its own files and talks only to this origin.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
PEER_TIMEOUT_S = 3.0
MAX_RECENT = 200
MAX_SECONDS = 300


def _int_parameter(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise bad_parameter(name, "an integer is expected") from None
    if not low <= value <= high:
        raise bad_parameter(name, f"between {low} and {high}")
    return value


def _workers(engine: Engine) -> dict[str, list[int]]:
    """Every worker of the group (its URL) -> the event partitions it owns, as the assignor says."""
    distribution = engine.app.assignor.external_topic_distribution  # type: ignore[attr-defined]
    topic = engine.settings.events_topic
    return {str(url): sorted(topics.get(topic, ())) for url, topics in distribution.items()}


def _self_url(engine: Engine) -> str:
    return str(engine.app.conf.canonical_url)


def _same(a: str, b: str) -> bool:
    ua, ub = URL(a), URL(b)
    return (ua.host, ua.port) == (ub.host, ub.port)


Part = dict[str, Any]


async def _gather(engine: Engine, request: web.Request, local: Part) -> tuple[list[Part], list[str]]:
    """This worker's part plus every other worker's (asked for its own part only); the URLs of
    those that did not answer."""
    me = _self_url(engine)
    peers = [url for url in _workers(engine) if not _same(url, me)]
    # Marked as forwarded (with the deployment's proof, as routing does): the peer answers for itself.
    headers = {FORWARDED: engine.tokens.proof(f"GET {request.path}")}
    if "Authorization" in request.headers:
        headers["Authorization"] = request.headers["Authorization"]
    timeout = aiohttp.ClientTimeout(total=PEER_TIMEOUT_S)

    async def ask(url: str) -> dict[str, Any] | None:
        target = URL(url).with_path(request.path).with_query(request.query)
        try:
            async with engine.app.http_client.get(target, headers=headers, timeout=timeout) as answer:
                if answer.status != 200:
                    return None
                part: dict[str, Any] = await answer.json()
                return part
        except (TimeoutError, aiohttp.ClientError, ValueError):
            return None

    answers = await asyncio.gather(*(ask(url) for url in peers))
    parts = [local] + [a for a in answers if a is not None]
    unreachable = [url for url, a in zip(peers, answers, strict=True) if a is None]
    return parts, unreachable


def _local_operations(engine: Engine, seconds: int) -> dict[str, Any]:
    fold = engine.fold
    serving = fold.serving
    return {
        "url": _self_url(engine),
        "partitions": sorted(serving),
        "standbys": sorted(fold.standby),
        "restoring": sorted(fold.restoring),
        "lag": {str(p): n for p, n in sorted(fold.lag().items()) if p in serving},
        "ready": engine.is_ready(),
        **engine.activity.series(seconds),
    }


def _merge_operations(parts: list[dict[str, Any]], unreachable: list[str], seconds: int) -> dict[str, Any]:
    end = max(int(p["start"]) + len(p["folded"]) - 1 for p in parts)
    start = end - seconds + 1
    folded = [0] * seconds
    dead = [0] * seconds
    lag: dict[str, int] = {}
    totals = {"folded": 0, "deadLetters": 0}
    for part in parts:
        for offset, (f, d) in enumerate(zip(part["folded"], part["deadLetters"], strict=True)):
            index = int(part["start"]) + offset - start
            if 0 <= index < seconds:
                folded[index] += f
                dead[index] += d
        lag.update(part["lag"])
        for name in totals:
            totals[name] += int(part["totals"][name])
    workers = [{**part, "reachable": True} for part in parts]
    workers += [{"url": url, "reachable": False} for url in unreachable]
    return {
        "start": start,
        "folded": folded,
        "deadLetters": dead,
        "totals": totals,
        "lag": dict(sorted(lag.items(), key=lambda item: int(item[0]))),
        "workers": workers,
    }


def register_explorer_views(engine: Engine) -> None:
    app = engine.app

    def route(path: str) -> Any:
        return page(app, path, engine.service_keys, engine.access)

    # The page's files, read once at start (a missing file stops the worker at start).
    files = {path: (STATIC / name).read_bytes() for path, name in FILES.items()}

    def static(path: str) -> web.Response:
        suffix = Path(FILES[path]).suffix
        response = web.Response(body=files[path], headers=SECURITY_HEADERS)
        response.content_type = CONTENT_TYPES[suffix]
        response.charset = "utf-8"
        return response

    @route("/")
    class Explorer(View):
        @public()
        async def get(self, request: web.Request) -> web.Response:
            return static("/")

    @route("/explorer/app.js")
    class ExplorerScript(View):
        @public()
        async def get(self, request: web.Request) -> web.Response:
            return static("/explorer/app.js")

    @route("/explorer/app.css")
    class ExplorerStyle(View):
        @public()
        async def get(self, request: web.Request) -> web.Response:
            return static("/explorer/app.css")

    @route("/api/v1/sessions")
    class RecentSessions(View):
        @requires(SESSIONS_READ)
        async def get(self, request: web.Request) -> web.Response:
            limit = _int_parameter(request, "limit", 50, 1, MAX_RECENT)
            serving = engine.fold.serving  # a session of a partition that moved away is not listed
            local = {"sessions": [s for s in engine.activity.recent(MAX_RECENT) if s["partition"] in serving]}
            if request.headers.get(FORWARDED):
                return json_response(local)
            parts, unreachable = await _gather(engine, request, local)
            sessions = sorted(
                (s for part in parts for s in part["sessions"]), key=lambda s: s["lastFoldedAt"], reverse=True
            )
            return json_response({"sessions": sessions[:limit], "unreachable": unreachable})

    @route("/api/v1/sessions/{session_id}/segment")
    class SessionSegment(View):
        @requires(SESSIONS_READ)
        async def get(self, request: web.Request, session_id: str) -> web.Response:
            session_id_param(session_id)
            answer = await forward_if_not_owner(engine, session_id, request, b"")
            if answer is not None:
                return answer
            segment = segment_of(decode_state(read_owned(engine, session_id)).namespaces)
            return json_response({"segment": segment, "segmentToken": encode_segment_token(segment)})

    @route("/api/v1/operations")
    class Operations(View):
        @requires(OPERATIONS_READ)
        async def get(self, request: web.Request) -> web.Response:
            seconds = _int_parameter(request, "seconds", MAX_SECONDS, 1, MAX_SECONDS)
            local = _local_operations(engine, seconds)
            if request.headers.get(FORWARDED):
                return json_response(local)
            parts, unreachable = await _gather(engine, request, local)
            return json_response(_merge_operations(parts, unreachable, seconds))
