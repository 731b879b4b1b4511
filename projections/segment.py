"""The segment: the shareable commercial context of a session, and its token (a cache key).

A pure projection with a fixed key order and explicit nulls, so the same commercial context always
gives byte-identical tokens whatever session it comes from.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Final

import msgspec
from msgspec import Meta

from schemas.session import Namespaces

# (segment field, session source); the order is the token's byte order.
FIELDS: Final[tuple[tuple[str, str], ...]] = (
    ("campaigns", "rnb.campaigns"),
    ("channel", "store.channel"),
    ("priceTables", "profile.priceTables"),
    ("regionId", "checkout.regionId"),
    ("utm_campaign", "public.utm_campaign"),
    ("utm_source", "public.utm_source"),
    ("utmi_campaign", "public.utmi_cp"),
    ("currencyCode", "store.currencyCode"),
    ("currencySymbol", "store.currencySymbol"),
    ("countryCode", "store.countryCode"),
    ("cultureInfo", "store.cultureInfo"),
    ("admin_cultureInfo", "store.admin_cultureInfo"),
    ("channelPrivacy", "store.channelPrivacy"),
    ("facets", "search.facets"),
)
# Emitted only when the session has them, as VTEX does.
OPTIONAL: Final = frozenset({"admin_cultureInfo", "facets"})
# Query parameters of GET /api/segments that change the answer, never the session.
OVERRIDABLE: Final = frozenset({"cultureInfo", "utm_source", "utm_campaign", "utmi_campaign"})

Segment = dict[str, Any]


class SegmentTokenError(ValueError):
    """Not a segment token: bad base64, not JSON, or not a JSON object."""


def _value(namespaces: Namespaces, source: str) -> Any:
    namespace, _, key = source.partition(".")
    entry = namespaces.get(namespace, {}).get(key)
    value = None if entry is None else entry.get("value")
    return None if value == "" else value


def segment_of(namespaces: Namespaces) -> Segment:
    segment: Segment = {}
    for name, source in FIELDS:
        value = _value(namespaces, source)
        if value is None and name in OPTIONAL:
            continue
        segment[name] = value
    return segment


def with_overrides(segment: Segment, overrides: dict[str, str]) -> Segment:
    """A copy with the overridable fields replaced (key order kept)."""
    return {name: overrides.get(name, value) if name in OVERRIDABLE else value for name, value in segment.items()}


_encoder: Final = msgspec.json.Encoder()


def encode_segment_token(segment: Segment) -> str:
    return base64.b64encode(_encoder.encode(segment)).decode("ascii")


# A segment is a flat object of JSON scalars. Reading only that shape also refuses what no token
# of ours holds and the API could not answer with: deep nesting, integers beyond 64 bits.
_Scalar = str | Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)] | float | bool | None
_token_decoder: Final = msgspec.json.Decoder(dict[str, _Scalar])


def decode_segment_token(token: str) -> Segment:
    padded = token + "=" * (-len(token) % 4)  # cookies often lose the padding
    try:
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        return _token_decoder.decode(raw)
    except (binascii.Error, ValueError, msgspec.DecodeError) as exc:
        raise SegmentTokenError(f"not a segment token: {exc}") from None
