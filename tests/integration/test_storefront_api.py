"""The VTEX-compatible storefront API against a real worker, broker and HTTP, with the sample rules.

Each test plays a storefront: an httpx client with a cookie jar, as a browser keeps cookies.
"""

from __future__ import annotations

import base64
import time
import uuid
from urllib.parse import quote

import jwt
import orjson
import pytest

from streams.devkit.events import cart_item_added, logged_in, logged_out, page_view, public_set
from tests.support.dead_letters import read_dead_letters, reason
from tests.support.http import http_client
from tests.support.service_worker import NEW_SIGNING_KEY, TRUSTED_KEY
from tests.support.sessions import public_has, wait_for_session
from tests.support.tokens import tampered
from tests.support.vtex_clients import decode_segment
from tests.support.workers import worker_client

pytestmark = pytest.mark.integration

FIVE_DAYS = 5 * 24 * 3600


@pytest.fixture(scope="module")
def worker(service_worker):
    return service_worker  # this process's shared worker (tests/support/service_worker.py)


browser = worker_client()
identity_service = worker_client(Authorization=f"Bearer {TRUSTED_KEY}")


def session_id_of(token: str) -> str:
    return jwt.decode(token, options={"verify_signature": False})["id"]


def public_values(document: dict) -> dict:
    return {k: v["value"] for k, v in document["namespaces"].get("public", {}).items()}


def test_create_with_two_public_variables_and_read_them_back(browser):
    created = browser.post(
        "/api/sessions", json={"public": {"variable1": {"value": "value1"}, "variable2": {"value": "value2"}}}
    )
    assert created.status_code == 201, created.text
    tokens = created.json()
    assert set(tokens) == {"sessionToken", "segmentToken"}
    assert browser.cookies["vtex_session"] == tokens["sessionToken"]
    assert browser.cookies["vtex_segment"] == tokens["segmentToken"]

    read = browser.get("/api/sessions", params={"items": "public.variable1,public.variable2"})
    assert read.status_code == 200
    assert read.json() == {
        "id": session_id_of(tokens["sessionToken"]),
        "namespaces": {"public": {"variable1": {"value": "value1"}, "variable2": {"value": "value2"}}},
    }


def test_cookies_carry_the_documented_attributes(browser):
    response = browser.post("/api/sessions", json={})
    cookies = {c.split("=", 1)[0]: c.lower() for c in response.headers.get_list("set-cookie")}
    assert "httponly" in cookies["vtex_session"]
    assert "httponly" not in cookies["vtex_segment"]
    for cookie in cookies.values():
        assert "path=/" in cookie
        assert "samesite=lax" in cookie
        assert f"max-age={FIVE_DAYS}" in cookie
    claims = jwt.decode(response.json()["sessionToken"], options={"verify_signature": False})
    assert claims["sub"] == "session"
    assert claims["exp"] - claims["iat"] == FIVE_DAYS
    assert {"id", "version", "jti"} <= set(claims)


def test_patch_merges_and_keeps_the_session_id(browser):
    browser.post("/api/sessions", json={"public": {"variable1": {"value": "value1"}, "variable2": {"value": "value2"}}})
    first_id = session_id_of(browser.cookies["vtex_session"])
    patched = browser.patch(
        "/api/sessions",
        json={"public": {"variable2": {"value": "value2_patched"}, "variable3": {"value": "value3"}}},
    )
    assert patched.status_code == 200
    assert set(patched.json()) == {"sessionToken", "segmentToken"}
    document = browser.get("/api/sessions", params={"items": "public.*"}).json()
    assert document["id"] == first_id
    assert public_values(document) == {"variable1": "value1", "variable2": "value2_patched", "variable3": "value3"}


def test_values_keep_their_json_type(browser):
    browser.post("/api/sessions", json={"public": {"n": {"value": 3}, "o": {"value": {"a": [1, True]}}}})
    document = browser.get("/api/sessions", params={"items": "public.n,public.o"}).json()
    assert public_values(document) == {"n": 3, "o": {"a": [1, True]}}


