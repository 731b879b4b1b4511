"""What real stores derive from a session (issue 23), against a real worker, broker and HTTP with
the sample rules: sales channels and bindings chosen by ``sc``, ``__bindingId`` and the host, a
refused channel, ``search.facets``, the cart's orderForm from the checkout cookie, regions by
coordinates, the cache headers.

The client requests replayed are FastStore's ``validateSession`` (packages/api/src/platforms/vtex/
resolvers/validateSession.ts: it calls ``commerce.session(search)`` with the page's search
parameters plus ``sc``, POST then PATCH, body ``{}``, and reads ``store.*``), render-session's
initial request with its item list (src/index.ts, src/constants.ts), and the region bodies of
VTEX's "Enable the Region for SKUs" guide (PATCH ``public.country`` + ``postalCode`` or
``geoCoordinates``).
"""

from __future__ import annotations

import uuid
from urllib.parse import quote

import httpx
import pytest

from streams.devkit.events import logged_in
from tests.support.http import HttpClient, http_client
from tests.support.service_worker import TRUSTED_KEY
from tests.support.sessions import wait_for_session
from tests.support.vtex_clients import FASTSTORE_ITEMS, RENDER_SESSION_ITEMS, decode_segment
from tests.support.workers import worker_client

pytestmark = pytest.mark.integration

SAO_PAULO = "v2.5A0C3D7E2F1B4A6C8D9E0F1A2B3C4D5E"  # the sample's [[regions]] area


@pytest.fixture(scope="module")
def worker(service_worker):
    return service_worker  # this process's shared worker (tests/support/service_worker.py)


browser = worker_client()
identity_service = worker_client(Authorization=f"Bearer {TRUSTED_KEY}")


def store_values(document: dict) -> dict:
    return {key: entry["value"] for key, entry in document["namespaces"].get("store", {}).items()}


def set_cookie(response: httpx.Response, name: str) -> str:
    [value] = [
        h.split(";", 1)[0].split("=", 1)[1] for h in response.headers.get_list("set-cookie") if h.startswith(f"{name}=")
    ]
    return value


def cookie_header(response: httpx.Response) -> str:
    """The cookies a server-side client keeps from an answer, as FastStore forwards them."""
    return "; ".join(header.split(";", 1)[0] for header in response.headers.get_list("set-cookie"))


def faststore_session(client: HttpClient, search: str, cookies: str = "") -> httpx.Response:
    """FastStore ``commerce.session(search)``: POST without a vtex_session, else PATCH; body ``{}``."""
    method = "PATCH" if "vtex_session=" in cookies else "POST"
    headers = {"content-type": "application/json", **({"cookie": cookies} if cookies else {})}
    return client.request(method, f"/api/sessions?{search}&items={FASTSTORE_ITEMS}", headers=headers, content=b"{}")


def event_count(worker, sid: str) -> int:
    with http_client(base_url=worker.url, timeout=15.0) as service:
        document, _ = wait_for_session(service, sid, 1)
    return document["meta"]["eventCount"]


# --- sales channels -------------------------------------------------------------------------------


def test_faststore_validate_session_sc_picks_each_channels_currency_and_price_table(worker):
    """FastStore validateSession -> ``commerce.session(search)`` with ``sc`` set: a store with two
    sales channels answers each with its own currency, country and price table, in ``store`` and
    in the segment, and a later ``sc`` switches back."""
    with http_client(base_url=worker.url, timeout=15.0) as faststore:  # a server: no cookie jar
        first = faststore_session(faststore, "utm_source=google&sc=2&locale=en-US")
        assert first.status_code == 201, first.text
        assert store_values(first.json()) == {
            "channel": "2", "countryCode": "USA", "cultureInfo": "en-US", "currencyCode": "USD",
            "currencySymbol": "US$",
        }  # fmt: skip
        segment = decode_segment(set_cookie(first, "vtex_segment"))
        assert (segment["channel"], segment["currencyCode"], segment["priceTables"]) == ("2", "USD", "usd-list")
        cookies = cookie_header(first)
        second = faststore_session(faststore, "sc=1&locale=pt-BR", cookies)
        assert second.status_code == 200, second.text
        assert second.json()["id"] == first.json()["id"]
        assert store_values(second.json()) == {
            "channel": "1", "countryCode": "BRA", "cultureInfo": "pt-BR", "currencyCode": "BRL",
            "currencySymbol": "R$",
        }  # fmt: skip
        segment = faststore.get("/api/segments", headers={"cookie": cookie_header(second)}).json()
        assert (segment["channel"], segment["currencyCode"], segment["priceTables"]) == ("1", "BRL", None)


