"""What the fold derives for real stores (issue 23): sales channels and bindings, search facets,
the cart's orderForm, regions by coordinates or a recorded lookup, keepAlive. Pure: no broker."""

from __future__ import annotations

import orjson
import pytest

from projections.channels import choose
from projections.regions import lookup_key, region_inputs
from projections.rules import RulesError, parse_rules
from projections.segment import segment_of
from projections.session import fold
from schemas.events import event_from_object
from schemas.personal import event_places, public_keys, state_places
from schemas.session import encode_state
from streams.config.rules_file import parse_rules_text
from streams.devkit.events import (
    cookies_recorded,
    logged_in,
    logged_out,
    new_session_id,
    page_view,
    public_set,
    region_resolved,
    session_created,
)
from streams.devkit.paths import sample_rules

pytestmark = pytest.mark.unit

RULES = sample_rules()
SAO_PAULO = "v2.5A0C3D7E2F1B4A6C8D9E0F1A2B3C4D5E"
MOEMA = "v2.1BB18CE648B5111D0933734ED83EC783"


def run(*objects, rules=RULES):
    return fold((event_from_object(o) for o in objects), rules=rules)


def values(state, namespace):
    return {k: v["value"] for k, v in state.namespaces.get(namespace, {}).items()}


# --- sales channels and bindings ------------------------------------------------------------------


def test_sc_selects_the_channel_with_its_currency_country_and_price_table():
    sid = new_session_id()
    state = run(session_created(sid), public_set(sid, {"sc": "2"}))
    assert values(state, "store") == {
        "channel": "2",
        "countryCode": "USA",
        "cultureInfo": "en-US",
        "currencyCode": "USD",
        "currencySymbol": "US$",
        "channelPrivacy": "public",
        "priceTables": "usd-list",
    }
    segment = segment_of(state.namespaces)
    assert (segment["channel"], segment["currencyCode"], segment["priceTables"]) == ("2", "USD", "usd-list")
    # Back to channel 1: its own currency, and channel 2's price table is gone.
    back = run(session_created(sid), public_set(sid, {"sc": "2"}), public_set(sid, {"sc": 1}))
    segment = segment_of(back.namespaces)
    assert (segment["channel"], segment["currencyCode"], segment["priceTables"]) == ("1", "BRL", None)


def test_a_channel_the_account_lacks_leaves_the_session_on_its_channel():
    # The fold never refuses (the event is on the log already); the API refuses the request.
    sid = new_session_id()
    state = run(session_created(sid), public_set(sid, {"sc": "9"}))
    assert values(state, "store")["channel"] == "1"
    assert values(state, "public")["sc"] == "9"


def test_a_private_channel_is_open_only_to_the_customers_allowed_once_logged_in():
    store = RULES.store_for("demo")
    anonymous = choose(store, "3", None, None, None, RULES.customer_channels)
    assert (anonymous.channel.id, anonymous.refused) == ("1", "sales channel '3' is private: log in first")
    other = choose(store, "3", None, None, "joao@example.com", RULES.customer_channels)
    assert other.refused == "sales channel '3' is private and not open to this customer"
    allowed = choose(store, "3", None, None, "Buyer@Example.com", RULES.customer_channels)
    assert (allowed.channel.id, allowed.refused) == ("3", None)
    unknown = choose(store, "9", None, None, None, RULES.customer_channels)
    assert unknown.refused == "sales channel '9' is not one of this store's (1, 2, 3)"

    sid = new_session_id()
    state = run(
        session_created(sid),
        logged_in(sid, "u-9", "buyer@example.com", 1),
        public_set(sid, {"sc": "3"}, 2),
    )
    assert values(state, "store")["channel"] == "3"
    assert values(state, "profile")["priceTables"] == "wholesale"


def test_a_binding_selects_its_channel_and_locale_and_sc_wins_over_it():
    sid = new_session_id()
    state = run(session_created(sid), public_set(sid, {"__bindingId": "us-store"}))
    store = values(state, "store")
    assert (store["channel"], store["currencyCode"], store["cultureInfo"]) == ("2", "USD", "en-US")
    br = run(session_created(sid), public_set(sid, {"__bindingId": "br-store"}))
    assert (values(br, "store")["channel"], values(br, "store")["cultureInfo"]) == ("1", "pt-BR")
    # A client's locale wins over the binding's; a granted sc over its channel.
    both = run(session_created(sid), public_set(sid, {"__bindingId": "br-store", "sc": "2", "locale": "es-AR"}))
    assert (values(both, "store")["channel"], values(both, "store")["cultureInfo"]) == ("2", "es-AR")


