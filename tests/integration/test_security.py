"""Service access, the storefront boundary and session tokens against a real worker.

- Every route states its access where it is declared (``@requires(scope)`` / ``@public()``,
  ``streams.web.service_auth``); the OpenAPI document states the same in ``x-scope`` and
  ``security``. The table below is the document: a route with no declared access, or a declared
  scope the worker does not enforce, fails here.
- A storefront (no key) posts only storefront event types, and with a cookie only for its session.
- A forged, expired, ``alg: none``, wrongly signed or rotated-out token never reads or edits a session.
"""

from __future__ import annotations

import time
import uuid
from contextlib import closing
from pathlib import Path

import jwt
import orjson
import pytest

from streams.config.settings import Settings
from streams.control.app import create_engine
from streams.devkit.events import logged_in, page_view
from streams.devkit.paths import SAMPLE_RULES_FILE
from streams.devkit.workers import SERVICE_HEADERS
from streams.web.tokens import SessionTokens
from tests.support.http import HttpClient, http_client
from tests.support.service_worker import ALL_BUT, NEW_SIGNING_KEY, OLD_SIGNING_KEY, ONLY
from tests.support.sessions import public_has, wait_for_session
from tests.support.tokens import tampered
from tests.support.workers import worker_client

pytestmark = pytest.mark.integration

DOCUMENT = orjson.loads((Path(__file__).resolve().parents[2] / "streams" / "web" / "openapi.json").read_bytes())
METHODS = {"get", "put", "post", "delete", "patch"}
OPERATIONS = sorted(
    (method.upper(), path, operation)
    for path, item in DOCUMENT["paths"].items()
    for method, operation in item.items()
    if method in METHODS
)
GONE_SIGNING_KEY = "gone-signing-key-" + uuid.uuid4().hex + uuid.uuid4().hex


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def worker(service_worker):
    return service_worker  # this process's shared worker (tests/support/service_worker.py)


client = worker_client()


def session_id_of(token: str) -> str:
    return jwt.decode(token, options={"verify_signature": False})["id"]


# --- every route states its access, the document says the same, the worker enforces it ----------


def test_every_route_declares_its_access_and_the_document_states_it(tmp_path):
    engine = create_engine(Settings(data_dir=tmp_path, partitions=1, web_port=1, rules_file=str(SAMPLE_RULES_FILE)))
    routes = {(r.method, r.resource.canonical) for r in engine.app.web.web_app.router.routes() if r.method != "HEAD"}
    assert set(engine.access) == routes, "a route registered without @requires/@public"
    assert {(method, path) for method, path, _ in OPERATIONS} == routes
    for method, path, operation in OPERATIONS:
        access = engine.access[(method, path)]
        assert operation.get("x-scope") == access.label, (method, path)
        assert operation.get("x-scope-elevated") == access.elevated, (method, path)
        if access.scope is not None:
            expected = [{"serviceKey": [access.scope]}]
            if access.elevated is not None:  # ?at= of a session read: sessions:history instead
                expected.append({"serviceKey": [access.elevated]})
        elif access.elevated is not None:
            expected = [{}, {"serviceKey": [access.elevated]}]
        else:
            expected = []
        assert operation.get("security") == expected, (method, path)
        if access.scope is not None:
            assert {"401", "403"} <= set(operation["responses"]), (method, path)


def sample_request(method: str, path: str) -> tuple[str, dict]:
    url = path.format(session_id=str(uuid.uuid4()), session_token="not-a-token", segment_token="e30")
    kwargs: dict = {"params": {"items": "*"}}
    if method in ("POST", "PATCH", "PUT"):
        kwargs["json"] = page_view(str(uuid.uuid4()), "https://shop.example/") if path == "/api/events" else {}
    return url, kwargs


