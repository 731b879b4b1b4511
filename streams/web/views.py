"""HTTP views: the event intake, the service read of a session, health and readiness.

A read for session S goes to the worker that owns S's partition (faust ``table_route``), so the
answer comes from the table the agent writes.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web
from faust.web import View
from faust.web.exceptions import ServiceUnavailable

from schemas.events import (
    SESSION_ID_PATTERN,
    STOREFRONT_EVENT_TYPES,
    EventDecodeError,
    encode_event,
    event_from_object,
)
from schemas.session import decode_state, encode_view
from streams.kafka.producer import ProduceFailed, Record
from streams.web.errors import JSON, error_response, json_errors, json_response, unavailable
from streams.web.service_auth import scopes_of

if TYPE_CHECKING:
    from streams.app import Engine

_SESSION_ID = re.compile(SESSION_ID_PATTERN)
_JSON_TYPES = {"application/json", "application/cloudevents+json", "application/cloudevents-batch+json"}
DEFAULT_SOURCE = "/api/events"
# orjson reads 1024 levels but writes only 255, and msgspec stops encoding near the recursion
# limit: a value nested deeper was stored, then failed every response (a 500). Refuse it up front.
MAX_JSON_DEPTH = 128


def _complete_envelope(item: dict[str, Any], now: str) -> dict[str, Any]:
    """The API records what the emitter may leave out: an id, the time, the spec version, a source."""
    if "id" not in item:
        item["id"] = str(uuid.uuid4())
    if "time" not in item:
        item["time"] = now
    item.setdefault("specversion", "1.0")
    item.setdefault("source", DEFAULT_SOURCE)
    return item


def parse_json_body(content_type: str, body: bytes) -> tuple[Any, web.Response | None]:
    """The JSON document of a body already read (and size-checked), or the 4xx that explains why not."""
    if content_type not in _JSON_TYPES:
        return None, error_response(
            415, "unsupported_media_type", f"send JSON (Content-Type: application/json), got {content_type!r}"
        )
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return None, error_response(400, "malformed_json", f"the body is not valid JSON: {exc}")
    if _nesting(document) > MAX_JSON_DEPTH:
        return None, error_response(400, "too_deep", f"the JSON nests arrays and objects over {MAX_JSON_DEPTH} levels")
    return document, None


def _nesting(document: Any) -> int:
    """How many arrays and objects deep the document goes (stops counting past the limit)."""
    deepest, pending = 0, [(document, 1)]
    while pending and deepest <= MAX_JSON_DEPTH:
        value, level = pending.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
        if children is not None:
            deepest = max(deepest, level)
            pending.extend((child, level + 1) for child in children)
    return deepest


async def read_body(request: web.Request, max_bytes: int) -> tuple[bytes, web.Response | None]:
    """The raw body, or a 413 when it is over ``max_bytes`` (read no further than that)."""
    too_large = error_response(413, "payload_too_large", f"the body is over the limit of {max_bytes} bytes")
    if request.content_length is not None and request.content_length > max_bytes:
        return b"", too_large
    # ``read(n)`` answers with what has arrived so far (up to n bytes), not n bytes: a body larger
    # than one network read came back cut short and failed as malformed JSON. Read to the end.
    body = bytearray()
    while len(body) <= max_bytes:
        chunk = await request.content.read(max_bytes + 1 - len(body))
        if not chunk:
            break
        body += chunk
    return (b"", too_large) if len(body) > max_bytes else (bytes(body), None)


async def read_json_body(request: web.Request, max_bytes: int) -> tuple[Any, web.Response | None]:
    if request.content_type not in _JSON_TYPES:
        return parse_json_body(request.content_type, b"")
    body, problem = await read_body(request, max_bytes)
    if problem is not None:
        return None, problem
    return parse_json_body(request.content_type, body)


def register_views(engine: Engine) -> None:
    app = engine.app
    settings = engine.settings
    sessions = engine.sessions
    app.web.web_app.middlewares.append(json_errors)

    # The API's OpenAPI document, kept beside this module: parsed once here (a broken file stops
    # the worker at start, not a request), served as compact bytes.
    openapi_document = orjson.dumps(orjson.loads(Path(__file__).with_name("openapi.json").read_bytes()))

    @app.page("/openapi.json")
    class OpenAPI(View):
        async def get(self, request: web.Request) -> web.Response:
            return web.Response(body=openapi_document, content_type=JSON)

    @app.page("/healthz")
    class Health(View):
        async def get(self, request: web.Request) -> web.Response:
            return json_response({"status": "ok"})

    @app.page("/readyz")
    class Ready(View):
        async def get(self, request: web.Request) -> web.Response:
            if engine.is_ready():
                return json_response({"status": "ready"})
            return unavailable("partitions are being assigned or tables recovered")

    @app.page("/api/events")
    class Events(View):
        async def post(self, request: web.Request) -> web.Response:
            payload, problem = await read_json_body(request, settings.max_body_bytes)
            if problem is not None:
                return problem
            items = payload if isinstance(payload, list) else [payload]
            if not items:
                return error_response(400, "empty_batch", "the array holds no events")
            if len(items) > settings.max_batch_events:
                return error_response(
                    413,
                    "batch_too_large",
                    f"{len(items)} events in one request; the limit is {settings.max_batch_events}",
                )
            now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
            trusted = "events:trusted" in scopes_of(request, engine.service_keys)
            cookie_session = engine.tokens.session_id(request.cookies.get(settings.session_cookie))
            records: list[Record] = []
            ids: list[str] = []
            details: list[dict[str, Any]] = []
            forbidden: list[dict[str, Any]] = []
            oversized: list[dict[str, Any]] = []
            for index, item in enumerate(items):
                if not isinstance(item, dict):
                    details.append({"index": index, "path": "$", "message": "an event must be a JSON object"})
                    continue
                if "subject" not in item and cookie_session is not None:
                    item["subject"] = cookie_session  # a storefront posting for its own session
                try:
                    event = event_from_object(_complete_envelope(item, now))
                except EventDecodeError as exc:
                    details.append({"index": index, "path": exc.path, "message": exc.message})
                    continue
                event_type = item["type"]
                if event_type not in STOREFRONT_EVENT_TYPES and not trusted:
                    forbidden.append(
                        {"index": index, "path": "$.type", "message": f"{event_type} needs a trusted service key"}
                    )
                    continue
                encoded = encode_event(event)
                if len(encoded) > settings.max_event_bytes:
                    oversized.append(
                        {"index": index, "path": "$", "message": f"the event is over {settings.max_event_bytes} bytes"}
                    )
                    continue
                records.append(Record(key=event.subject.encode(), value=encoded))
                ids.append(event.id)
            if oversized and not details and not forbidden:
                return error_response(
                    413, "event_too_large", "an event is over the size limit; none was accepted", details=oversized
                )
            details += oversized
            if forbidden and not details:
                return error_response(
                    403,
                    "forbidden_event_type",
                    "storefronts may send navigation.* events; other types need a bearer key with events:trusted",
                    details=forbidden,
                )
            if details or forbidden:
                details = sorted(details + forbidden, key=lambda d: d["index"])
                # All or nothing: a batch with one bad event appends none of them.
                return error_response(
                    400,
                    "invalid_event",
                    f"{len(details)} of {len(items)} events are invalid; none was accepted",
                    details=details,
                )
            try:
                await engine.producer.send(records)
            except ProduceFailed as exc:
                return unavailable(f"the event log is unavailable: {exc}", retry_after_s=2)
            return json_response({"accepted": len(records), "ids": ids}, status=202)

    @app.page("/api/v1/sessions/{session_id}")
    class Session(View):
        async def get(self, request: web.Request, session_id: str) -> web.Response:
            if not _SESSION_ID.match(session_id):
                return error_response(
                    400,
                    "invalid_session_id",
                    "a session id is a lowercase canonical UUID",
                    details=[{"path": "session_id", "message": f"not a session id: {session_id[:64]!r}"}],
                )
            try:
                return await self.routed_get(request, session_id=session_id)
            except ServiceUnavailable:
                return unavailable("the partition owning this session is being reassigned")

        @app.table_route(table=sessions, match_info="session_id")
        async def routed_get(self, request: web.Request, session_id: str) -> web.Response:
            raw = sessions.get(session_id.encode())
            if raw is None:
                return error_response(404, "session_not_found", f"no session {session_id}")
            return web.Response(body=encode_view(decode_state(raw)), content_type=JSON)