def test_the_binding_of_the_host_the_session_was_made_on():
    sid = new_session_id()
    created = session_created(sid, "demo")
    created["data"]["binding"] = "us-store"
    state = run(created)
    assert values(state, "store")["currencyCode"] == "USD"
    assert state.facts == {"account": "demo", "binding": "us-store"}


def test_an_unknown_binding_id_selects_nothing():
    # render-session sends its own binding id on every page load, to stores that define none too.
    sid = new_session_id()
    state = run(session_created(sid), public_set(sid, {"__bindingId": "binding-1"}))
    assert values(state, "store")["channel"] == "1"


def test_switching_binding_resets_what_belongs_to_the_binding_left():
    sid = new_session_id()
    state = run(
        session_created(sid),
        public_set(sid, {"__bindingId": "br-store", "utm_source": "news", "country": "BRA", "postalCode": "04561000"}),
        public_set(sid, {"sc": "1", "locale": "pt-PT", "orderFormId": "of-br"}, 1),
        cookies_recorded(sid, {"checkout.vtex.com": "__ofid=of-cookie"}, 2),
        public_set(sid, {"__bindingId": "us-store"}, 3),
    )
    public = values(state, "public")
    assert public == {"__bindingId": "us-store", "utm_source": "news", "country": "BRA", "postalCode": "04561000"}
    assert "cookie" not in state.namespaces
    assert "orderFormId" not in values(state, "checkout")
    assert values(state, "checkout") == {"regionId": MOEMA}  # the region stays
    store = values(state, "store")
    assert (store["channel"], store["currencyCode"], store["cultureInfo"]) == ("2", "USD", "en-US")
    # The first binding of a session is no switch; a value the same write sets is kept.
    first = run(session_created(sid), public_set(sid, {"sc": "2"}), public_set(sid, {"__bindingId": "br-store"}, 1))
    assert values(first, "public")["sc"] == "2"
    kept = run(
        session_created(sid),
        public_set(sid, {"__bindingId": "br-store", "locale": "pt-PT"}),
        public_set(sid, {"__bindingId": "us-store", "locale": "en-GB"}, 1),
    )
    assert values(kept, "store")["cultureInfo"] == "en-GB"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[accounts.a]\nchannel = "1"\n[accounts.a.bindings.b]\nchannel = "7"', "$.accounts.a.bindings.b.channel: '7'"),
        ('[accounts.a.channels."x y"]\ncurrency_code = "USD"', "$.accounts.a.channels.x y: a sales channel id"),
        ('[accounts.a.channels.2]\nchannel_privacy = "secret"', "$.accounts.a.channels.2.channel_privacy"),
        ('[accounts.a.channels.2]\nprice = "1"', "$.accounts.a.channels.2.price: unknown key"),
        (
            '[accounts.a]\nchannel = "1"\n[accounts.a.bindings.b]\nchannel = "1"\nhost = "x.example"\n'
            '[accounts.c]\nchannel = "1"\n[accounts.c.bindings.d]\nchannel = "1"\nhost = "X.example"',
            "$.accounts.c.bindings.d.host: 'x.example' is already the host of $.accounts.a.bindings.b",
        ),
        ('[[regions]]\ncountry = "BRA"\nregion_id = "r"\narea = [1, 2, 3]', "$.regions[0].area: expected [west"),
        ('[[regions]]\ncountry = "BRA"\nregion_id = "r"\narea = [10, 0, 5, 1]', "$.regions[0].area: expected west"),
        (
            '[[regions]]\ncountry = "BRA"\nregion_id = "r"\narea = [0, 0, 1, 1]\npostal_code = "1"',
            "$.regions[0]: give exactly one of postal_code, postal_code_prefix, area",
        ),
        ('[customers."a@b.c"]\nchannels = [3]', "channels: expected a list of sales channel ids"),
    ],
)
def test_bad_channel_binding_and_region_rules_name_the_entry(toml, message):
    with pytest.raises(RulesError) as caught:
        parse_rules_text(toml, "rules.toml")
    assert message in str(caught.value)