def test_a_channel_the_store_does_not_have_is_refused_naming_it_and_nothing_is_appended(browser, worker):
    sid = browser.post("/api/sessions?sc=2&items=account.id", json={}).json()["id"]
    before = event_count(worker, sid)
    by_query = browser.patch("/api/sessions?sc=9", json={})
    assert by_query.status_code == 401, by_query.text  # VTEX's store-session: 401 for an anonymous shopper
    assert by_query.json()["error"] == {
        "code": "sales_channel_not_allowed",
        "message": "sales channel '9' is not one of this store's (1, 2, 3)",
        "details": [{"path": "sc"}],
    }
    by_body = browser.patch("/api/sessions", json={"public": {"sc": {"value": 9}}})
    assert by_body.status_code == 401
    assert by_body.json()["error"]["details"] == [{"path": "$.public.sc"}]
    private = browser.patch("/api/sessions?sc=3", json={})
    assert private.status_code == 401
    assert private.json()["error"]["message"] == "sales channel '3' is private: log in first"
    assert event_count(worker, sid) == before
    document = browser.get("/api/sessions", params={"items": "store.channel,public.sc"}).json()
    assert document["namespaces"] == {"store": {"channel": {"value": "2"}}, "public": {"sc": {"value": "2"}}}
    # A new session asking for a channel the store lacks is refused too, and none is made.
    with http_client(base_url=worker.url, timeout=15.0) as stranger:
        refused = stranger.post("/api/sessions?sc=42", json={})
        assert refused.status_code == 401 and "vtex_session" not in refused.headers.get("set-cookie", "")


def test_a_private_channel_is_403_for_a_customer_it_is_not_open_to_and_granted_to_one_it_is(
    browser, identity_service, worker
):
    for email, expected in (("joao@example.com", 403), ("buyer@example.com", 200)):
        with http_client(base_url=worker.url, timeout=15.0) as shopper:
            sid = shopper.post("/api/sessions?items=account.id", json={}).json()["id"]
            assert (
                identity_service.post("/api/events", json=logged_in(sid, "u-" + email[:4], email, 1)).status_code == 202
            )
            wait_for_session(identity_service, sid, 2)
            answer = shopper.patch("/api/sessions?sc=3&items=store.channel,profile.priceTables", json={})
            assert answer.status_code == expected, answer.text
            if expected == 403:
                assert answer.json()["error"]["code"] == "sales_channel_forbidden"
                assert answer.json()["error"]["details"] == [{"path": "sc"}]
            else:
                assert answer.json()["namespaces"] == {
                    "store": {"channel": {"value": "3"}},
                    "profile": {"priceTables": {"value": "wholesale"}},
                }


# --- bindings -------------------------------------------------------------------------------------


def test_the_host_of_a_binding_gives_new_sessions_its_channel_and_account(worker):
    with http_client(base_url=worker.url, timeout=15.0, headers={"Host": "us.shop.example"}) as us:
        # Cookieless segment reads (IO apps on every render) get the binding's default segment.
        segment = us.get("/api/segments").json()
        assert (segment["channel"], segment["currencyCode"], segment["priceTables"]) == ("2", "USD", "usd-list")
        document = us.post("/api/sessions?items=account.accountName,store.*", json={}).json()
        assert document["namespaces"]["account"] == {"accountName": {"value": "demo"}}
        assert store_values(document) == {
            "channel": "2", "countryCode": "USA", "cultureInfo": "en-US", "currencyCode": "USD",
            "currencySymbol": "US$", "channelPrivacy": "public", "priceTables": "usd-list",
        }  # fmt: skip
    with http_client(base_url=worker.url, timeout=15.0, headers={"Host": "br.shop.example:443"}) as br:
        assert br.get("/api/segments").json()["cultureInfo"] == "pt-BR"


