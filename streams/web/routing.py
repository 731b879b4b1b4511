"""Send a request about session S to the worker that owns S's partition.

faust's ``table_route`` forwards neither the body nor the response headers (cookies), so the
storefront writes route here: the owner answers, this worker relays the answer as it is. A view
calls ``answer = await forward_if_not_owner(...)`` and returns ``answer`` when it is not None.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import ClientError, ClientTimeout, web
from yarl import URL

from streams.fold.store import StoreClosed
from streams.web.errors import HttpError, unavailable
from streams.web.metrics import route_of

if TYPE_CHECKING:
    from streams.control.engine import Engine

FORWARDED = "X-Session-Engine-Forwarded"
_HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


def _ident(url: URL) -> tuple[str, int]:
    return (url.host or "", url.port or 80)


def owner_of(engine: Engine, session_id: str) -> URL | None:
    """The URL of the worker owning the session's partition; None when it is this one.

    Raises a 503 :class:`~streams.web.errors.HttpError` while partitions are being assigned."""
    app = engine.app
    # The partition as every producer computes it (murmur2); the owner from the URL-to-partitions
    # map faust's assignor hands every member (faust's own key lookup needs its producer to have
    # seen the topic, and it never produces to it).
    partition = engine.fold.partition_of(session_id.encode())
    topic = engine.settings.events_topic
    distribution = app.assignor.external_topic_distribution  # type: ignore[attr-defined]
    for url, topics in distribution.items():
        if partition in topics.get(topic, ()):
            owner = URL(url)
            return None if _ident(owner) == _ident(URL(str(app.conf.canonical_url))) else owner
    raise unavailable("partitions are being assigned")


async def assignment_known(engine: Engine) -> None:
    """Return once the group's assignment is known (at once, outside a rebalance): the owners
    :func:`owner_of` names are then the ones that fold. Raises a 503 when the rebalance outlasts the
    write wait (``SESSIONS_WRITE_WAIT_S``).

    A soak's worker, its partitions revoked by a rebalance, drew a new session on one of them two
    seconds later (the routing table still named it the owner), appended the creation and waited
    20 s for a fold that happened on another worker: a 503 for a write that was applied."""
    if engine.assignment_known.is_set():
        return
    try:
        await asyncio.wait_for(engine.assignment_known.wait(), engine.settings.write_wait_s)
    except TimeoutError:
        raise unavailable("partitions are being assigned") from None


def read_owned(engine: Engine, session_id: str) -> bytes:
    """The stored state of a session this worker owns (after ``forward_if_not_owner``): 503 while
    its partition is restored or moving, 404 when there is no such session."""
    try:
        raw = engine.read_session(session_id)
    except StoreClosed:
        raise unavailable("the session's partition is being restored or moving between workers") from None
    if raw is None:
        raise HttpError(404, "session_not_found", f"no session {session_id}")
    return raw


async def forward_if_not_owner(
    engine: Engine, session_id: str, request: web.Request, body: bytes
) -> web.Response | None:
    """None when this worker owns the session (the caller serves it); else the owner's answer to
    this request, relayed as it is. Raises a 503 :class:`~streams.web.errors.HttpError` when the
    owner cannot be asked."""
    await assignment_known(engine)
    owner = owner_of(engine, session_id)
    if owner is None:
        return None
    if request.headers.get(FORWARDED):  # ownership moved while the request was in flight
        raise unavailable("the session's partition is moving between workers")
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
    # A proof that a worker of this deployment sent it (the rate limits count it where it came in).
    headers[FORWARDED] = engine.tokens.proof(f"{request.method} {request.path}")
    target = owner.with_path(request.path).with_query(request.query)
    route = route_of(request)
    limit = engine.settings.forward_timeout_s
    try:
        async with engine.app.http_client.request(
            request.method, target, headers=headers, data=body, timeout=ClientTimeout(total=limit)
        ) as answer:
            relayed = web.Response(body=await answer.read(), status=answer.status)
            for name, value in answer.headers.items():
                if name.lower() not in _HOP_HEADERS | {"content-encoding", "date", "server"}:
                    relayed.headers.add(name, value)
    except TimeoutError:  # aiohttp's timeouts are asyncio.TimeoutError, TimeoutError since 3.11
        engine.metrics.forwarded_request(route, "timeout")
        raise unavailable(f"the worker owning this session did not answer within {limit:g}s") from None
    except ClientError:
        engine.metrics.forwarded_request(route, "unreachable")
        raise unavailable("the worker owning this session does not answer") from None
    engine.metrics.forwarded_request(route, relayed.status)
    return relayed