def test_channels_fall_back_to_the_account_fields_and_the_first_is_the_default_without_channel():
    rules = parse_rules(
        {"accounts": {"a": {"currency_code": "EUR", "channels": {"5": {}, "6": {"currency_code": "GBP"}}}}}
    )
    store = rules.store_for("a")
    assert store.default_channel().id == "5"
    assert (store.channels["5"].currency_code, store.channels["6"].currency_code) == ("EUR", "GBP")
    state = run(session_created(new_session_id(), "a"), rules=rules)
    assert values(state, "store") == {"channel": "5", "currencyCode": "EUR"}


# --- search facets --------------------------------------------------------------------------------


def test_search_facets_from_public_facets_and_the_location_go_into_the_segment():
    sid = new_session_id()
    state = run(
        public_set(
            sid,
            {
                "facets": "productClusterIds=138;productClusterIds=not:140;junk;",
                "country": "mex",
                "postalCode": "77500",
                "geoCoordinates": "-86.86575, 21.09761",
            },
        )
    )
    expected = (
        "productClusterIds=138;productClusterIds=not:140;country=MEX;zip-code=77500;coordinates=-86.86575,21.09761;"
    )
    assert values(state, "search") == {"facets": expected}
    assert segment_of(state.namespaces)["facets"] == expected
    assert list(segment_of(state.namespaces))[-1] == "facets"  # VTEX's place for it: last
    cleared = run(public_set(sid, {"facets": "a=1"}), public_set(sid, {"facets": ""}, 1))
    assert "search" not in cleared.namespaces and "facets" not in segment_of(cleared.namespaces)


# --- the cart's orderForm -------------------------------------------------------------------------


def test_order_form_id_from_the_checkout_cookie_or_a_public_key():
    sid = new_session_id()
    state = run(cookies_recorded(sid, {"checkout.vtex.com": "__ofid=0a1b2c3d"}))
    assert values(state, "checkout") == {"orderFormId": "0a1b2c3d", "cartId": "0a1b2c3d"}
    assert values(state, "cookie") == {"checkout.vtex.com": "__ofid=0a1b2c3d"}
    explicit = run(
        cookies_recorded(sid, {"checkout.vtex.com": "__ofid=0a1b2c3d"}), public_set(sid, {"orderFormId": "ff"})
    )
    assert values(explicit, "checkout") == {"orderFormId": "ff", "cartId": "ff"}
    gone = run(
        cookies_recorded(sid, {"checkout.vtex.com": "__ofid=0a1b2c3d"}),
        cookies_recorded(sid, {"checkout.vtex.com": None}),
    )
    assert "checkout" not in gone.namespaces and "cookie" not in gone.namespaces
    junk = run(cookies_recorded(sid, {"checkout.vtex.com": "nothing-here"}))
    assert "checkout" not in junk.namespaces


# --- regions --------------------------------------------------------------------------------------


def test_region_by_coordinates_inside_an_area():
    sid = new_session_id()
    state = run(public_set(sid, {"country": "BRA", "geoCoordinates": "-46.6388,-23.5489"}))
    assert values(state, "checkout") == {"regionId": SAO_PAULO}
    outside = run(public_set(sid, {"country": "BRA", "geoCoordinates": "-43.2,-22.9"}))
    assert "checkout" not in outside.namespaces
    # A postal code the table knows is tried first.
    both = run(public_set(sid, {"country": "BRA", "postalCode": "04561000", "geoCoordinates": "-46.6388,-23.5489"}))
    assert values(both, "checkout") == {"regionId": MOEMA}


