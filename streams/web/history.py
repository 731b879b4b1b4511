"""History over HTTP: a session's timeline, and its state at an instant or right after an event.

Both are served by the worker that owns the session's partition (its store locates the events)
and need ``sessions:history``. The fold and the Kafka reads run off the event loop.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING

from aiohttp import web
from faust.web import View

from projections.history import UnknownEvent, state_after, state_at
from schemas.session import SessionState, encode_view
from streams.fold.store import StoreClosed
from streams.history.timeline import HistoryUnavailable, Located, TimelineQueryError, timeline_page, timeline_query
from streams.history.window import ExportError, parse_instant
from streams.web.bodies import session_id_param
from streams.web.errors import JSON, HttpError, json_response, unavailable
from streams.web.routing import forward_if_not_owner
from streams.web.service_auth import SESSIONS_HISTORY, page, requires

if TYPE_CHECKING:
    from streams.control.engine import Engine

PAST_PARAMETERS = ("at", "after")


def register_history_views(engine: Engine) -> None:
    app = engine.app

    @page(app, "/api/v1/sessions/{session_id}/events", engine.service_keys, engine.access)
    class Timeline(View):
        @requires(SESSIONS_HISTORY)
        async def get(self, request: web.Request, session_id: str) -> web.Response:
            session_id_param(session_id)
            try:
                query = timeline_query(request.query)
            except TimelineQueryError as exc:
                raise bad_parameter(exc.parameter, exc.message) from None
            answer = await forward_if_not_owner(engine, session_id, request, b"")
            if answer is not None:
                return answer
            located = await session_events(engine, session_id)
            loop = asyncio.get_running_loop()
            body = await loop.run_in_executor(None, timeline_page, located, engine.fold.rules, query, lifetime(engine))
            return json_response(body)


async def past_state(engine: Engine, session_id: str, request: web.Request) -> web.Response:
    """``GET /api/v1/sessions/{id}?at=`` or ``?after=``, once the caller routed it to the owner."""
    at, after = request.query.get("at"), request.query.get("after")
    if at is not None and after is not None:
        raise bad_parameter("after", "give either at or after, not both")
    instant = None
    if at is not None:
        try:
            instant = parse_instant(at, "at")
        except ExportError as exc:
            raise bad_parameter("at", exc.message) from None
    elif not after:
        raise bad_parameter("after", "an event id is required")
    located = await session_events(engine, session_id)
    events = [item.event for item in located]
    rules = engine.fold.rules
    state: SessionState | None
    if instant is not None:
        state = await asyncio.get_running_loop().run_in_executor(
            None, state_at, events, instant, rules, lifetime(engine)
        )
        if state is None:
            raise HttpError(404, "no_state_at", f"session {session_id} had no event at or before {at}, or had expired")
    else:
        assert after is not None
        try:
            state = await asyncio.get_running_loop().run_in_executor(
                None, state_after, events, after, rules, lifetime(engine)
            )
        except UnknownEvent:
            raise HttpError(404, "event_not_found", f"no event {after[:64]!r} in session {session_id}") from None
        if state is None:
            raise HttpError(404, "no_state_at", f"session {session_id} had no state right after event {after[:64]!r}")
    return web.Response(body=encode_view(state), content_type=JSON)


async def session_events(engine: Engine, session_id: str) -> list[Located]:
    """The session's events (404 when it never had one, 503 when they cannot be read now)."""
    loop = asyncio.get_running_loop()
    try:
        located = await loop.run_in_executor(None, engine.history.events, session_id)
    except StoreClosed:
        raise unavailable("the session's partition is being restored or moving between workers") from None
    except HistoryUnavailable as exc:
        raise unavailable(f"the event log did not answer: {exc}", retry_after_s=2) from None
    if located is None:
        raise HttpError(404, "session_not_found", f"no session {session_id}")
    return located


def lifetime(engine: Engine) -> timedelta | None:
    """Sessions' lifetime, as the fold applies it (a replay meets the same expiries)."""
    milliseconds = engine.fold.config.lifetime_ms
    return timedelta(milliseconds=milliseconds) if milliseconds else None


def bad_parameter(name: str, message: str) -> HttpError:
    return HttpError(400, "invalid_parameter", f"{name}: {message}", details=[{"path": name, "message": message}])
