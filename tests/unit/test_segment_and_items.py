import base64

import orjson
import pytest

from projections.items import ItemsError, parse_items, select
from projections.segment import (
    SegmentTokenError,
    decode_segment_token,
    encode_segment_token,
    segment_of,
    with_overrides,
)
from projections.session import fold
from schemas.events import event_from_object
from streams.devkit.events import new_session_id, page_view, public_set, session_created
from streams.devkit.paths import sample_rules

pytestmark = pytest.mark.unit

RULES = sample_rules()


def session(*objects):
    return fold((event_from_object(o) for o in objects), rules=RULES)


def test_a_default_session_has_the_documented_segment_bytes():
    sid = new_session_id()
    token = encode_segment_token(segment_of(session(session_created(sid)).namespaces))
    # The decoded segmentToken of VTEX's own OpenAPI example, byte for byte.
    assert base64.b64decode(token) == (
        b'{"campaigns":null,"channel":"1","priceTables":null,"regionId":null,"utm_campaign":null,'
        b'"utm_source":null,"utmi_campaign":null,"currencyCode":"BRL","currencySymbol":"R$",'
        b'"countryCode":"BRA","cultureInfo":"en-US","channelPrivacy":"public"}'
    )


def test_the_same_commercial_context_gives_the_same_token_across_sessions():
    a, b = new_session_id(), new_session_id()
    state_a = session(session_created(a), page_view(a, "https://s/?utm_source=x&other=1"), public_set(a, {"n": 1}))
    state_b = session(session_created(b), public_set(b, {"utm_source": "x", "unrelated": True}))
    assert encode_segment_token(segment_of(state_a.namespaces)) == encode_segment_token(segment_of(state_b.namespaces))


def test_segment_follows_utms_region_and_campaign_price_tables():
    sid = new_session_id()
    state = session(
        session_created(sid),
        page_view(sid, "https://s/?utm_source=google&utm_campaign=blackfriday&utmi_cp=banner"),
        public_set(sid, {"country": "BRA", "postalCode": "04561000"}),
    )
    segment = segment_of(state.namespaces)
    assert segment["utm_source"] == "google"
    assert segment["utm_campaign"] == "blackfriday"
    assert segment["utmi_campaign"] == "banner"
    assert segment["campaigns"] == "blackfriday"
    assert segment["priceTables"] == "promo-bf"
    assert segment["regionId"] == "v2.1BB18CE648B5111D0933734ED83EC783"
    assert list(segment)[:4] == ["campaigns", "channel", "priceTables", "regionId"]


def test_overrides_change_only_the_overridable_fields_and_keep_the_order():
    segment = segment_of(session(session_created(new_session_id())).namespaces)
    changed = with_overrides(segment, {"cultureInfo": "pt-BR", "utm_source": "x", "channel": "9"})
    assert changed["cultureInfo"] == "pt-BR" and changed["utm_source"] == "x"
    assert changed["channel"] == "1"
    assert list(changed) == list(segment)


def test_segment_tokens_round_trip_and_tolerate_missing_padding():
    segment = segment_of(session(session_created(new_session_id())).namespaces)
    token = encode_segment_token(segment)
    assert decode_segment_token(token) == segment
    assert decode_segment_token(token.rstrip("=")) == segment


@pytest.mark.parametrize("token", ["%%%", base64.b64encode(b"not json").decode(), base64.b64encode(b"[1]").decode()])
def test_bad_segment_tokens_are_rejected(token):
    with pytest.raises(SegmentTokenError):
        decode_segment_token(token)


NAMESPACES = orjson.loads(
    b'{"public":{"a":{"value":"1"},"b":{"value":2}},"store":{"channel":{"value":"1"}},"profile":{"x":{"value":"y"}}}'
)


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ("*", NAMESPACES),
        ("public.a", {"public": {"a": {"value": "1"}}}),
        (
            "public.a,public.missing,store.channel",
            {"public": {"a": {"value": "1"}}, "store": {"channel": {"value": "1"}}},
        ),
        ("public.*", {"public": NAMESPACES["public"]}),
        ("nothing.here", {}),
        ("public.b, profile.x", {"public": {"b": {"value": 2}}, "profile": {"x": {"value": "y"}}}),
    ],
)
def test_items_select_only_the_requested_keys(items, expected):
    assert select(NAMESPACES, parse_items(items)) == expected


@pytest.mark.parametrize("items", ["public", ".a", "public.", "a.b,c"])
def test_malformed_items_are_rejected(items):
    with pytest.raises(ItemsError):
        parse_items(items)