def test_non_public_namespaces_in_the_body_are_ignored(browser):
    browser.post(
        "/api/sessions",
        json={
            "public": {"kept": {"value": "yes"}},
            "profile": {"isAuthenticated": {"value": "true"}, "priceTables": {"value": "gold"}},
            "store": {"channel": {"value": "9"}},
        },
    )
    document = browser.get("/api/sessions", params={"items": "*"}).json()
    namespaces = document["namespaces"]
    assert public_values(document) == {"kept": "yes"}
    assert namespaces["profile"] == {"isAuthenticated": {"value": "false"}}
    assert namespaces["store"]["channel"] == {"value": "1"}


def test_the_query_string_lands_in_public_and_the_utms_in_the_segment(browser):
    response = browser.post("/api/sessions?utm_source=google&utm_campaign=summer&utmi_cp=banner&sc=1", json={})
    assert response.status_code == 201
    segment = decode_segment(response.json()["segmentToken"])
    assert segment["utm_source"] == "google"
    assert segment["utm_campaign"] == "summer"
    assert segment["utmi_campaign"] == "banner"
    document = browser.get("/api/sessions", params={"items": "public.*"}).json()
    assert public_values(document) == {"utm_source": "google", "utm_campaign": "summer", "utmi_cp": "banner", "sc": "1"}
    assert browser.get("/api/segments").json() == segment


def test_a_new_session_has_the_store_defaults_and_the_vtex_default_segment(browser):
    response = browser.post("/api/sessions", json={})
    assert decode_segment(response.json()["segmentToken"]) == {
        "campaigns": None,
        "channel": "1",
        "priceTables": None,
        "regionId": None,
        "utm_campaign": None,
        "utm_source": None,
        "utmi_campaign": None,
        "currencyCode": "BRL",
        "currencySymbol": "R$",
        "countryCode": "BRA",
        "cultureInfo": "en-US",
        "channelPrivacy": "public",
    }
    store = browser.get("/api/sessions", params={"items": "store.*"}).json()["namespaces"]["store"]
    assert store["currencySymbol"] == {"value": "R$"}


def test_segment_overrides_change_the_response_only(browser):
    browser.post("/api/sessions?utm_source=google", json={})
    overridden = browser.get("/api/segments", params={"utm_source": "override", "cultureInfo": "pt-BR"}).json()
    assert overridden["utm_source"] == "override"
    assert overridden["cultureInfo"] == "pt-BR"
    plain = browser.get("/api/segments").json()
    assert plain["utm_source"] == "google"
    assert plain["cultureInfo"] == "en-US"
    assert public_values(browser.get("/api/sessions", params={"items": "public.*"}).json()) == {"utm_source": "google"}
    token = quote(browser.cookies["vtex_segment"], safe="")  # standard base64 may hold "/" and "+"
    by_token = browser.get(f"/api/segments/{token}", params={"utm_campaign": "x"}).json()
    assert by_token["utm_campaign"] == "x"
    assert by_token["utm_source"] == "google"


def test_a_campaign_link_puts_the_promotional_price_table_on_the_session(browser):
    response = browser.post("/api/sessions?utm_source=newsletter&utm_campaign=blackfriday", json={})
    segment = decode_segment(response.json()["segmentToken"])
    assert segment["campaigns"] == "blackfriday"
    assert segment["priceTables"] == "promo-bf"
    document = browser.get("/api/sessions", params={"items": "profile.priceTables,rnb.campaigns"}).json()
    assert document["namespaces"] == {
        "profile": {"priceTables": {"value": "promo-bf"}},
        "rnb": {"campaigns": {"value": "blackfriday"}},
    }


def test_a_page_view_event_with_a_campaign_changes_the_segment(browser, worker):
    browser.post("/api/sessions", json={})
    sid = session_id_of(browser.cookies["vtex_session"])
    event = page_view(sid, "https://shop.example/?utm_campaign=blackfriday")
    assert browser.post("/api/events", json=event).status_code == 202
    with http_client(base_url=worker.url) as service:
        wait_for_session(service, sid, 2)
    assert browser.get("/api/segments").json()["priceTables"] == "promo-bf"


