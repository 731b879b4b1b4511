"""The web layer's one error type and its rendering.

A view (or anything it calls) ends a request with a 4xx/503 by raising :class:`HttpError`; the
``json_errors`` middleware renders it, like aiohttp's own HTTP errors and anything unexpected, as
``{"error": {"code", "message", "details": [...]}}``: never an HTML page or a bare 500.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

log = logging.getLogger(__name__)

JSON = "application/json"


class HttpError(Exception):
    """Ends a request with a JSON error answer; raised by views, rendered by :func:`json_errors`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.headers = headers or {}

    def response(self) -> web.Response:
        body = {"error": {"code": self.code, "message": self.message, "details": self.details}}
        return json_response(body, status=self.status, headers=self.headers or None)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type=JSON, headers=headers)


def unavailable(message: str, retry_after_s: int = 1) -> HttpError:
    """A 503 with ``Retry-After``: Kafka or the session's partition is not there right now."""
    return HttpError(503, "unavailable", message, headers={"Retry-After": str(retry_after_s)})


_STATUS_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render :class:`HttpError`, aiohttp's own HTTP errors and anything unexpected as JSON."""
    try:
        return await handler(request)
    except HttpError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _STATUS_CODES.get(exc.status, "http_error")
        message = exc.reason if exc.status != 404 else f"no route for {request.method} {request.path}"
        headers = {k: v for k, v in exc.headers.items() if k.lower() in {"allow", "retry-after"}}
        return HttpError(exc.status, code, message, headers=headers).response()
    except Exception:  # the contract is "never a 500 page": log it, answer JSON
        log.exception("unhandled error in %s %s", request.method, request.path)
        return HttpError(500, "internal", "internal error; the request id is in the server log").response()
