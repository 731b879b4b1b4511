"""Asking a regions service for a session's region, before the change is appended.

The design's rule for lookups in other systems: decided before the append, recorded in the log
(``checkout.region_resolved``), so a replay, a rebuild or a timeline never calls out and always
folds the same region. The service answers in VTEX's checkout regions API shape
(``GET /api/checkout/pub/regions?country=&postalCode=|geoCoordinates=<lon>;<lat>&sc=`` ->
``[{"id": "v2.…", "sellers": [...]}]``; ``[]``: no region there).

A service that fails or is slow records nothing: the rules' table answers for this change, and
the next change asks again. Every failure is logged with why.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import orjson
from aiohttp import ClientError, ClientTimeout

from projections.regions import RegionInputs

if TYPE_CHECKING:
    from streams.control.engine import Engine

log = logging.getLogger(__name__)

UNANSWERED = (False, None)  # the service gave no usable answer (a failure, a timeout)


async def ask_region(engine: Engine, inputs: RegionInputs, channel: str | None) -> tuple[bool, str | None]:
    """(True, the region id the service gives for ``inputs``; None when it knows no region
    there), or :data:`UNANSWERED`."""
    settings = engine.settings
    query = {"country": inputs.country}
    if inputs.postal_code is not None:
        query["postalCode"] = inputs.postal_code
    if inputs.coordinates is not None:
        # "lon;lat": how FastStore's commerce client calls VTEX's regions API (``checkout.region``).
        query["geoCoordinates"] = "{};{}".format(*inputs.coordinates)
    if channel is not None:
        query["sc"] = channel
    timeout = ClientTimeout(total=settings.regions_timeout_s)
    try:
        async with engine.app.http_client.get(settings.regions_url, params=query, timeout=timeout) as answer:
            body = await answer.read()
            status = answer.status
    except TimeoutError:
        log.warning("regions service: no answer within %gs; the rules' table answers", settings.regions_timeout_s)
        return UNANSWERED
    except ClientError as exc:
        log.warning("regions service unreachable (%s); the rules' table answers", type(exc).__name__)
        return UNANSWERED
    if status != 200:
        log.warning("regions service answered %d; the rules' table answers", status)
        return UNANSWERED
    try:
        regions = orjson.loads(body)
    except orjson.JSONDecodeError:
        log.warning("regions service answered something that is not JSON; the rules' table answers")
        return UNANSWERED
    if not isinstance(regions, list) or not all(isinstance(r, dict) for r in regions):
        log.warning("regions service answered something other than a list of regions; the rules' table answers")
        return UNANSWERED
    if not regions:
        return True, None
    region = regions[0].get("id")
    if not isinstance(region, str) or not 1 <= len(region) <= 512:
        log.warning("regions service answered a region without a usable id; the rules' table answers")
        return UNANSWERED
    return True, region
