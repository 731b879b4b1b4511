"""Hypothesis strategies for event sequences that exercise the fold and the transformers."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from urllib.parse import urlencode

from hypothesis import strategies as st

from projections.regions import lookup_key, region_inputs
from streams.devkit.events import (
    campaign_click,
    cart_item_added,
    cookies_recorded,
    logged_in,
    logged_out,
    page_view,
    public_set,
    region_resolved,
    session_created,
    session_erased,
    session_transformed,
)

# Keys and values the transformers react to, mixed with arbitrary ones.
keys = st.sampled_from(
    ["utm_source", "utm_campaign", "utmi_cp", "country", "postalCode", "cultureInfo", "locale",
     "storeUserEmail", "regionId", "color", "q", "sc", "__bindingId", "geoCoordinates", "facets", "orderFormId"]
)  # fmt: skip
texts = st.sampled_from(["blackfriday", "BlackFriday", "google", "BRA", "04561000", "04561-000", "pt-BR", "",
                         "joao@example.com", "x", "tênis azul", "1", "2", "-46.6388,-23.5489",
                         "productClusterIds=138;"])  # fmt: skip
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | texts
    | st.floats(allow_nan=False, allow_infinity=False, width=32),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["a", "b"]), inner, max_size=2),
    max_leaves=5,
)  # fmt: skip


def _page(sid: str, n: int) -> st.SearchStrategy[dict]:
    query = st.dictionaries(keys, texts, max_size=4)
    return query.map(lambda q: page_view(sid, f"https://shop.example/p?{urlencode(q)}", n))


def _click(sid: str, n: int) -> st.SearchStrategy[dict]:
    utm_keys = st.sampled_from(["utm_source", "utm_campaign", "utmi_cp"])
    return st.dictionaries(utm_keys, texts, max_size=3).map(lambda utm: campaign_click(sid, n, **utm))


def _public(sid: str, n: int) -> st.SearchStrategy[dict]:
    return st.dictionaries(keys, json_values, min_size=1, max_size=3).map(lambda values: public_set(sid, values, n))


def _created(sid: str, n: int) -> st.SearchStrategy[dict]:
    return st.sampled_from([None, "demo", "other"]).map(lambda account: session_created(sid, account, n))


def _login(sid: str, n: int) -> st.SearchStrategy[dict]:
    emails = st.sampled_from(["joao@example.com", "maria@example.com"])
    tables = st.lists(st.sampled_from(["vip", "b2b"]), max_size=2)
    return st.builds(
        lambda email, drawn: logged_in(sid, f"u-{email[:4]}", email, n, firstName="Ana", priceTables=drawn),
        emails,
        tables,
    )


def _logout(sid: str, n: int) -> st.SearchStrategy[dict]:
    return st.just(logged_out(sid, n))


def _erase(sid: str, n: int) -> st.SearchStrategy[dict]:
    return st.just(session_erased(sid, n))


def _cookies(sid: str, n: int) -> st.SearchStrategy[dict]:
    values = st.sampled_from([None, "__ofid=0a1b2c", "__ofid=ffee", "junk"])
    return values.map(lambda value: cookies_recorded(sid, {"checkout.vtex.com": value}, n))


# A recorded answer for the region inputs the other strategies write (and for none of them).
_ASKED = [region_inputs("BRA", "04561000", None), region_inputs("BRA", None, "-46.6388,-23.5489")]


def _region(sid: str, n: int) -> st.SearchStrategy[dict]:
    keys_ = st.sampled_from([lookup_key(asked) for asked in _ASKED if asked is not None] + ["f" * 64])
    return st.tuples(keys_, st.sampled_from([None, "v2.AAA", "v2.BBB"])).map(
        lambda drawn: region_resolved(sid, drawn[0], drawn[1], n)
    )


def _transformed(sid: str, n: int) -> st.SearchStrategy[dict]:
    outputs = st.fixed_dictionaries(
        {},
        optional={
            "public": st.dictionaries(st.sampled_from(["sc", "facets", "regionId"]), texts, max_size=2),
            "storefront-permissions": st.dictionaries(
                st.sampled_from(["organization", "priceTables"]), texts, max_size=2
            ),
        },
    )
    digests = st.sampled_from(["0" * 64, "a" * 64])
    return st.tuples(digests, outputs).map(
        lambda drawn: session_transformed(sid, "storefront-permissions", drawn[0], drawn[1], n)
    )


def _cart(sid: str, n: int) -> st.SearchStrategy[dict]:
    # Mostly the store's currency; now and then another, which the fold refuses (dead-lettered).
    return st.tuples(
        st.sampled_from(["sku-1", "sku-2"]),
        st.integers(1, 3),
        st.sampled_from([0, 0.1, 0.2, 19.9, 100]),
        st.sampled_from(["BRL", "BRL", "BRL", "USD"]),
    ).map(lambda item: cart_item_added(sid, *item, seconds=n))


# One strategy per event type: (session id, position) -> a valid event of that type.
# tests/unit/test_event_types.py fails when a type of the contract has none.
EVENT_STRATEGIES: dict[str, Callable[[str, int], st.SearchStrategy[dict]]] = {
    "navigation.page_viewed": _page,
    "navigation.campaign_clicked": _click,
    "session.public_set": _public,
    "session.created": _created,
    "auth.logged_in": _login,
    "auth.logged_out": _logout,
    "cart.item_added": _cart,
    "session.erased": _erase,
    "session.cookies_recorded": _cookies,
    "checkout.region_resolved": _region,
    "session.transformed": _transformed,
}


@st.composite
def event_sequences(draw):
    """A session id and 1 to 12 events of it, of every type."""
    sid = str(uuid.uuid4())
    kinds = draw(st.lists(st.sampled_from(sorted(EVENT_STRATEGIES)), min_size=1, max_size=12))
    return sid, [draw(EVENT_STRATEGIES[kind](sid, n)) for n, kind in enumerate(kinds)]
