"""Conformance with the clients storefronts already run against the VTEX Session Manager.

Each test replays, request for request (method, path, query, headers, cookies, body), what one
function of a real client sends, against a real worker, broker and HTTP, and asserts what that
function's code then reads from the answer. The docstring of each test names the client, the
version read, the file and the function it follows. Sources read (public, not copied):

- node-vtex-api (github.com/vtex/node-vtex-api): ``src/clients/janus/Session.ts``,
  ``src/clients/janus/Segment.ts`` and ``src/clients/janus/JanusClient.ts`` at v6.45.4 (the last
  version that destructures the *first* ``Set-Cookie`` header: ``'set-cookie': [setCookies]``) and
  at v7.3.1 (looks through every ``Set-Cookie`` header for the cookie's name);
- FastStore (github.com/vtex/faststore): ``packages/api/src/platforms/vtex/clients/commerce/index.ts``,
  ``session(search)`` at v3.100.3 / 4.x (POST without a session cookie, else PATCH; body ``{}``), at
  v3.50.0 (its ``items`` ends with a comma) and ``session``/``getSessionOrder`` at v2.1.89;
- render-session (github.com/vtex-apps/render-session) v1.9.2, ``src/index.ts``;
- the examples of VTEX's OpenAPI document (github.com/vtex/openapi-schemas,
  ``VTEX - Session Manager API.json``).
"""

from __future__ import annotations

from urllib.parse import unquote

import httpx
import jwt
import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition

from projections.segment import encode_segment_token
from streams.devkit.events import logged_in
from tests.support.http import http_client
from tests.support.service_worker import NEW_SIGNING_KEY, OUTLET_HOST, TRUSTED_KEY
from tests.support.vtex_clients import FASTSTORE_ITEMS, RENDER_SESSION_ITEMS, decode_segment
from tests.support.workers import worker_client

pytestmark = pytest.mark.integration

FIVE_DAYS = 5 * 24 * 3600

# node-vtex-api Segment.ts: ALLOWED_QUERY_PREFIXES, the query keys rawSegment keeps (sorted).
SEGMENT_QUERY_PREFIXES = ("utm", "cultureInfo", "supportedLocales", "__bindingId")
# FastStore v3.50.0 sent the list with a trailing comma.
FASTSTORE_3_50_ITEMS = (
    "profile.id,profile.email,profile.firstName,profile.lastName,store.channel,store.countryCode,"
    "store.cultureInfo,store.currencyCode,store.currencySymbol,authentication.customerId,"
    "authentication.storeUserId,authentication.storeUserEmail,authentication.unitId,authentication.unitName,"
    "checkout.regionId,"
)
# VTEX's OpenAPI document, "VTEX - Session Manager API.json": the request examples and the key
# order of its segment example.
OPENAPI_CREATE_BODY = {"public": {"variable1": {"value": "value1"}, "variable2": {"value": "value2"}}}
OPENAPI_PATCH_BODY = {"public": {"variable2": {"value": "value2_patched"}, "variable3": {"value": "value3"}}}
OPENAPI_SEGMENT_KEYS = [
    "campaigns", "channel", "priceTables", "regionId", "utm_campaign", "utm_source", "utmi_campaign",
    "currencyCode", "currencySymbol", "countryCode", "cultureInfo", "channelPrivacy",
]  # fmt: skip


@pytest.fixture(scope="module")
def worker(service_worker):
    return service_worker  # this process's shared worker (tests/support/service_worker.py)


# An IO app's server-side HTTP client (its tests set every cookie by hand), and a browser.
janus = worker_client()
browser = worker_client()


def parse_cookie(header: str) -> dict[str, str]:
    """What the npm ``cookie`` package's ``parse`` makes of one header: every ``name=value`` pair,
    the first of a name winning, values percent-decoded, pairs without ``=`` skipped."""
    pairs: dict[str, str] = {}
    for part in header.split(";"):
        name, equals, value = part.partition("=")
        if equals and name.strip() and name.strip() not in pairs:
            pairs[name.strip()] = unquote(value.strip().strip('"'))
    return pairs


def first_set_cookie(response: httpx.Response, name: str) -> str | None:
    """node-vtex-api v6.45.4: ``headers: {'set-cookie': [setCookies]}``, then
    ``prop(name, parseCookie.parse(setCookies))``; no header at all throws in the client."""
    headers = response.headers.get_list("set-cookie")
    assert headers, "no Set-Cookie: node-vtex-api <= 6.45.4 throws (undefined is not iterable)"
    return parse_cookie(headers[0]).get(name)


