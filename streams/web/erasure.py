"""Erasure (right to be forgotten): ``DELETE /api/v1/sessions/{id}`` and ``DELETE /api/v1/people``.

Erasing a session appends ``session.erased`` (the fold deletes the session, with a changelog
tombstone, and every replay or rebuild ends it there too) and destroys its data keys (tombstones
in the keys' topic; every worker drops them from memory), so the personal values of its events,
anywhere in Kafka, no longer open for anyone. Event metadata and URLs are not erased (docs/security.md).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aiohttp import web
from faust.web import View

from schemas.events import SessionErased
from schemas.personal import normalize
from streams.fold.store import StoreClosed
from streams.kafka.producer import event_record
from streams.privacy.keyring import KeyRing, KeysUnavailable
from streams.web.appending import EventLog
from streams.web.errors import HttpError, json_response, unavailable
from streams.web.service_auth import SESSIONS_ERASE, page, requires
from streams.web.session_changes import new_event

if TYPE_CHECKING:
    from streams.control.engine import Engine

SOURCE = "/api/v1/sessions"
IDENTIFIER_KINDS = ("email", "userId")


def _erased_event(session_id: str) -> SessionErased:
    event = new_event("session.erased", session_id, {}, SOURCE)
    assert isinstance(event, SessionErased)
    return event


def _keys(engine: Engine) -> KeyRing:
    if engine.keys is None:  # a worker always has one; this is for a miswired test
        raise unavailable("this worker keeps no session keys")
    return engine.keys


async def _destroy_keys(engine: Engine, session_ids: list[str]) -> int:
    keys = _keys(engine)
    loop = asyncio.get_running_loop()
    try:
        destroyed = 0
        for session_id in session_ids:
            destroyed += await loop.run_in_executor(None, keys.erase, session_id)
        return destroyed
    except KeysUnavailable as exc:
        # The session.erased events are appended (the sessions are or will be deleted); the keys
        # are not all destroyed yet. The same DELETE again finishes it.
        raise unavailable(f"the data keys were not all destroyed, retry the request: {exc}", retry_after_s=2) from None


def _had_session(engine: Engine, session_id: str) -> bool:
    """The session has events (live, expired or erased) or data keys: something to erase."""
    keys = _keys(engine)
    try:
        located = bool(engine.fold.locate(session_id.encode()))
    except StoreClosed:
        raise unavailable("the session's partition is being restored or moving between workers") from None
    return located or keys.current(session_id) is not None


async def erase_session(engine: Engine, session_id: str) -> dict[str, Any]:
    """On the owner: append the erasure, destroy the keys, wait (bounded) for the fold."""
    if not _had_session(engine, session_id):
        raise HttpError(404, "session_not_found", f"no session {session_id}")
    event = _erased_event(session_id)
    pending = await EventLog.of(engine).append_expecting([event_record(event)], event.id)
    try:
        destroyed = await _destroy_keys(engine, [session_id])
    except BaseException:
        pending.forget()
        raise
    folded = await pending.folded()
    return {"id": session_id, "erasedEventId": event.id, "dataKeysDestroyed": destroyed, "deleted": folded is not None}


async def erase_person(engine: Engine, kind: str, value: str) -> dict[str, Any]:
    """Every session the people index holds for the identifier: erased, not waited for."""
    keys = _keys(engine)
    loop = asyncio.get_running_loop()
    try:
        sessions = sorted(await loop.run_in_executor(None, keys.sessions_of, kind, normalize(kind, value)))
    except KeysUnavailable as exc:
        raise unavailable(f"the people index cannot be read: {exc}", retry_after_s=2) from None
    if not sessions:
        raise HttpError(404, "person_not_found", f"no session recorded this {kind}")
    events = [_erased_event(session_id) for session_id in sessions]
    await EventLog.of(engine).append([event_record(event) for event in events])
    destroyed = await _destroy_keys(engine, sessions)
    return {"sessions": sessions, "dataKeysDestroyed": destroyed}


def register_erasure_views(engine: Engine) -> None:
    @page(engine.app, "/api/v1/people", engine.service_keys, engine.access)
    class People(View):
        @requires(SESSIONS_ERASE)
        async def delete(self, request: web.Request) -> web.Response:
            given = [kind for kind in IDENTIFIER_KINDS if request.query.get(kind)]
            if len(given) != 1:
                raise HttpError(
                    400,
                    "invalid_parameter",
                    "give exactly one of email, userId",
                    details=[{"path": "email", "message": "give exactly one of email, userId"}],
                )
            kind = given[0]
            value = request.query[kind]
            if len(value) > 254:
                raise HttpError(400, "invalid_parameter", f"{kind}: at most 254 characters", [{"path": kind}])
            return json_response(await erase_person(engine, kind, value), status=202)


async def delete_session(engine: Engine, session_id: str) -> web.Response:
    """``DELETE /api/v1/sessions/{id}``, once the caller routed it to the owner."""
    return json_response(await erase_session(engine, session_id), status=202)
