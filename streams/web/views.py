"""HTTP views: the event intake, the service read of a session, health and readiness.

A read for session S goes to the worker that owns S's partition (``routing.forward_if_not_owner``),
so the answer comes from the store the fold loop writes. Errors are raised as ``HttpError`` and
rendered by the ``json_errors`` middleware.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web
from faust.web import View

from projections.session import rfc3339
from schemas.events import (
    STOREFRONT_EVENT_TYPES,
    EventDecodeError,
    encode_event,
    event_from_object,
    too_far_ahead,
)
from schemas.session import decode_state, encode_view
from streams.fold.store import StoreClosed
from streams.kafka.producer import Record, time_ms
from streams.web.appending import EventLog
from streams.web.bodies import read_json_body, session_id_param
from streams.web.erasure import delete_session
from streams.web.errors import JSON, HttpError, json_errors, json_response, unavailable
from streams.web.history import PAST_PARAMETERS, past_state
from streams.web.routing import forward_if_not_owner, read_owned
from streams.web.service_auth import (
    EVENTS_TRUSTED,
    SESSIONS_ERASE,
    SESSIONS_HISTORY,
    SESSIONS_READ,
    authenticate,
    page,
    public,
    requires,
)

if TYPE_CHECKING:
    from streams.control.engine import Engine

DEFAULT_SOURCE = "/api/events"


def _complete_envelope(item: dict[str, Any], now: str) -> dict[str, Any]:
    """The API records what the emitter may leave out: an id, the time, the spec version, a source."""
    if "id" not in item:
        item["id"] = str(uuid.uuid4())
    if "time" not in item:
        item["time"] = now
    item.setdefault("specversion", "1.0")
    item.setdefault("source", DEFAULT_SOURCE)
    return item


@dataclass
class _Batch:
    """The events of one POST /api/events, checked: what to append, or every reason not to."""

    records: list[Record] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    # (kind, detail): kind "invalid", "forbidden" (needs a trusted key), "foreign" (a storefront
    # posting for a session that is not its cookie's) or "oversized".
    problems: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def refusal(self, count: int) -> HttpError:
        kinds = {kind for kind, _ in self.problems}
        details = [detail for _, detail in sorted(self.problems, key=lambda p: p[1]["index"])]
        if kinds == {"oversized"}:
            return HttpError(
                413, "event_too_large", "an event is over the size limit; none was accepted", details=details
            )
        if kinds and kinds <= {"forbidden", "foreign"} and "foreign" in kinds:
            return HttpError(
                403,
                "forbidden_subject",
                "with a session cookie and no service key, events may name only the cookie's session",
                details=details,
            )
        if kinds == {"forbidden"}:
            return HttpError(
                403,
                "forbidden_event_type",
                "storefronts may send only storefront event types; others need a bearer key with events:trusted",
                details=details,
            )
        return HttpError(
            400, "invalid_event", f"{len(details)} of {count} events are invalid; none was accepted", details=details
        )


def _check_batch(
    items: list[Any],
    now: datetime,
    trusted: bool,
    cookie_session: str | None,
    bound: bool,
    max_event_bytes: int,
    max_skew_s: float,
) -> _Batch:
    """``bound``: the events may name only ``cookie_session`` (a storefront with a cookie)."""
    batch = _Batch()
    now_text, now_ms = rfc3339(now), int(now.timestamp() * 1000)
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            batch.problems.append(
                ("invalid", {"index": index, "path": "$", "message": "an event must be a JSON object"})
            )
            continue
        if "subject" not in item and cookie_session is not None:
            item["subject"] = cookie_session  # a storefront posting for its own session
        try:
            event = event_from_object(_complete_envelope(item, now_text))
        except EventDecodeError as exc:
            batch.problems.append(("invalid", {"index": index, "path": exc.path, "message": exc.message}))
            continue
        ahead = too_far_ahead(event.time, now_ms, int(max_skew_s * 1000), "the server's clock")
        if ahead:
            batch.problems.append(("invalid", {"index": index, "path": "$.time", "message": ahead}))
            continue
        if item["type"] == "session.erased":
            message = (
                "a session is erased by DELETE /api/v1/sessions/{id} (sessions:erase), which also destroys its keys"
            )
            batch.problems.append(("forbidden", {"index": index, "path": "$.type", "message": message}))
            continue
        if item["type"] not in STOREFRONT_EVENT_TYPES and not trusted:
            message = f"{item['type']} needs a trusted service key"
            batch.problems.append(("forbidden", {"index": index, "path": "$.type", "message": message}))
            continue
        if bound and event.subject != cookie_session:
            message = "the subject is not the session of the request's cookie"
            batch.problems.append(("foreign", {"index": index, "path": "$.subject", "message": message}))
            continue
        encoded = encode_event(event)
        if len(encoded) > max_event_bytes:
            message = f"the event is over {max_event_bytes} bytes"
            batch.problems.append(("oversized", {"index": index, "path": "$", "message": message}))
            continue
        batch.records.append(Record(key=event.subject.encode(), value=encoded, timestamp_ms=time_ms(event.time)))
        batch.ids.append(event.id)
    return batch


# A service read may take a standby's copy (this worker's, when it keeps one of the session's
# partition) instead of going to the owner; the answer says how stale that copy may be.
ALLOW_STALE = "X-Session-Allow-Stale"
STALENESS = "X-Session-Staleness-Ms"


def _standby_answer(engine: Engine, session_id: str) -> web.Response | None:
    """The session from this worker's standby copy; None when it keeps none (ask the owner)."""
    try:
        raw, staleness_ms = engine.fold.read_standby(session_id.encode())
    except StoreClosed:
        return None
    if raw is None:
        raise HttpError(
            404, "session_not_found", f"no session {session_id} (standby copy)", headers={STALENESS: str(staleness_ms)}
        )
    return web.Response(body=encode_view(decode_state(raw)), content_type=JSON, headers={STALENESS: str(staleness_ms)})