def test_render_session_binding_id_selects_the_binding_and_a_switch_resets_what_it_owned(browser):
    """render-session v1.9.2 ``createInitialSessionRequest``: POST /api/sessions<search>&items=<ITEMS>
    &supportedLocales=...&__bindingId=<id>, body ``{}``; the storefront reads the item list."""

    def page_load(search: str, binding: str) -> httpx.Response:
        url = f"/api/sessions{search}&items={RENDER_SESSION_ITEMS}&supportedLocales=en-US,pt-BR&__bindingId={binding}"
        return browser.post(url, content=b"{}", headers={"Content-Type": "application/json"})

    first = page_load("?utm_source=google", "br-store")
    assert first.status_code == 201, first.text
    namespaces = first.json()["namespaces"]
    assert namespaces["account"] == {
        "id": {"value": "a8b27fb4-6516-4cc0-82b6-a5f2b011e6e2", "keepAlive": True},  # VTEX's shape
        "accountName": {"value": "demo"},
    }
    assert store_values(first.json()) == {
        "channel": "1", "countryCode": "BRA", "cultureInfo": "pt-BR", "currencyCode": "BRL", "currencySymbol": "R$",
    }  # fmt: skip
    assert namespaces["profile"] == {"isAuthenticated": {"value": "false"}}
    assert namespaces["public"] == {"utm_source": {"value": "google"}}
    # The shopper picks a locale and puts something in the cart under this binding ...
    browser.patch("/api/sessions", json={"public": {"locale": {"value": "pt-PT"}, "orderFormId": {"value": "of-br"}}})
    # ... then the store moves them to the US binding: the channel, locale and cart of the BR one go.
    moved = page_load("?", "us-store")
    assert moved.json()["id"] == first.json()["id"]
    assert store_values(moved.json())["currencyCode"] == "USD"
    assert store_values(moved.json())["cultureInfo"] == "en-US"
    public = browser.get("/api/sessions", params={"items": "public.*,checkout.*"}).json()["namespaces"]
    assert "checkout" not in public
    assert set(public["public"]) == {"utm_source", "supportedLocales", "__bindingId"}


# --- facets, the cart, regions --------------------------------------------------------------------


def test_search_facets_from_public_facets_and_the_location_reach_the_segment(browser):
    response = browser.post(
        "/api/sessions",
        json={"public": {"facets": {"value": "productClusterIds=138;"}, "country": {"value": "BRA"},
                         "geoCoordinates": {"value": "-46.6388,-23.5489"}}},
    )  # fmt: skip
    segment = decode_segment(response.json()["segmentToken"])
    assert segment["facets"] == "productClusterIds=138;country=BRA;coordinates=-46.6388,-23.5489;"
    assert segment["regionId"] == SAO_PAULO  # the coordinates are inside the sample's area
    document = browser.get("/api/sessions", params={"items": "search.facets,checkout.regionId"}).json()
    assert document["namespaces"] == {
        "search": {"facets": {"value": segment["facets"]}},
        "checkout": {"regionId": {"value": SAO_PAULO}},
    }


def test_coordinates_that_are_not_lon_lat_are_a_400_naming_the_field(browser):
    bad = browser.post("/api/sessions", json={"public": {"geoCoordinates": {"value": "north of here"}}})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_public_value"
    assert bad.json()["error"]["details"] == [{"path": "$.public.geoCoordinates"}]
    out_of_range = browser.post("/api/sessions?geoCoordinates=-23.5,-246.6", json={})
    assert out_of_range.status_code == 400
    assert out_of_range.json()["error"]["details"] == [{"path": "geoCoordinates"}]