def test_region_from_country_and_postal_code(browser):
    browser.post("/api/sessions", json={})
    response = browser.patch(
        "/api/sessions", json={"public": {"country": {"value": "BRA"}, "postalCode": {"value": "04561000"}}}
    )
    assert decode_segment(response.json()["segmentToken"])["regionId"] == "v2.1BB18CE648B5111D0933734ED83EC783"
    document = browser.get("/api/sessions", params={"items": "checkout.regionId"}).json()
    assert document["namespaces"] == {"checkout": {"regionId": {"value": "v2.1BB18CE648B5111D0933734ED83EC783"}}}


def test_identification_without_login_gives_only_the_price_tables(browser):
    browser.post("/api/sessions", json={})
    browser.patch("/api/sessions", json={"public": {"storeUserEmail": {"value": "joao@example.com"}}})
    profile = browser.get("/api/sessions", params={"items": "profile.*"}).json()["namespaces"]["profile"]
    assert profile == {"priceTables": {"value": "gold"}, "isAuthenticated": {"value": "false"}}


def wait_for_profile(browser, expected_auth: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        document = browser.get("/api/sessions", params={"items": "profile.*,authentication.*"}).json()
        if document["namespaces"].get("profile", {}).get("isAuthenticated", {}).get("value") == expected_auth:
            return document
        assert time.monotonic() < deadline, f"isAuthenticated never became {expected_auth}: {document}"
        time.sleep(0.05)


def test_login_then_logout_flips_is_authenticated_with_the_same_session_id(browser, identity_service):
    browser.post("/api/sessions", json={})
    sid = session_id_of(browser.cookies["vtex_session"])
    assert browser.get("/api/sessions", params={"items": "profile.isAuthenticated"}).json()["namespaces"] == {
        "profile": {"isAuthenticated": {"value": "false"}}
    }
    login = logged_in(sid, "user-42", "joao@example.com", 1, firstName="João")
    assert identity_service.post("/api/events", json=login).status_code == 202
    document = wait_for_profile(browser, "true")
    assert document["id"] == sid
    assert document["namespaces"]["authentication"] == {
        "storeUserId": {"value": "user-42"},
        "storeUserEmail": {"value": "joao@example.com"},
    }
    assert document["namespaces"]["profile"]["priceTables"] == {"value": "gold"}
    assert browser.get("/api/segments").json()["priceTables"] == "gold"

    assert identity_service.post("/api/events", json=logged_out(sid, 2)).status_code == 202
    document = wait_for_profile(browser, "false")
    assert document["id"] == sid
    assert "authentication" not in document["namespaces"]
    assert "firstName" not in document["namespaces"]["profile"]


def test_storefronts_cannot_emit_login_events(browser):
    browser.post("/api/sessions", json={})
    sid = session_id_of(browser.cookies["vtex_session"])
    response = browser.post("/api/events", json=logged_in(sid, "intruder", "evil@example.com"))
    assert response.status_code == 403
    assert response.json()["error"]["details"] == [
        {"index": 0, "path": "$.type", "message": "auth.logged_in needs a trusted service key"}
    ]


def test_a_tampered_token_gets_a_fresh_session_and_never_the_original_data(browser, worker):
    browser.post("/api/sessions", json={"public": {"secret": {"value": "original-only"}}})
    original = browser.cookies["vtex_session"]
    original_id = session_id_of(original)
    header, payload, signature = original.split(".")
    claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged_payload = base64.urlsafe_b64encode(orjson.dumps({**claims, "version": 99})).rstrip(b"=").decode()
    key = NEW_SIGNING_KEY  # the shared worker's current signing key
    expired = jwt.encode({**claims, "iat": 1, "exp": 2}, key, algorithm="HS256")
    wrong_key = jwt.encode(claims, "x" * 64, algorithm="HS256")
    for bad in [
        f"{header}.{forged_payload}.{signature}",
        f"{header}.{payload}.{tampered(signature)}",
        expired,
        wrong_key,
    ]:
        with http_client(base_url=worker.url, timeout=15.0, cookies={"vtex_session": bad}) as attacker:
            document = attacker.get("/api/sessions", params={"items": "*"}).json()
            assert document["id"] != original_id
            assert "secret" not in public_values(document)
            edited = attacker.post("/api/sessions?items=*", json={"public": {"secret": {"value": "overwritten"}}})
            assert edited.json()["id"] not in (original_id,)
    # The original is untouched.
    assert public_values(browser.get("/api/sessions", params={"items": "public.secret"}).json()) == {
        "secret": "original-only"
    }


def test_read_your_writes_every_time(browser):
    browser.post("/api/sessions", json={})
    for n in range(15):
        browser.patch("/api/sessions", json={"public": {"counter": {"value": n}}})
        document = browser.get("/api/sessions", params={"items": "public.counter"}).json()
        assert public_values(document) == {"counter": n}


def test_items_on_a_write_return_the_document(browser):
    response = browser.post("/api/sessions?items=public.a,store.channel", json={"public": {"a": {"value": "b"}}})
    assert response.status_code == 201
    assert response.json()["namespaces"] == {"public": {"a": {"value": "b"}}, "store": {"channel": {"value": "1"}}}
    assert browser.cookies.get("vtex_session")


def test_the_token_in_the_path_edits_that_session(browser, worker):
    token = browser.post("/api/sessions", json={"public": {"x": {"value": "1"}}}).json()["sessionToken"]
    with http_client(base_url=worker.url, timeout=15.0) as server_side:  # no cookie jar
        edited = server_side.post(f"/api/sessions/{token}?items=public.*", json={"public": {"y": {"value": "2"}}})
        assert edited.status_code == 201
        assert edited.json()["id"] == session_id_of(token)
        assert public_values(edited.json()) == {"x": "1", "y": "2"}


def test_get_without_a_cookie_starts_a_session(browser):
    response = browser.get("/api/sessions", params={"items": "store.channel"})
    assert response.status_code == 200
    assert response.json()["namespaces"] == {"store": {"channel": {"value": "1"}}}
    assert session_id_of(browser.cookies["vtex_session"]) == response.json()["id"]


@pytest.mark.parametrize(
    ("method", "url", "kwargs", "status", "code"),
    [
        ("GET", "/api/sessions", {}, 400, "missing_items"),
        ("GET", "/api/sessions?items=public", {}, 400, "invalid_items"),
        (
            "POST",
            "/api/sessions",
            {"content": b"{nope", "headers": {"content-type": "application/json"}},
            400,
            "malformed_json",
        ),
        ("POST", "/api/sessions", {"json": {"public": []}}, 400, "invalid_body"),
        ("POST", "/api/sessions", {"json": {"public": {"k": "bare"}}}, 400, "invalid_body"),
        (
            "POST",
            "/api/sessions",
            {"content": b"k=v", "headers": {"content-type": "text/plain"}},
            415,
            "unsupported_media_type",
        ),
        ("GET", "/api/segments/%25%25notbase64", {}, 400, "invalid_segment_token"),
    ],
)
def test_bad_requests_get_json_4xx(browser, method, url, kwargs, status, code):
    response = browser.request(method, url, **kwargs)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_changes_too_large_for_the_log_or_the_table_are_413s_and_nothing_is_appended(browser):
    browser.post("/api/sessions", json={"public": {"kept": {"value": "yes"}}})
    response = browser.patch("/api/sessions", json={"public": {"big": {"value": "x" * 70_000}}})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "event_too_large"
    for n in range(5):  # each 60 KB change fits the event limit; the fifth overgrows the 256 KiB session
        response = browser.patch("/api/sessions", json={"public": {f"chunk{n}": {"value": "y" * 60_000}}})
        if response.status_code == 413:
            break
        assert response.status_code == 200
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "session_too_large"
    document = browser.get("/api/sessions", params={"items": "public.*"}).json()
    assert set(public_values(document)) == {"kept", "chunk0", "chunk1", "chunk2", "chunk3"}


def test_an_event_that_would_overgrow_a_session_is_dead_lettered_and_the_worker_goes_on(
    identity_service, browser, worker, kafka_bootstrap
):
    browser.post("/api/sessions", json={})
    sid = session_id_of(browser.cookies["vtex_session"])
    big = [public_set(sid, {f"chunk{n}": "z" * 60_000}, n) for n in range(5)]
    for event in big:
        assert identity_service.post("/api/events", json=event).status_code == 202
    marker = public_set(sid, {"after": "the refused one"}, 10)
    assert identity_service.post("/api/events", json=marker).status_code == 202
    document, _ = wait_for_session(identity_service, sid, public_has("after"))
    assert set(public_values(document)) == {"chunk0", "chunk1", "chunk2", "chunk3", "after"}
    assert document["meta"]["eventCount"] == 6  # session.created, four chunks, the marker
    # The refused one is on the dead-letter topic, with why.
    topic = worker.env["SESSIONS_EVENTS_TOPIC"]
    letters = read_dead_letters(kafka_bootstrap, topic, lambda found: any(m.key() == sid.encode() for m in found))
    [letter] = [m for m in letters if m.key() == sid.encode()]
    assert orjson.loads(letter.value())["id"] == big[4]["id"]
    assert "the session would grow over" in reason(letter)


def test_an_event_over_64_kib_is_a_413_and_nothing_of_the_batch_is_appended(identity_service):
    sid = str(uuid.uuid4())
    small = public_set(sid, {"small": "1"}, 0)
    big = public_set(sid, {"big": "x" * 70_000}, 1)
    response = identity_service.post("/api/events", json=[small, big])
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["code"] == "event_too_large"
    assert [(detail["index"], detail["path"]) for detail in error["details"]] == [(1, "$")]
    assert identity_service.post("/api/events", json=public_set(sid, {"later": "1"}, 5)).status_code == 202
    document, _ = wait_for_session(identity_service, sid, public_has("later"))
    assert document["meta"]["eventCount"] == 1
    assert public_values(document) == {"later": "1"}


def test_an_event_without_subject_goes_to_the_cookies_session(browser, identity_service):
    browser.post("/api/sessions", json={})
    sid = session_id_of(browser.cookies["vtex_session"])
    event = page_view(sid, "https://shop.example/p?from_cookie=yes")
    del event["subject"]
    response = browser.post("/api/events", json=event)
    assert response.status_code == 202, response.text
    document, _ = wait_for_session(identity_service, sid, public_has("from_cookie"))
    assert document["id"] == sid
    assert public_values(document) == {"from_cookie": "yes"}
    # Without a cookie there is no session to take it from: the event is refused, naming the field.
    with http_client(base_url=str(browser.base_url), timeout=15.0) as stranger:
        response = stranger.post("/api/events", json=event)
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["path"] == "$.subject"


def test_a_storefront_adds_cart_items_to_its_own_session(browser):
    browser.post("/api/sessions", json={})
    sid = session_id_of(browser.cookies["vtex_session"])
    item = cart_item_added(sid, "sku-1", 3, 19.9, "BRL")
    del item["subject"]
    assert browser.post("/api/events", json=item).status_code == 202
    deadline = time.monotonic() + 30
    while "cart" not in (document := browser.get("/api/sessions", params={"items": "cart.*"}).json())["namespaces"]:
        assert time.monotonic() < deadline, document
        time.sleep(0.05)
    assert document["namespaces"]["cart"] == {
        "cartItems": {"value": 3},
        "cartValue": {"value": 59.7},
        "cartCurrency": {"value": "BRL"},
    }
    # Clients write only public: a cart in the body is ignored.
    browser.patch("/api/sessions", json={"cart": {"cartItems": {"value": 0}}, "public": {"x": {"value": 1}}})
    assert browser.get("/api/sessions", params={"items": "cart.cartItems"}).json()["namespaces"] == {
        "cart": {"cartItems": {"value": 3}}
    }