def register_views(engine: Engine) -> None:
    app = engine.app
    settings = engine.settings
    event_log = EventLog.of(engine)
    app.web.web_app.middlewares.append(json_errors)

    # The API's OpenAPI document, kept beside this module: parsed once here (a broken file stops
    # the worker at start, not a request), served as compact bytes.
    openapi_document = orjson.dumps(orjson.loads(Path(__file__).with_name("openapi.json").read_bytes()))

    def route(path: str) -> Any:
        # Every method states its access (requires/public); see streams.web.service_auth.
        return page(app, path, engine.service_keys, engine.access)

    @route("/openapi.json")
    class OpenAPI(View):
        @public()
        async def get(self, request: web.Request) -> web.Response:
            return web.Response(body=openapi_document, content_type=JSON)

    @route("/healthz")
    class Health(View):
        @public()
        async def get(self, request: web.Request) -> web.Response:
            return json_response({"status": "ok"})

    @route("/readyz")
    class Ready(View):
        @public()
        async def get(self, request: web.Request) -> web.Response:
            if engine.is_ready():
                return json_response({"status": "ready"})
            if engine.fold.out_of_space:
                raise unavailable("the data folder is full: folding is paused until there is room")
            raise unavailable("partitions are being assigned or tables recovered")

    @route("/api/events")
    class Events(View):
        # Storefronts post storefront event types for their own session without a key; the
        # other types need a key with events:trusted. A key that is sent must be known (401).
        @public(elevated=EVENTS_TRUSTED)
        async def post(self, request: web.Request) -> web.Response:
            scopes = authenticate(request, engine.service_keys)
            payload = await read_json_body(request, settings.max_body_bytes)
            items = payload if isinstance(payload, list) else [payload]
            if not items:
                raise HttpError(400, "empty_batch", "the array holds no events")
            if len(items) > settings.max_batch_events:
                raise HttpError(
                    413,
                    "batch_too_large",
                    f"{len(items)} events in one request; the limit is {settings.max_batch_events}",
                )
            cookie_session = engine.tokens.session_id(request.cookies.get(settings.session_cookie))
            batch = _check_batch(
                items,
                now=datetime.now(UTC),
                trusted=scopes is not None and EVENTS_TRUSTED in scopes,
                cookie_session=cookie_session,
                bound=scopes is None and cookie_session is not None,
                max_event_bytes=settings.max_event_bytes,
                max_skew_s=settings.max_clock_skew_s,
            )
            if batch.problems:
                # All or nothing: a batch with one bad event appends none of them.
                raise batch.refusal(len(items))
            await event_log.append(batch.records)
            return json_response({"accepted": len(batch.records), "ids": batch.ids}, status=202)

    @route("/api/v1/sessions/{session_id}")
    class Session(View):
        # ?at= and ?after= read the session's past: sessions:history instead of sessions:read.
        @requires(SESSIONS_READ, instead=SESSIONS_HISTORY, when=PAST_PARAMETERS)
        async def get(self, request: web.Request, session_id: str) -> web.Response:
            session_id_param(session_id)
            past = any(name in request.query for name in PAST_PARAMETERS)
            allow_stale = not past and request.headers.get(ALLOW_STALE, "").lower() == "true"
            if allow_stale:
                stale = _standby_answer(engine, session_id)
                if stale is not None:
                    return stale
            answer = await forward_if_not_owner(engine, session_id, request, b"")
            if answer is not None:
                return answer
            if past:
                return await past_state(engine, session_id, request)
            raw = read_owned(engine, session_id)
            fresh = {STALENESS: "0"} if allow_stale else None  # the owner's copy is the current one
            return web.Response(body=encode_view(decode_state(raw)), content_type=JSON, headers=fresh)

        # Erasure (streams.web.erasure): 202 once the data keys are destroyed.
        @requires(SESSIONS_ERASE)
        async def delete(self, request: web.Request, session_id: str) -> web.Response:
            session_id_param(session_id)
            answer = await forward_if_not_owner(engine, session_id, request, b"")
            if answer is not None:
                return answer
            return await delete_session(engine, session_id)