def test_a_recorded_lookup_answers_while_its_inputs_are_the_sessions():
    sid = new_session_id()
    asked = region_inputs("bra", "01310-100", None)
    state = run(
        region_resolved(sid, lookup_key(asked), "v2.FROM-THE-SERVICE"),
        public_set(sid, {"country": "BRA", "postalCode": "01310100"}, 1),
    )
    assert values(state, "checkout") == {"regionId": "v2.FROM-THE-SERVICE"}
    assert "01310" not in str(state.facts)  # the event and the fact hold a digest, not the code
    moved = run(
        region_resolved(sid, lookup_key(asked), "v2.FROM-THE-SERVICE"),
        public_set(sid, {"country": "BRA", "postalCode": "01310100"}, 1),
        public_set(sid, {"postalCode": "04561-000"}, 2),
    )
    assert values(moved, "checkout") == {"regionId": MOEMA}  # other inputs: the table again
    none_there = run(
        region_resolved(sid, lookup_key(region_inputs("BRA", "04561000", None)), None),
        public_set(sid, {"country": "BRA", "postalCode": "04561000"}, 1),
    )
    assert "checkout" not in none_there.namespaces  # the service's "no region" wins over the table


# --- keepAlive ------------------------------------------------------------------------------------


def test_account_id_is_keep_alive_as_vtex_serves_it():
    state = run(session_created(new_session_id()))
    assert state.namespaces["account"]["id"] == {"value": "a8b27fb4-6516-4cc0-82b6-a5f2b011e6e2", "keepAlive": True}
    assert state.namespaces["account"]["accountName"] == {"value": "demo"}


def test_page_views_with_sc_in_the_url_fold_like_a_write():
    sid = new_session_id()
    state = run(session_created(sid), page_view(sid, "https://s/?sc=2"))
    assert values(state, "store")["currencyCode"] == "USD"


# --- impersonation --------------------------------------------------------------------------------


def test_a_telesales_operator_impersonates_a_customer_and_others_may_not():
    sid = new_session_id()
    wanted = {"vtex-impersonated-customer-email": "Joao@Example.com"}
    operator = run(session_created(sid), logged_in(sid, "u-op", "operator@example.com", 1), public_set(sid, wanted, 2))
    assert values(operator, "impersonate") == {"canImpersonate": "true", "storeUserEmail": "joao@example.com"}
    # The operator sees the store as the customer: the customer's price tables.
    assert values(operator, "profile") == {
        "email": "joao@example.com",
        "priceTables": "gold",
        "isAuthenticated": "true",
    }
    buyer = run(session_created(sid), logged_in(sid, "u-op", "operator@example.com", 1),
                public_set(sid, {"vtex-impersonated-customer-email": "buyer@example.com"}, 2))  # fmt: skip
    assert values(buyer, "impersonate")["storeUserId"] == "u-buyer"
    shopper = run(session_created(sid), logged_in(sid, "u-1", "joao@example.com", 1), public_set(sid, wanted, 2))
    assert values(shopper, "impersonate") == {"canImpersonate": "false"}
    assert values(shopper, "profile")["email"] == "joao@example.com"
    anonymous = run(session_created(sid), public_set(sid, wanted, 2))
    assert "impersonate" not in anonymous.namespaces
    # Logging out ends the impersonation.
    after = run(session_created(sid), logged_in(sid, "u-op", "operator@example.com", 1), public_set(sid, wanted, 2),
                logged_out(sid, 3))  # fmt: skip
    assert "impersonate" not in after.namespaces
    assert values(after, "profile") == {"isAuthenticated": "false"}


def test_the_telesales_cookie_asks_for_the_customer_too_and_is_sealed_in_the_log():
    sid = new_session_id()
    state = run(
        session_created(sid),
        logged_in(sid, "u-op", "operator@example.com", 1),
        cookies_recorded(sid, {"vtex-impersonated-customer-email": "buyer@example.com"}, 2),
    )
    assert values(state, "impersonate") == {
        "canImpersonate": "true",
        "storeUserEmail": "buyer@example.com",
        "storeUserId": "u-buyer",
    }
    record = cookies_recorded(sid, {"vtex-impersonated-customer-email": "buyer@example.com", "checkout.vtex.com": "x"})
    places = [path for _, _, path in event_places(record, public_keys(frozenset()))]
    assert places == ["data.cookies.vtex-impersonated-customer-email"]
    assert [
        path for _, _, path in state_places(orjson.loads(encode_state(state)), frozenset()) if "cookie" in path
    ] == ["namespaces.cookie.vtex-impersonated-customer-email.value"]
