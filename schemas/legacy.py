"""Older versions of event types, kept so their JSON Schema stays published for old emitters.

The fold never sees these: schemas/upcasters.py lifts their records to the current version.
"""

from __future__ import annotations

from msgspec import Struct

from schemas.events import Envelope, ShortText, Url


class PageViewedDataV1(Struct, frozen=True):
    url: Url
    referrer: Url | None = None
    title: ShortText | None = None


class PageViewedV1(Envelope, frozen=True, tag="navigation.page_viewed"):
    """Version 1 of navigation.page_viewed (superseded by v2: ``referrer`` became ``referrerUrl``)."""

    data: PageViewedDataV1
    dataschema: str | None = None