@pytest.mark.parametrize(("method", "path", "operation"), OPERATIONS, ids=[f"{m} {p}" for m, p, _ in OPERATIONS])
def test_each_route_enforces_the_scope_it_declares(client, method, path, operation):
    scope = operation["x-scope"]
    url, kwargs = sample_request(method, path)
    if scope == "public":
        answer = client.request(method, url, **kwargs)
        assert answer.status_code not in (401, 403), answer.text
    else:
        for headers in ({}, bearer("not-a-configured-key-" + uuid.uuid4().hex), {"Authorization": "Basic eDp5"}):
            answer = client.request(method, url, headers=headers, **kwargs)
            assert answer.status_code == 401, (headers, answer.text)
            assert answer.headers["WWW-Authenticate"].startswith("Bearer")
            assert answer.json()["error"]["code"] == "unauthorized"
        answer = client.request(method, url, headers=bearer(ALL_BUT[scope]), **kwargs)
        assert answer.status_code == 403, answer.text
        assert answer.json()["error"]["code"] == "forbidden"
        answer = client.request(method, url, headers=bearer(ONLY[scope]), **kwargs)
        assert answer.status_code not in (401, 403), answer.text
    elevated = operation.get("x-scope-elevated")
    if elevated is not None and scope != "public":  # GET a session ?at= or ?after=: sessions:history
        assert (method, path) == ("GET", "/api/v1/sessions/{session_id}")
        for past in ({"at": "2026-11-26T12:00:00Z"}, {"after": str(uuid.uuid4())}):
            assert client.get(url, params=past).status_code == 401
            assert client.get(url, params=past, headers=bearer(ONLY[scope])).status_code == 403
            assert client.get(url, params=past, headers=bearer(ALL_BUT[elevated])).status_code == 403
            answer = client.get(url, params=past, headers=bearer(ONLY[elevated]))
            assert answer.status_code == 404 and answer.json()["error"]["code"] == "session_not_found", answer.text
    elif elevated is not None:  # POST /api/events: a trusted event needs events:trusted
        assert (method, path) == ("POST", "/api/events")
        event = logged_in(str(uuid.uuid4()), "user-1", "someone@example.com")
        assert client.post(url, json=event).status_code == 403
        assert client.post(url, json=event, headers=bearer(ALL_BUT[elevated])).status_code == 403
        assert client.post(url, json=event, headers=bearer(ONLY[elevated])).status_code == 202
        unknown = client.post(url, json=event, headers=bearer("not-a-configured-key-" + uuid.uuid4().hex))
        assert unknown.status_code == 401 and unknown.headers["WWW-Authenticate"].startswith("Bearer")


# --- the storefront boundary -----------------------------------------------------------------------


def new_session(worker, marker: str) -> tuple[HttpClient, str]:
    browser = http_client(base_url=worker.url, timeout=15.0)
    browser.post("/api/sessions", json={"public": {"owner": {"value": marker}}})
    return browser, session_id_of(browser.cookies["vtex_session"])


def test_a_storefront_cookie_posts_only_for_its_own_session(worker, client):
    alice, alice_id = new_session(worker, "alice")
    bob, bob_id = new_session(worker, "bob")
    with closing(alice), closing(bob):
        for event in (page_view(bob_id, "https://shop.example/?owner=x"), page_view(bob_id, "https://x.example/")):
            answer = alice.post("/api/events", json=event)
            assert answer.status_code == 403, answer.text
            assert answer.json()["error"]["code"] == "forbidden_subject"
        # A batch with one foreign event appends none of it.
        batch = [page_view(alice_id, "https://shop.example/?mine=1"), page_view(bob_id, "https://shop.example/?x=1")]
        assert alice.post("/api/events", json=batch).status_code == 403
        # Its own session: accepted. Without a cookie (a server-side emitter), the named session.
        assert alice.post("/api/events", json=page_view(alice_id, "https://shop.example/?done=a")).status_code == 202
        assert client.post("/api/events", json=page_view(bob_id, "https://shop.example/?done=b")).status_code == 202
        alice_doc, _ = wait_for_session(client, alice_id, public_has("done"))
        bob_doc, _ = wait_for_session(client, bob_id, public_has("done"))
        assert "mine" not in alice_doc["namespaces"]["public"]
        assert bob_doc["namespaces"]["public"]["owner"]["value"] == "bob"
        assert "x" not in bob_doc["namespaces"]["public"]


def test_the_storefront_api_never_returns_another_sessions_data(worker):
    alice, alice_id = new_session(worker, "alice-secret")
    bob, bob_id = new_session(worker, "bob-secret")
    with closing(alice), closing(bob):
        for url in ("/api/sessions", f"/api/sessions/{alice.cookies['vtex_session']}"):
            document = alice.get(url, params={"items": "*"}).json()
            assert document["id"] == alice_id
            assert "bob-secret" not in orjson.dumps(document).decode()
        written = alice.patch("/api/sessions", params={"items": "*"}, json={"public": {"x": {"value": 1}}}).json()
        assert written["id"] == alice_id and "bob-secret" not in orjson.dumps(written).decode()
        for url in ("/api/segments", "/api/sessions"):
            answer = alice.get(url, params={"items": "*"})
            assert bob_id not in answer.text and "bob-secret" not in answer.text
        # The storefront has no route by session id: the service read needs a key.
        assert alice.get(f"/api/v1/sessions/{bob_id}").status_code == 401


# --- tokens ------------------------------------------------------------------------------------------


