"""The storefront API, compatible with the VTEX Session Manager: sessions by cookie, segments.

Every change is an event appended to the log; a write answers only once the owning fold loop has
folded it (read-your-writes), so the tokens and documents it returns reflect the write.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web
from faust.web import View

from projections.items import Items, ItemsError, parse_items
from projections.segment import (
    OVERRIDABLE,
    Segment,
    SegmentTokenError,
    decode_segment_token,
    segment_of,
    with_overrides,
)
from streams.web.bodies import parse_json_body, read_body
from streams.web.errors import HttpError
from streams.web.service_auth import page, public
from streams.web.session_changes import RECORDED_COOKIES, PublicChange
from streams.web.session_service import ACCOUNT_PARAM, SessionService

if TYPE_CHECKING:
    from streams.control.engine import Engine


MAX_PUBLIC_KEY = 256
RESERVED_QUERY = frozenset({"items", ACCOUNT_PARAM})


async def _public_from_body(request: web.Request, max_bytes: int) -> tuple[dict[str, Any], bytes]:
    """The body's ``public`` values (other namespaces are ignored, as VTEX does) and the raw body."""
    body = await read_body(request, max_bytes)
    if not body.strip():
        return {}, body
    document = parse_json_body(request.content_type, body)
    if not isinstance(document, dict):
        raise HttpError(400, "invalid_body", "the body must be a JSON object", [{"path": "$"}])
    public = document.get("public")
    if public is None:
        public = {}
    if not isinstance(public, dict):
        raise HttpError(400, "invalid_body", "`public` must be an object", [{"path": "$.public"}])
    values: dict[str, Any] = {}
    details = []
    for key, entry in public.items():
        path = f"$.public.{key}"
        if not 1 <= len(key) <= MAX_PUBLIC_KEY:
            details.append({"path": path, "message": f"a key has 1 to {MAX_PUBLIC_KEY} characters"})
        elif not isinstance(entry, dict) or "value" not in entry:
            details.append({"path": path, "message": 'expected {"value": <any JSON>}'})
        else:
            values[key] = entry["value"]
    if details:
        raise HttpError(400, "invalid_body", "invalid entries in `public`", details)
    return values, body


def _public_from_query(request: web.Request) -> dict[str, Any]:
    # Every query parameter but ``items`` and ``an`` lands in ``public``; a repeated one keeps its
    # last value.
    return {key: value for key, value in request.query.items() if key not in RESERVED_QUERY}


def _items(request: web.Request, required: bool) -> Items | None:
    text = request.query.get("items")
    if text is None:
        if required:
            raise HttpError(
                400,
                "missing_items",
                "name the keys to read: items=namespace.key,... (or namespace.*, or *)",
                [{"path": "items"}],
            )
        return None
    try:
        return parse_items(text)
    except ItemsError as exc:
        raise HttpError(400, "invalid_items", str(exc), [{"path": "items"}]) from None


MAX_RECORDED_COOKIE = 4096  # schemas.events.CookieValue


def _request_cookies(request: web.Request) -> dict[str, str | None]:
    """The recorded cookies as the request carries them (None: absent). One longer than an event
    may record is left out, as if unchanged: the shopper cannot fix their cookie, so it must not
    make every write of theirs a 400."""
    cookies = {name: request.cookies.get(name) for name in RECORDED_COOKIES}
    return {name: value for name, value in cookies.items() if value is None or len(value) <= MAX_RECORDED_COOKIE}


def _segment_overrides(request: web.Request, segment: Segment) -> Segment:
    overrides = {k: v for k, v in request.query.items() if k in OVERRIDABLE}
    return with_overrides(segment, overrides) if overrides else segment


def register_storefront_views(engine: Engine) -> None:
    app = engine.app
    service = SessionService(engine)
    settings = engine.settings

    # Errors are raised as HttpError and rendered by the json_errors middleware (views.py adds it).

    async def write_session(request: web.Request, token: str | None, status: int) -> web.Response:
        items = _items(request, required=False)
        origin = service.origin(request)
        public, body = await _public_from_body(request, settings.max_body_bytes)
        query = _public_from_query(request)
        public.update(query)
        answer = await service.forward_if_not_owner(token, request, body)
        if answer is not None:
            return answer
        change = PublicChange(public, frozenset(query))
        current = service.current(token)
        identity = service.identity_of(request, current, origin)
        state = await service.write(current, change, origin, _request_cookies(request), identity)
        return service.respond(state, items, status)

    async def read_session(request: web.Request, token: str | None) -> web.Response:
        items = _items(request, required=True)
        origin = service.origin(request)
        answer = await service.forward_if_not_owner(token, request, b"")
        if answer is not None:
            return answer
        current = service.current(token)
        if current is not None:
            # A refreshed token for the same session, signed with the current key, as the
            # first Set-Cookie: node-vtex-api's Session.getSession takes it from there.
            return service.respond(current, items, 200)
        # No usable session: mint a fresh one, as VTEX does for an unusable token.
        return service.respond(await service.write(None, origin=origin), items, 200)

    def route(path: str) -> Any:
        # Every method states its access; the storefront's are public (the cookie or token in the
        # path names the session; a session id is a secret like the cookie).
        return page(app, path, engine.service_keys, engine.access)

    @route("/api/sessions")
    class Sessions(View):
        @public()
        async def post(self, request: web.Request) -> web.Response:
            return await write_session(request, request.cookies.get(settings.session_cookie), 201)

        @public()
        async def patch(self, request: web.Request) -> web.Response:
            return await write_session(request, request.cookies.get(settings.session_cookie), 200)

        @public()
        async def get(self, request: web.Request) -> web.Response:
            return await read_session(request, request.cookies.get(settings.session_cookie))

    @route("/api/sessions/{session_token}")
    class SessionByToken(View):
        @public()
        async def post(self, request: web.Request, session_token: str) -> web.Response:
            return await write_session(request, session_token, 201)

        @public()
        async def get(self, request: web.Request, session_token: str) -> web.Response:
            return await read_session(request, session_token)

    @route("/api/segments")
    class Segments(View):
        @public()
        async def get(self, request: web.Request) -> web.Response:
            origin = service.origin(request)
            token = request.cookies.get(settings.session_cookie)
            answer = await service.forward_if_not_owner(token, request, b"")
            if answer is not None:
                return answer
            current = service.current(token)
            if current is not None:
                return service.segment_response(_segment_overrides(request, segment_of(current.namespaces)))
            cookie = request.cookies.get(settings.segment_cookie)
            if cookie:
                try:
                    return service.segment_response(_segment_overrides(request, decode_segment_token(cookie)))
                except SegmentTokenError:
                    pass  # a broken cookie is no segment: the default one
            # No session and no segment: the default segment of the account, and no session is
            # made (node-vtex-api's getOrCreateSegment calls this cookieless on every render).
            return service.segment_response(_segment_overrides(request, service.default_segment(origin)))

    # Any characters, "/" too: node-vtex-api puts the token in the path as it is, and standard
    # base64 may hold "/" (and a bad token, a newline, is a 400 like any other, not a 404).
    @route(r"/api/segments/{segment_token:[\s\S]+}")
    class SegmentByToken(View):
        @public()
        async def get(self, request: web.Request, segment_token: str) -> web.Response:
            service.account(request)  # checked like everywhere, though a token names no account
            try:
                segment = decode_segment_token(segment_token)
            except SegmentTokenError as exc:
                raise HttpError(400, "invalid_segment_token", str(exc), [{"path": "segment_token"}]) from None
            return service.segment_response(_segment_overrides(request, segment), by_token=True)
