"""Request bodies: read up to a size limit, parse as JSON, refuse what nests too deep.

Each function returns what it read or raises :class:`~streams.web.errors.HttpError` (413, 415 or
400) that says why not.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from aiohttp import web

from schemas.events import SESSION_ID_PATTERN
from streams.web.errors import HttpError

JSON_TYPES = frozenset({"application/json", "application/cloudevents+json", "application/cloudevents-batch+json"})
# orjson reads 1024 levels but writes only 255, and msgspec stops encoding near the recursion
# limit: a value nested deeper was stored, then failed every response (a 500). Refuse it up front.
MAX_JSON_DEPTH = 128


_SESSION_ID = re.compile(SESSION_ID_PATTERN)


def session_id_param(session_id: str) -> str:
    """A session id from a path; a 400 naming it when it is not one."""
    if not _SESSION_ID.match(session_id):
        raise HttpError(
            400,
            "invalid_session_id",
            "a session id is a lowercase canonical UUID",
            details=[{"path": "session_id", "message": f"not a session id: {session_id[:64]!r}"}],
        )
    return session_id


def parse_json_body(content_type: str, body: bytes) -> Any:
    """The JSON document of a body already read (and size-checked); raises the 4xx that explains why not."""
    if content_type not in JSON_TYPES:
        raise HttpError(
            415, "unsupported_media_type", f"send JSON (Content-Type: application/json), got {content_type!r}"
        )
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HttpError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None
    if json_depth(document) > MAX_JSON_DEPTH:
        raise HttpError(400, "too_deep", f"the JSON nests arrays and objects over {MAX_JSON_DEPTH} levels")
    return document


def json_depth(document: Any) -> int:
    """How many arrays and objects deep the document goes (stops counting past the limit)."""
    deepest, pending = 0, [(document, 1)]
    while pending and deepest <= MAX_JSON_DEPTH:
        value, level = pending.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
        if children is not None:
            deepest = max(deepest, level)
            pending.extend((child, level + 1) for child in children)
    return deepest


async def read_body(request: web.Request, max_bytes: int) -> bytes:
    """The raw body; raises a 413 when it is over ``max_bytes`` (read no further than that)."""
    too_large = HttpError(413, "payload_too_large", f"the body is over the limit of {max_bytes} bytes")
    if request.content_length is not None and request.content_length > max_bytes:
        raise too_large
    # ``read(n)`` answers with what has arrived so far (up to n bytes), not n bytes: a body larger
    # than one network read came back cut short and failed as malformed JSON. Read to the end.
    body = bytearray()
    while len(body) <= max_bytes:
        chunk = await request.content.read(max_bytes + 1 - len(body))
        if not chunk:
            break
        body += chunk
    if len(body) > max_bytes:
        raise too_large
    return bytes(body)


async def read_json_body(request: web.Request, max_bytes: int) -> Any:
    """The request's JSON document; the media type is checked before anything is read."""
    if request.content_type not in JSON_TYPES:
        return parse_json_body(request.content_type, b"")
    return parse_json_body(request.content_type, await read_body(request, max_bytes))