def forged_tokens(sid: str) -> dict[str, str]:
    now = int(time.time())
    claims = {"id": sid, "version": 1, "sub": "session", "iat": now, "exp": now + 600, "jti": "x"}
    gone = SessionTokens([GONE_SIGNING_KEY], 600).issue(sid, 1)
    header, payload, signature = SessionTokens([NEW_SIGNING_KEY], 600).issue(sid, 1).split(".")
    return {
        "alg-none": jwt.encode(claims, None, algorithm="none"),
        "other-algorithm": jwt.encode(claims, NEW_SIGNING_KEY, algorithm="HS512"),
        "expired": SessionTokens([NEW_SIGNING_KEY], 600).issue(sid, 1, now=now - 601),
        "wrongly-signed": jwt.encode(claims, "w" * 64, algorithm="HS256"),
        "rotated-out": gone,
        "tampered-signature": f"{header}.{payload}.{tampered(signature)}",
    }


def test_bad_tokens_never_read_or_edit_a_session(worker, client):
    owner, sid = new_session(worker, "the-owner")
    with closing(owner):
        for name, token in forged_tokens(sid).items():
            with http_client(base_url=worker.url, timeout=15.0, cookies={"vtex_session": token}) as attacker:
                read = attacker.get("/api/sessions", params={"items": "*"}).json()
                assert read["id"] != sid and "the-owner" not in orjson.dumps(read).decode(), name
                by_path = attacker.get(f"/api/sessions/{token}", params={"items": "*"}).json()
                assert by_path["id"] != sid, name
                edited = attacker.post("/api/sessions?items=*", json={"public": {"owner": {"value": "attacker"}}})
                assert edited.status_code == 201 and edited.json()["id"] != sid, (name, edited.text)
                edited = attacker.post(
                    f"/api/sessions/{token}?items=*", json={"public": {"owner": {"value": "x"}}}
                ).json()
                assert edited["id"] != sid, name
                # An event without subject takes the cookie's session: a bad cookie is no session.
                event = page_view(sid, "https://shop.example/?owner=attacker")
                del event["subject"]
                with http_client(base_url=worker.url, timeout=15.0, cookies={"vtex_session": token}) as fresh:
                    assert fresh.post("/api/events", json=event).status_code == 400, name
        marker = owner.patch("/api/sessions", json={"public": {"checked": {"value": "yes"}}})
        assert marker.status_code == 200
        document, _ = wait_for_session(client, sid, public_has("checked"))
        assert document["namespaces"]["public"]["owner"]["value"] == "the-owner"


def test_header_bytes_that_are_not_utf8_are_refused_with_a_4xx_never_a_500(worker):
    # Headers are bytes; aiohttp hands bytes that are not UTF-8 on as lone surrogates. A key, a
    # cookie or a forwarded request's proof made of them (the OpenAPI fuzz sent such a key) is
    # simply not valid: 401 for the key, no session for the cookie, no proof for the header.
    odd = b"\xff\xfe\x80"
    sid = str(uuid.uuid4())
    with http_client(base_url=worker.url, timeout=15.0) as http:
        read = http.get(f"/api/v1/sessions/{sid}", headers={"Authorization": b"Bearer " + odd})
        assert read.status_code == 401 and read.json()["error"]["code"] == "unauthorized", read.text
        past = http.get(f"/api/v1/sessions/{sid}", params={"after": "x"}, headers={"Authorization": b"Bearer " + odd})
        assert past.status_code == 401, past.text
        event = http.post("/api/events", json=page_view(sid, "https://s/"), headers={"Authorization": b"Bearer " + odd})
        assert event.status_code == 401, event.text
        made = http.post("/api/sessions", json={}, headers={"Cookie": b"vtex_session=" + odd})
        assert made.status_code == 201, made.text  # the cookie is no session: a new one is made
        proof = http.get(
            "/api/sessions",
            params={"items": "*"},
            headers={"X-Session-Engine-Forwarded": odd, "Cookie": b"vtex_session=" + odd},
        )
        assert proof.status_code == 200 and proof.json()["id"] != sid, proof.text  # a fresh session, as VTEX
    assert "UnicodeEncodeError" not in worker.log_tail(400) and "surrogates" not in worker.log_tail(400)


def test_a_token_of_the_older_signing_key_stays_valid_and_new_ones_use_the_newest(worker):
    owner, sid = new_session(worker, "rotated")
    with closing(owner):
        header = jwt.get_unverified_header(owner.cookies["vtex_session"])
        assert header["alg"] == "HS256"
        jwt.decode(owner.cookies["vtex_session"], NEW_SIGNING_KEY, algorithms=["HS256"])
        old = SessionTokens([OLD_SIGNING_KEY], 600).issue(sid, 1)
        with http_client(base_url=worker.url, timeout=15.0, cookies={"vtex_session": old}) as holder:
            document = holder.get("/api/sessions", params={"items": "public.owner"}).json()
            assert document["id"] == sid
            assert document["namespaces"]["public"]["owner"]["value"] == "rotated"


def test_the_service_read_answers_the_test_key(client):
    assert client.get(f"/api/v1/sessions/{uuid.uuid4()}", headers=SERVICE_HEADERS).status_code == 404