def any_set_cookie(response: httpx.Response, name: str) -> str | None:
    """node-vtex-api v7.3.1: extractSessionCookie / extractSegmentCookie, the first header that has it."""
    for header in response.headers.get_list("set-cookie"):
        value = parse_cookie(header).get(name)
        if value is not None:
            return value
    return None


def claims_of(token: str, worker) -> dict:
    key = NEW_SIGNING_KEY  # the shared worker's current signing key
    return jwt.decode(token, key, algorithms=["HS256"])  # raises unless signed with the current key


def event_log_size(worker) -> int:
    """Records on the worker's event topic (sum of the partitions' high watermarks)."""
    topic = worker.env["SESSIONS_EVENTS_TOPIC"]
    consumer = Consumer({"bootstrap.servers": worker.env["SESSIONS_KAFKA_BOOTSTRAP"], "group.id": "probe"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions)
    finally:
        consumer.close()


def storefront_session(browser, **public: str) -> str:
    """A session made as a storefront makes it; its token."""
    body = {"public": {key: {"value": value} for key, value in public.items()}}
    response = browser.post("/api/sessions", json=body)
    assert response.status_code == 201, response.text
    return response.json()["sessionToken"]


# node-vtex-api --------------------------------------------------------------------------------


def test_node_vtex_api_session_get_session_gets_a_refreshed_token_from_the_first_set_cookie(janus, browser, worker):
    """node-vtex-api v6.45.4 and v7.3.1, src/clients/janus/Session.ts, ``Session.getSession``:
    GET /api/sessions?an=<account>&items=<items joined by ','>, ``Cookie: vtex_session=<token>;``;
    reads ``data`` as the session and the vtex_session of the first Set-Cookie as the new token."""
    token = storefront_session(browser, variable1="value1")
    response = janus.get(
        "/api/sessions",
        params={"an": "demo", "items": "public.variable1,store.channel"},
        headers={"Content-Type": "application/json", "Cookie": f"vtex_session={token};"},
    )
    assert response.status_code == 200, response.text
    refreshed = first_set_cookie(response, "vtex_session")
    assert refreshed is not None, response.headers.get_list("set-cookie")
    assert any_set_cookie(response, "vtex_session") == refreshed
    assert refreshed != token
    old, new = claims_of(token, worker), claims_of(refreshed, worker)
    assert new["id"] == old["id"] == response.json()["id"]
    assert new["jti"] != old["jti"] and new["exp"] - new["iat"] == FIVE_DAYS
    assert response.json()["namespaces"] == {
        "public": {"variable1": {"value": "value1"}},
        "store": {"channel": {"value": "1"}},
    }
    session_cookie = response.headers.get_list("set-cookie")[0].lower()
    for attribute in ("path=/", f"max-age={FIVE_DAYS}", "samesite=lax", "httponly"):
        assert attribute in session_cookie
    # The app keeps the refreshed token for its next call; it reads the same session.
    again = janus.get(
        "/api/sessions",
        params={"an": "demo", "items": "public.variable1"},
        headers={"Content-Type": "application/json", "Cookie": f"vtex_session={refreshed};"},
    )
    assert again.json()["id"] == old["id"]
    assert first_set_cookie(again, "vtex_session") not in (None, token, refreshed)


def test_node_vtex_api_session_update_session_writes_public_and_reads_the_document(janus, browser, worker):
    """node-vtex-api v7.3.1, src/clients/janus/Session.ts, ``Session.updateSession(key, value, items,
    token)``: POST /api/sessions?an=<account>&items=..., body ``{"public": {key: {"value": value}}}``,
    ``Cookie: vtex_session=<token>;``; the caller reads the answer's ``data``."""
    token = storefront_session(browser, kept="yes")
    response = janus.post(
        "/api/sessions",
        params={"an": "demo", "items": "public.kept,public.favoriteStore"},
        headers={"Content-Type": "application/json", "Cookie": f"vtex_session={token};"},
        content=orjson.dumps({"public": {"favoriteStore": {"value": {"id": 7, "open": True}}}}),
    )
    assert response.status_code == 201, response.text
    assert response.json() == {
        "id": claims_of(token, worker)["id"],
        "namespaces": {"public": {"kept": {"value": "yes"}, "favoriteStore": {"value": {"id": 7, "open": True}}}},
    }


def test_node_vtex_api_update_session_without_a_token_makes_a_session_of_the_an_account(janus):
    """node-vtex-api v7.3.1, Session.ts ``updateSession`` with no token sends the literal
    ``Cookie: vtex_session=undefined;``; JanusClient.ts adds ``an=<account>`` to every call, and
    that account is the new session's."""
    response = janus.post(
        "/api/sessions",
        params={"an": "outlet", "items": "account.accountName,store.currencyCode,public.*"},
        headers={"Content-Type": "application/json", "Cookie": "vtex_session=undefined;"},
        content=orjson.dumps({"public": {"device": {"value": "kiosk"}}}),
    )
    assert response.status_code == 201, response.text
    assert response.json()["namespaces"] == {
        "account": {"accountName": {"value": "outlet"}},
        "store": {"currencyCode": {"value": "USD"}},
        "public": {"device": {"value": "kiosk"}},  # `an` selects the account; it is not stored
    }
    assert decode_segment(any_set_cookie(response, "vtex_segment") or "")["currencyCode"] == "USD"


def test_an_account_this_deployment_does_not_serve_is_a_400_naming_an(janus):
    """JanusClient.ts sends ``an=<the IO app's account>``: one this deployment has no rules for is
    refused, never served another store's defaults."""
    response = janus.post("/api/sessions", params={"an": "elsewhere"}, json={})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_account"
    assert response.json()["error"]["details"] == [{"path": "an"}]
    malformed = janus.get("/api/segments", params={"an": "no spaces allowed"})
    assert malformed.status_code == 400
    assert malformed.json()["error"]["details"] == [{"path": "an"}]


def test_the_host_picks_the_account_when_there_is_no_an(worker):
    """One deployment, several stores: a storefront on another domain (no ``an``) gets the account
    SESSIONS_HOST_ACCOUNTS maps its Host to; any other Host the rules' default account."""
    with http_client(base_url=worker.url, timeout=15.0, headers={"Host": OUTLET_HOST}) as outlet:
        document = outlet.post("/api/sessions?items=account.accountName,store.channel", json={}).json()
        assert document["namespaces"] == {
            "account": {"accountName": {"value": "outlet"}},
            "store": {"channel": {"value": "2"}},
        }
    with http_client(base_url=worker.url, timeout=15.0, headers={"Host": f"{OUTLET_HOST}:443"}) as cookieless:
        assert cookieless.get("/api/segments").json()["currencyCode"] == "USD"
    with http_client(base_url=worker.url, timeout=15.0, headers={"Host": "shop.example"}) as other:
        document = other.post("/api/sessions?items=account.accountName", json={}).json()
        assert document["namespaces"] == {"account": {"accountName": {"value": "demo"}}}


def segment_token_with_slash_and_plus(utm_source_prefix: str) -> tuple[str, str]:
    """A utm_source whose default segment's token holds both "/" and "+" in standard base64."""
    for n in range(3):
        # "?" and ">" 3 bytes apart, so both land last in a 3-byte group (-> "/" and "+") for one
        # of the three shifts the dashes make.
        value = f"{utm_source_prefix}{'-' * n}?ab>"
        segment = dict.fromkeys(OPENAPI_SEGMENT_KEYS)
        segment.update(channel="1", currencyCode="BRL", currencySymbol="R$", countryCode="BRA")
        segment.update(cultureInfo="en-US", channelPrivacy="public", utm_source=value)
        token = encode_segment_token(segment)
        if "/" in token and "+" in token:
            return value, token
    raise AssertionError("no such value")


def test_node_vtex_api_segment_get_segment_by_token_with_the_token_unencoded_in_the_path(janus, browser):
    """node-vtex-api v6.45.4 and v7.3.1, src/clients/janus/Segment.ts, ``Segment.getSegmentByToken``
    (and ``getSegment``): GET /api/segments/<token> with the token as it is (``routes.segments``
    does not URL-encode it), ``session_path=<product>&workspace=<ws>&an=<account>``, headers
    ``Content-Type`` and ``x-vtex-product``; reads ``data``."""
    utm_source, expected_token = segment_token_with_slash_and_plus("news")
    created = browser.post("/api/sessions", params={"utm_source": utm_source}, json={})
    token = created.json()["segmentToken"]
    assert token == expected_token and "/" in token and "+" in token
    response = janus.get(
        f"/api/segments/{token}",
        params={"an": "demo", "session_path": "", "workspace": "master"},
        headers={"Content-Type": "application/json", "x-vtex-product": ""},
    )
    assert response.request.url.raw_path.decode().startswith(f"/api/segments/{token}?")  # sent unencoded
    assert response.status_code == 200, response.text
    assert response.json() == decode_segment(token)
    assert response.json()["utm_source"] == utm_source
    assert first_set_cookie(response, "vtex_segment") == token


def test_node_vtex_api_segment_get_or_create_segment_cookieless_makes_no_session(janus, worker):
    """node-vtex-api v6.45.4 and v7.3.1, src/clients/janus/Segment.ts, ``Segment.getOrCreateSegment
    (query)`` without a token: GET /api/segments with the query keys starting with utm, cultureInfo,
    supportedLocales or __bindingId (sorted), ``session_path``, ``workspace``, ``an``; no cookie
    at all. Reads ``data`` and the vtex_segment of the first Set-Cookie as the segment's token."""
    page_query = {"utm_campaign": "summer", "cultureInfo": "pt-BR", "supportedLocales": "pt-BR,en-US",
                  "__bindingId": "b-1", "q": "shoes"}  # fmt: skip
    kept = {key: page_query[key] for key in sorted(page_query) if key.startswith(SEGMENT_QUERY_PREFIXES)}
    before = event_log_size(worker)
    for _ in range(3):  # an IO app calls it on every render
        response = janus.get(
            "/api/segments",
            params={**kept, "session_path": "store", "workspace": "master", "an": "demo"},
            headers={"Content-Type": "application/json", "x-vtex-product": "store"},
        )
        assert response.status_code == 200, response.text
        segment = response.json()
        assert list(segment) == OPENAPI_SEGMENT_KEYS
        assert (segment["channel"], segment["currencyCode"]) == ("1", "BRL")  # the account's defaults
        assert (segment["cultureInfo"], segment["utm_campaign"]) == ("pt-BR", "summer")  # query overrides
        token = first_set_cookie(response, "vtex_segment")
        assert token is not None and decode_segment(token) == segment
        assert any_set_cookie(response, "vtex_session") is None
    assert event_log_size(worker) == before, "a cookieless segment read appended events (made a session)"
    # The token it kept, sent back as ``getOrCreateSegment(query, token)``, reads the same segment.
    by_token = janus.get(f"/api/segments/{token}", params={"session_path": "store", "workspace": "master"})
    assert by_token.json() == segment and first_set_cookie(by_token, "vtex_segment") == token


def test_node_vtex_api_get_or_create_segment_of_an_account(janus):
    """Segment.ts ``getOrCreateSegment`` through JanusClient.ts with ``an=outlet``: that store's
    default segment."""
    response = janus.get("/api/segments", params={"session_path": "", "workspace": "master", "an": "outlet"})
    assert response.status_code == 200
    assert (response.json()["channel"], response.json()["currencyCode"]) == ("2", "USD")
    assert decode_segment(first_set_cookie(response, "vtex_segment") or "")["countryCode"] == "USA"


def test_a_path_token_that_is_not_base64_is_a_400_whatever_its_characters(janus):
    """Segment.ts ``getSegmentByToken`` passes whatever token it holds into the path unencoded."""
    for bad in ("not/base64+at/all", "line%0Abreak", "%F0%9F%8D%AA"):
        response = janus.get(f"/api/segments/{bad}")
        assert response.status_code == 400, (bad, response.text)
        assert response.json()["error"]["details"] == [{"path": "segment_token"}]


def test_segment_answers_put_vtex_segment_first_whatever_the_cookies(browser):
    """Segment.ts (v6.45.4) reads only the first Set-Cookie of a segment answer, also when the
    request carries a session: the browser's own GET /api/segments."""
    storefront_session(browser)
    response = browser.get("/api/segments", params={"utm_source": "mail"})
    assert response.status_code == 200
    token = first_set_cookie(response, "vtex_segment")
    assert token is not None and decode_segment(token) == response.json()
    assert response.json()["utm_source"] == "mail"


# FastStore ------------------------------------------------------------------------------------


def test_faststore_session_post_with_only_the_auth_cookie_then_patch(janus, worker):
    """FastStore v3.100.3 / 4.x, packages/api/src/platforms/vtex/clients/commerce/index.ts,
    ``session(search)``: POST /api/sessions?<search>&items=<its list> when the shopper's cookies
    hold no vtex_session (here only an empty ``VtexIdclientAutCookie_<account>``: logged out),
    else PATCH; body ``{}``, ``content-type: application/json``; the answer is read as
    ``Session {id, namespaces}`` and its Set-Cookie headers are kept for the next call."""
    search = "utm_source=google&sc=1"
    first = janus.post(
        f"/api/sessions?{search}&items={FASTSTORE_ITEMS}",
        headers={"content-type": "application/json", "cookie": "VtexIdclientAutCookie_demo="},
        content=b"{}",
    )
    assert first.status_code == 201, first.text
    session = first.json()
    store = session["namespaces"]["store"]
    assert {key: store[key]["value"] for key in store} == {
        "channel": "1", "countryCode": "BRA", "cultureInfo": "en-US", "currencyCode": "BRL", "currencySymbol": "R$",
    }  # fmt: skip
    assert "checkout" not in session["namespaces"]  # absent keys are absent, as FastStore expects
    cookie = "; ".join(header.split(";", 1)[0] for header in first.headers.get_list("set-cookie"))
    assert cookie.startswith("vtex_session=")
    second = janus.patch(
        f"/api/sessions?{search}&items={FASTSTORE_ITEMS}",
        headers={"content-type": "application/json", "cookie": f"VtexIdclientAutCookie_demo=; {cookie}"},
        content=b"{}",
    )
    assert second.status_code == 200, second.text
    assert second.json()["id"] == session["id"]
    assert first_set_cookie(second, "vtex_session") is not None


def test_faststore_3_50_items_with_a_trailing_comma(janus):
    """FastStore v3.50.0, commerce/index.ts ``session(search)``: its ``items`` ends with ','."""
    response = janus.post(
        f"/api/sessions?items={FASTSTORE_3_50_ITEMS}", headers={"content-type": "application/json"}, content=b"{}"
    )
    assert response.status_code == 201, response.text
    assert response.json()["namespaces"]["store"]["channel"] == {"value": "1"}


def test_faststore_2_session_get_and_get_session_order(browser, janus):
    """FastStore v2.1.89, commerce/index.ts: ``session(search)`` GETs /api/sessions?items=... with
    the shopper's cookie header when it has a vtex_session (else POSTs ``{}``), and
    ``getSessionOrder()`` GETs /api/sessions?items=public.orderFormId; FastStore reads
    ``namespaces.public.orderFormId.value``."""
    token = storefront_session(browser, orderFormId="0a1b2c3d4e5f")
    cookies = f"vtex_session={token}; vtex_segment={browser.cookies['vtex_segment']}"
    order = janus.get(
        "/api/sessions?items=public.orderFormId", headers={"content-type": "application/json", "cookie": cookies}
    )
    assert order.status_code == 200
    assert order.json()["namespaces"]["public"]["orderFormId"]["value"] == "0a1b2c3d4e5f"
    session = janus.get(
        "/api/sessions?items=profile.id,profile.email,store.channel",
        headers={"content-type": "application/json", "cookie": cookies},
    )
    assert session.json()["id"] == order.json()["id"]
    assert session.json()["namespaces"] == {"store": {"channel": {"value": "1"}}}


# render-session -------------------------------------------------------------------------------


def render_session_initial_request(browser, search: str, binding_id: str = "binding-1") -> httpx.Response:
    """render-session v1.9.2 src/index.ts ``createInitialSessionRequest``."""
    items = f"{'&' if search else '?'}items={RENDER_SESSION_ITEMS}"
    url = f"/api/sessions{search}{items}&supportedLocales=en-US,pt-BR&__bindingId={binding_id}"
    return browser.post(url, content=b"{}", headers={"Content-Type": "application/json"})


def test_render_session_page_load_reads_is_authenticated(browser, worker):
    """render-session v1.9.2, src/index.ts: ``createInitialSessionRequest`` POSTs
    /api/sessions<location.search>&items=<ITEMS>&supportedLocales=...&__bindingId=... with body
    ``{}`` and the browser's cookies; src/refreshtoken.ts reads
    ``response.namespaces.profile.isAuthenticated.value === "true"``."""
    first = render_session_initial_request(browser, "?utm_source=google")
    assert first.status_code == 201, first.text
    namespaces = first.json()["namespaces"]
    assert namespaces["profile"]["isAuthenticated"]["value"] == "false"
    assert namespaces["account"]["accountName"] == {"value": "demo"}
    assert namespaces["public"]["utm_source"] == {"value": "google"}
    sid = first.json()["id"]
    with http_client(base_url=worker.url, headers={"Authorization": f"Bearer {TRUSTED_KEY}"}) as identity:
        assert identity.post("/api/events", json=logged_in(sid, "u-7", "joao@example.com", 1)).status_code == 202
    # The next page load: its own change folds after the login (same session, same partition).
    second = render_session_initial_request(browser, "")
    assert second.json()["id"] == sid
    assert second.json()["namespaces"]["profile"]["isAuthenticated"]["value"] == "true"
    assert second.json()["namespaces"]["authentication"]["storeUserEmail"] == {"value": "joao@example.com"}
    # What the README says: supportedLocales and __bindingId land in public, as VTEX copies them.
    public = browser.get("/api/sessions", params={"items": "public.*"}).json()["namespaces"]["public"]
    assert public["supportedLocales"] == {"value": "en-US,pt-BR"} and public["__bindingId"] == {"value": "binding-1"}


def test_render_session_clear_session_then_a_new_one(browser):
    """render-session v1.9.2, src/index.ts, on a binding change: ``clearSession`` GETs
    /api/sessions/invalidToken?items=* (the browser keeps the fresh cookie it gets), then
    ``createInitialSessionRequest``; and ``patchSession`` PATCHes /api/sessions<search>."""
    old = render_session_initial_request(browser, "").json()["id"]
    cleared = browser.get("/api/sessions/invalidToken?items=*", headers={"Content-Type": "application/json"})
    assert cleared.status_code == 200
    assert cleared.json()["id"] != old
    assert first_set_cookie(cleared, "vtex_session") == browser.cookies["vtex_session"]
    fresh = render_session_initial_request(browser, "", binding_id="binding-2")
    assert fresh.json()["id"] == cleared.json()["id"]
    patched = browser.patch(
        "/api/sessions?utm_medium=email",
        content=orjson.dumps({"public": {"cultureInfo": {"value": "pt-BR"}}}),
        headers={"Content-Type": "application/json"},
    )
    assert patched.status_code == 200
    assert decode_segment(patched.json()["segmentToken"])["cultureInfo"] == "pt-BR"


# VTEX's OpenAPI document ----------------------------------------------------------------------


def test_openapi_document_examples(browser):
    """vtex/openapi-schemas, "VTEX - Session Manager API.json": CreateNewSession (POST, its example
    body, 201 {sessionToken, segmentToken} and both cookies), GetSession (items=*), EditSession
    (PATCH, its example body, 200) and GetSegment (its example's keys, in that order)."""
    created = browser.post("/api/sessions", json=OPENAPI_CREATE_BODY)
    assert created.status_code == 201
    assert set(created.json()) == {"sessionToken", "segmentToken"}
    assert browser.cookies["vtex_session"] == created.json()["sessionToken"]
    assert browser.cookies["vtex_segment"] == created.json()["segmentToken"]
    document = browser.get("/api/sessions", params={"items": "*"}).json()
    assert set(document) == {"id", "namespaces"}
    assert document["namespaces"]["public"] == OPENAPI_CREATE_BODY["public"]
    assert document["namespaces"]["account"]["accountName"] == {"value": "demo"}
    assert set(document["namespaces"]["store"]) >= {
        "channel", "countryCode", "cultureInfo", "currencyCode", "currencySymbol", "channelPrivacy",
    }  # fmt: skip
    patched = browser.patch("/api/sessions", json=OPENAPI_PATCH_BODY)
    assert patched.status_code == 200 and set(patched.json()) == {"sessionToken", "segmentToken"}
    public = browser.get("/api/sessions", params={"items": "public.*"}).json()["namespaces"]["public"]
    assert public == {**OPENAPI_CREATE_BODY["public"], **OPENAPI_PATCH_BODY["public"]}
    segment = browser.get("/api/segments")
    assert list(segment.json()) == OPENAPI_SEGMENT_KEYS
    assert list(decode_segment(patched.json()["segmentToken"])) == OPENAPI_SEGMENT_KEYS