def test_the_order_form_id_comes_from_the_checkout_cookie_or_a_public_key(worker):
    order_form = uuid.uuid4().hex
    with http_client(
        base_url=worker.url, timeout=15.0, cookies={"checkout.vtex.com": f"__ofid={order_form}"}
    ) as shopper:
        document = shopper.post("/api/sessions?items=checkout.orderFormId,checkout.cartId,cookie.*", json={}).json()
        assert document["namespaces"] == {
            "checkout": {"orderFormId": {"value": order_form}, "cartId": {"value": order_form}},
            "cookie": {"checkout.vtex.com": {"value": f"__ofid={order_form}"}},
        }
        sid = document["id"]
        count = event_count(worker, sid)
        # The same cookie again records nothing; a new cart does.
        shopper.patch("/api/sessions", json={})
        assert event_count(worker, sid) == count
        shopper.cookies.set("checkout.vtex.com", "__ofid=ffff")
        shopper.patch("/api/sessions", json={})
        assert shopper.get("/api/sessions", params={"items": "checkout.orderFormId"}).json()["namespaces"] == {
            "checkout": {"orderFormId": {"value": "ffff"}}
        }
        # A headless client names its cart: the public key wins over the cookie.
        shopper.patch("/api/sessions", json={"public": {"orderFormId": {"value": "explicit"}}})
        assert shopper.get("/api/sessions", params={"items": "checkout.cartId"}).json()["namespaces"] == {
            "checkout": {"cartId": {"value": "explicit"}}
        }


def test_a_checkout_cookie_too_long_to_record_is_left_out_not_refused(worker):
    with http_client(
        base_url=worker.url, timeout=15.0, cookies={"checkout.vtex.com": "__ofid=" + "a" * 5000}
    ) as shopper:
        answer = shopper.post("/api/sessions?items=cookie.*,checkout.orderFormId", json={})
        assert answer.status_code == 201, answer.text
        assert answer.json()["namespaces"] == {}


# --- cache semantics ------------------------------------------------------------------------------


def test_cache_control_of_session_and_segment_answers(browser):
    created = browser.post("/api/sessions", json={})
    assert created.headers["cache-control"] == "no-store"
    assert browser.get("/api/sessions", params={"items": "store.channel"}).headers["cache-control"] == "no-store"
    by_cookie = browser.get("/api/segments")
    assert by_cookie.headers["cache-control"] == "private, no-cache"
    assert by_cookie.headers["vary"] == "Cookie"
    token = created.json()["segmentToken"]
    by_token = browser.get(f"/api/segments/{quote(token, safe='')}")
    assert by_token.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert by_token.json() == decode_segment(token)


# --- impersonation --------------------------------------------------------------------------------


def test_a_telesales_operator_impersonates_a_customer_by_the_public_key(browser, identity_service):
    """VTEX's telesales guide: an operator's session sets ``vtex-impersonated-customer-email``;
    impersonate-session fills ``impersonate.*`` when the operator may, profile-session the customer."""
    sid = browser.post("/api/sessions?items=account.id", json={}).json()["id"]
    assert (
        identity_service.post("/api/events", json=logged_in(sid, "u-op", "operator@example.com", 1)).status_code == 202
    )
    wait_for_session(identity_service, sid, 2)
    answer = browser.patch(
        "/api/sessions?items=impersonate.*,profile.email,profile.priceTables",
        json={"public": {"vtex-impersonated-customer-email": {"value": "joao@example.com"}}},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["namespaces"] == {
        "impersonate": {"canImpersonate": {"value": "true"}, "storeUserEmail": {"value": "joao@example.com"}},
        "profile": {"email": {"value": "joao@example.com"}, "priceTables": {"value": "gold"}},
    }
    assert decode_segment(set_cookie(answer, "vtex_segment"))["priceTables"] == "gold"


def test_the_telesales_cookie_impersonates_too(worker, identity_service):
    """VTEX's telesales UI sets the ``vtex-impersonated-customer-email`` cookie; the session records it."""
    with http_client(base_url=worker.url, timeout=15.0) as operator:
        sid = operator.post("/api/sessions?items=account.id", json={}).json()["id"]
        login = logged_in(sid, "u-op", "operator@example.com", 1)
        assert identity_service.post("/api/events", json=login).status_code == 202
        wait_for_session(identity_service, sid, 2)
        operator.cookies.set("vtex-impersonated-customer-email", "buyer@example.com")
        answer = operator.patch("/api/sessions?items=impersonate.*,profile.id", json={})
        assert answer.status_code == 200, answer.text
        assert answer.json()["namespaces"] == {
            "impersonate": {
                "canImpersonate": {"value": "true"},
                "storeUserEmail": {"value": "buyer@example.com"},
                "storeUserId": {"value": "u-buyer"},
            },
            "profile": {"id": {"value": "u-buyer"}},
        }
