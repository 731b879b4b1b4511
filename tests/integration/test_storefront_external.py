"""What the storefront API learns outside the request's public values, against a real worker,
broker and HTTP: a regions service's answer, the identity cookie's login and a session app's
outputs, each decided before the change is appended and recorded in the log, so replays (a past
state, the timeline, ``sessionctl rebuild``) never call out.

The regions service is a small HTTP server in the test, in the shape of VTEX's
``GET /api/checkout/pub/regions?country=&postalCode=|geoCoordinates=<lon>;<lat>&sc=``; the identity cookie a
token signed with a key of the JWKS file the worker reads, as VTEX ID signs
``VtexIdclientAutCookie_<account>``; the session app the example of ``streams.devkit.session_app``,
with the ``vtex.session/configuration.json`` of vtex-apps/storefront-permissions."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from streams.devkit.paths import SAMPLE_RULES_FILE
from streams.devkit.session_app import NAME, SessionApp
from streams.devkit.workers import SERVICE_HEADERS
from tests.support.cli import sessionctl
from tests.support.http import HttpClient, http_client
from tests.support.topics import read_topic
from tests.support.workers import shared_worker

pytestmark = pytest.mark.integration

MOEMA = "v2.1BB18CE648B5111D0933734ED83EC783"  # the sample's [[regions]] postal code
PAULISTA = "v2.FROM-THE-REGIONS-SERVICE-PAULISTA"


class RegionsService:
    """Answers 01310100 (Avenida Paulista) with a region and anything else with none; ``failing``
    makes it answer 500. Records every query it gets."""

    def __init__(self) -> None:
        self.queries: list[dict[str, str]] = []
        self.failing = False
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = dict(parse_qsl(urlsplit(self.path).query))
                service.queries.append(query)
                if service.failing:
                    self.send_response(500)
                    self.end_headers()
                    return
                regions = [{"id": PAULISTA, "sellers": [{"id": "1"}]}] if query.get("postalCode") == "01310100" else []
                body = orjson.dumps(regions)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/checkout/pub/regions"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.server.shutdown()
            self.server.server_close()
            self.thread.join()


@pytest.fixture(scope="module")
def regions_service() -> Iterator[RegionsService]:
    service = RegionsService()
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="module")
def identity_provider():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def session_app() -> Iterator[SessionApp]:
    app = SessionApp().start()
    try:
        yield app
    finally:
        app.stop()


@pytest.fixture(scope="module")
def worker(kafka_bootstrap, tmp_path_factory, regions_service, identity_provider, session_app):
    folder = tmp_path_factory.mktemp("external-config")
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(identity_provider.public_key(), as_dict=True)
    jwks = folder / "jwks.json"
    jwks.write_bytes(orjson.dumps({"keys": [{**jwk, "kid": "vtexid-1", "alg": "RS256"}]}))
    apps = folder / "session-apps.json"
    apps.write_bytes(orjson.dumps(session_app.manifest()))
    with shared_worker(
        kafka_bootstrap,
        tmp_path_factory,
        "external",
        2,
        SESSIONS_RULES_FILE=str(SAMPLE_RULES_FILE),
        SESSIONS_REGIONS_URL=regions_service.url,
        SESSIONS_REGIONS_TIMEOUT_S="2",
        SESSIONS_IDENTITY_JWKS_FILE=str(jwks),
        SESSIONS_SESSION_APPS_FILE=str(apps),
        SESSIONS_SESSION_APPS_TIMEOUT_S="2",
    ) as process:
        yield process


BUYER = {"sub": "buyer@example.com", "userId": "u-buyer"}  # a B2B buyer of the example session app


def identity_token(key, seconds: int = 600, **claims) -> str:
    body = {"sub": "ana@example.com", "userId": "u-ana", "account": "demo", "audience": "webstore",
            "exp": int(time.time()) + seconds, **claims}  # fmt: skip
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": "vtexid-1"})


def region_of(client: HttpClient) -> dict:
    return client.get("/api/sessions", params={"items": "checkout.regionId"}).json()["namespaces"]


def test_a_service_that_fails_leaves_the_table_to_answer_and_records_nothing(worker, regions_service):
    # Runs before the test that stops the service (pytest keeps a file's order).
    regions_service.failing = True
    try:
        with http_client(base_url=worker.url, timeout=15.0) as shopper:
            body = {"public": {"country": {"value": "BRA"}, "postalCode": {"value": "04561000"}}}
            answer = shopper.post("/api/sessions?items=checkout.regionId", json=body)
            assert answer.status_code == 201, answer.text
            assert answer.json()["namespaces"] == {"checkout": {"regionId": {"value": MOEMA}}}
            with http_client(base_url=worker.url, timeout=15.0, headers=SERVICE_HEADERS) as service:
                events = service.get(f"/api/v1/sessions/{answer.json()['id']}/events").json()["events"]
            assert [e["type"] for e in events] == ["session.created", "session.public_set"]
        # Working again, its "no region there" is recorded and wins over the table.
        regions_service.failing = False
        with http_client(base_url=worker.url, timeout=15.0) as shopper:
            answer = shopper.post("/api/sessions?items=checkout.regionId", json=body)
            assert answer.json()["namespaces"] == {}
    finally:
        regions_service.failing = False


def test_coordinates_are_asked_for_as_faststore_asks_and_the_services_none_wins(worker, regions_service):
    with http_client(base_url=worker.url, timeout=15.0) as shopper:
        asked = len(regions_service.queries)
        body = {"public": {"country": {"value": "BRA"}, "geoCoordinates": {"value": "-46.6388,-23.5489"}}}
        answer = shopper.post("/api/sessions?items=checkout.regionId,search.facets", json=body)
        assert answer.status_code == 201, answer.text
        assert regions_service.queries[asked:] == [{"country": "BRA", "geoCoordinates": "-46.6388;-23.5489", "sc": "1"}]
        # The service knows no region there: its answer wins over the sample's São Paulo area.
        assert answer.json()["namespaces"] == {
            "search": {"facets": {"value": "country=BRA;coordinates=-46.6388,-23.5489;"}}
        }


def test_the_service_is_asked_once_and_replays_never_ask_again(worker, regions_service):
    with (
        http_client(base_url=worker.url, timeout=15.0) as shopper,
        http_client(base_url=worker.url, timeout=15.0, headers=SERVICE_HEADERS) as service,
    ):
        sid = shopper.post("/api/sessions?items=account.id&sc=2", json={}).json()["id"]
        asked = len(regions_service.queries)
        body = {"public": {"country": {"value": "BRA"}, "postalCode": {"value": "01310-100"}}}
        assert shopper.patch("/api/sessions", json=body).status_code == 200
        assert region_of(shopper) == {"checkout": {"regionId": {"value": PAULISTA}}}
        assert regions_service.queries[asked:] == [{"country": "BRA", "postalCode": "01310100", "sc": "2"}]
        # The answer is on the log: a change to anything else asks nothing more.
        shopper.patch("/api/sessions", json={"public": {"color": {"value": "blue"}}})
        assert len(regions_service.queries) == asked + 1
        events = service.get(f"/api/v1/sessions/{sid}/events").json()
        resolved = [e for e in events["events"] if e["type"] == "checkout.region_resolved"]
        assert [e["data"]["regionId"] for e in resolved] == [PAULISTA]
        assert "01310" not in orjson.dumps(resolved).decode()  # a digest of the inputs, not the postal code
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")

        regions_service.stop()
        past = service.get(f"/api/v1/sessions/{sid}", params={"at": now})
        assert past.status_code == 200, past.text
        assert past.json()["namespaces"]["checkout"] == {"regionId": {"value": PAULISTA}}
        assert region_of(shopper) == {"checkout": {"regionId": {"value": PAULISTA}}}
        timeline = service.get(f"/api/v1/sessions/{sid}/events").json()["events"]
        [change] = [e for e in timeline if e["type"] == "session.public_set" and "checkout.regionId" in e["changes"]]
        assert change["data"]["public"]["postalCode"] == {"value": "01310-100"}
        assert len(regions_service.queries) == asked + 1


# --- the identity cookie --------------------------------------------------------------------------


def auth_of(client: HttpClient) -> dict:
    items = "authentication.*,profile.isAuthenticated,profile.email,store.channel"
    return client.get("/api/sessions", params={"items": items}).json()["namespaces"]


def test_the_identity_cookie_logs_in_on_a_write_and_out_when_it_is_gone(worker, identity_provider):
    """FastStore and render-session forward the shopper's cookies on every session POST/PATCH;
    VTEX's authentication-session fills ``authentication`` from ``VtexIdclientAutCookie_<account>``."""
    with (
        http_client(base_url=worker.url, timeout=15.0) as shopper,
        http_client(base_url=worker.url, timeout=15.0, headers=SERVICE_HEADERS) as service,
    ):
        sid = shopper.post("/api/sessions?items=account.id", json={}).json()["id"]
        assert auth_of(shopper)["profile"] == {"isAuthenticated": {"value": "false"}}
        shopper.cookies.set("VtexIdclientAutCookie_demo", identity_token(identity_provider))
        answer = shopper.patch("/api/sessions", json={})
        assert answer.status_code == 200, answer.text
        namespaces = auth_of(shopper)
        assert namespaces["authentication"] == {
            "storeUserId": {"value": "u-ana"},
            "storeUserEmail": {"value": "ana@example.com"},
        }
        assert namespaces["profile"] == {"isAuthenticated": {"value": "true"}, "email": {"value": "ana@example.com"}}
        # The same cookie again appends nothing.
        count = service.get(f"/api/v1/sessions/{sid}").json()["meta"]["eventCount"]
        shopper.patch("/api/sessions", json={})
        assert service.get(f"/api/v1/sessions/{sid}").json()["meta"]["eventCount"] == count
        # An expired cookie (or none) logs out; the session id stays.
        shopper.cookies.set("VtexIdclientAutCookie_demo", identity_token(identity_provider, seconds=-60))
        shopper.patch("/api/sessions", json={})
        namespaces = auth_of(shopper)
        assert "authentication" not in namespaces
        assert namespaces["profile"] == {"isAuthenticated": {"value": "false"}}
        types = [e["type"] for e in service.get(f"/api/v1/sessions/{sid}/events").json()["events"]]
        assert types.count("auth.logged_in") == types.count("auth.logged_out") == 1
        assert types.index("auth.logged_in") < types.index("auth.logged_out")


def test_faststore_session_with_only_the_identity_cookie(worker, identity_provider):
    """FastStore packages/api/src/platforms/vtex/clients/commerce/index.ts (commit 0020438),
    ``session(search)``, as its ``validateSession`` calls it: POST /api/sessions?<search with sc>
    &items=profile.id,profile.email,profile.firstName,profile.lastName,store.*; the only cookie is
    ``VtexIdclientAutCookie_<account>``; body ``{}``. It reads ``profile`` and ``store``."""
    items = (
        "profile.id,profile.email,profile.firstName,profile.lastName,store.channel,store.countryCode,"
        "store.cultureInfo,store.currencyCode,store.currencySymbol"
    )
    token = identity_token(identity_provider)
    with http_client(base_url=worker.url, timeout=15.0) as faststore:  # a server: no cookie jar
        answer = faststore.post(
            f"/api/sessions?sc=2&locale=en-US&utm_source=google&items={items}",
            headers={"content-type": "application/json", "cookie": f"VtexIdclientAutCookie_demo={token}"},
            content=b"{}",
        )
        assert answer.status_code == 201, answer.text
        assert answer.json()["namespaces"] == {
            "profile": {"id": {"value": "u-ana"}, "email": {"value": "ana@example.com"}},
            "store": {
                "channel": {"value": "2"}, "countryCode": {"value": "USA"}, "cultureInfo": {"value": "en-US"},
                "currencyCode": {"value": "USD"}, "currencySymbol": {"value": "US$"},
            },
        }  # fmt: skip


def test_an_admin_token_fills_the_admin_fields_and_a_forged_one_nothing(worker, identity_provider):
    with http_client(base_url=worker.url, timeout=15.0) as admin:
        admin.cookies.set("VtexIdclientAutCookie_demo", identity_token(identity_provider, audience="admin"))
        admin.post("/api/sessions", json={})
        assert auth_of(admin)["authentication"] == {
            "storeUserId": {"value": "u-ana"},
            "storeUserEmail": {"value": "ana@example.com"},
            "adminUserId": {"value": "u-ana"},
            "adminUserEmail": {"value": "ana@example.com"},
        }
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with http_client(base_url=worker.url, timeout=15.0) as intruder:
        intruder.cookies.set("VtexIdclientAutCookie_demo", identity_token(forger))
        assert intruder.post("/api/sessions", json={}).status_code == 201
        assert "authentication" not in auth_of(intruder)


# --- session apps ---------------------------------------------------------------------------------


def served(client: HttpClient, sid: str) -> dict:
    document = client.get(f"/api/v1/sessions/{sid}").json()
    return {"namespaces": document["namespaces"], "eventCount": document["meta"]["eventCount"]}


def test_a_session_app_answers_before_the_append_and_its_undeclared_outputs_are_refused(
    worker, session_app, identity_provider, kafka_bootstrap
):
    """A storefront-permissions style app: the shopper's login (here from the identity cookie) is
    its input; it answers the organization's sales channel and collections, which the store and
    search transformers turn into the currency and the segment's facets, in the same write."""
    session_app.extra = {"profile": {"email": {"value": "hijack@example.com"}}, NAME: {"rogue": {"value": "x"}}}
    try:
        with (
            http_client(base_url=worker.url, timeout=15.0) as shopper,
            http_client(base_url=worker.url, timeout=15.0, headers=SERVICE_HEADERS) as service,
        ):
            asked = len(session_app.requests)
            sid = shopper.post("/api/sessions?items=account.id", json={}).json()["id"]
            assert len(session_app.requests) == asked  # nothing it reads has a value yet: not called
            shopper.cookies.set("VtexIdclientAutCookie_demo", identity_token(identity_provider, **BUYER))
            answer = shopper.patch("/api/sessions", json={})
            assert answer.status_code == 200, answer.text
            # VTEX's request shape: every declared input the session has, in session shape.
            expected = {"authentication": {"storeUserEmail": {"value": "buyer@example.com"}}}
            assert session_app.requests[asked:] == [expected]
            segment = orjson.loads(base64.b64decode(answer.json()["segmentToken"]))
            assert (segment["channel"], segment["currencyCode"], segment["facets"]) == (
                "2", "USD", "productClusterIds=138;",
            )  # fmt: skip
            namespaces = served(service, sid)["namespaces"]
            assert namespaces[NAME] == {
                "storeUserEmail": {"value": "buyer@example.com"},
                "organization": {"value": "org-acme"},
                "costcenter": {"value": "cc-1"},
            }  # no "rogue": the app did not declare it
            assert namespaces["profile"]["email"] == {"value": "buyer@example.com"}  # not the app's to write
            assert namespaces["public"]["sc"] == {"value": "2"}
            # In the log the app's answer is there, its e-mail sealed like the login's.
            records = [r.value or b"" for r in read_topic(kafka_bootstrap, worker.env["SESSIONS_EVENTS_TOPIC"])]
            [answered] = [orjson.loads(r) for r in records if sid.encode() in r and b'"session.transformed"' in r]
            assert answered["data"]["outputs"][NAME]["organization"] == {"value": "org-acme"}
            assert answered["data"]["outputs"][NAME]["storeUserEmail"]["value"].startswith("enc:v1:")
            assert not any(sid.encode() in r and b"buyer@example.com" in r for r in records)
            # The same inputs again: not called again.
            shopper.patch("/api/sessions", json={"public": {"color": {"value": "red"}}})
            assert len(session_app.requests) == asked + 1
    finally:
        session_app.extra = {}


def test_a_failing_app_keeps_its_last_outputs_and_is_asked_again_on_the_next_change(worker, session_app):
    with (
        http_client(base_url=worker.url, timeout=15.0) as shopper,
        http_client(base_url=worker.url, timeout=15.0, headers=SERVICE_HEADERS) as service,
    ):
        asked = len(session_app.requests)
        body = {"public": {"impersonate": {"value": "x"}}}
        sid = shopper.post("/api/sessions?items=account.id", json=body).json()["id"]
        assert session_app.requests[asked:] == [body]
        assert NAME not in served(service, sid)["namespaces"]  # not a buyer: it cleared nothing there was
        asked += 1
        session_app.failing = True
        try:
            shopper.patch("/api/sessions", json={"public": {"impersonate": {"value": "y"}}})
            assert len(session_app.requests) == asked + 1
            types = [e["type"] for e in service.get(f"/api/v1/sessions/{sid}/events").json()["events"]]
            assert types.count("session.transformed") == 1  # the first answer only
        finally:
            session_app.failing = False
        shopper.patch("/api/sessions", json={})
        assert len(session_app.requests) == asked + 2  # the inputs it has not answered for yet
        types = [e["type"] for e in service.get(f"/api/v1/sessions/{sid}/events").json()["events"]]
        assert types.count("session.transformed") == 2


def test_replays_and_a_rebuild_give_the_same_states_with_the_app_stopped(worker, session_app, identity_provider):
    """Last in this file: it stops the app and switches the worker to a rebuilt generation."""
    with (
        http_client(base_url=worker.url, timeout=15.0) as shopper,
        http_client(base_url=worker.url, timeout=15.0, headers=SERVICE_HEADERS) as service,
    ):
        shopper.cookies.set("VtexIdclientAutCookie_demo", identity_token(identity_provider, **BUYER))
        sid = shopper.post("/api/sessions?items=account.id", json={}).json()["id"]
        before = served(service, sid)
        assert before["namespaces"][NAME]["organization"] == {"value": "org-acme"}
        timeline = service.get(f"/api/v1/sessions/{sid}/events").json()["events"]
        asked = len(session_app.requests)

        session_app.stop()
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        past = service.get(f"/api/v1/sessions/{sid}", params={"at": now}).json()
        assert past["namespaces"] == before["namespaces"]
        assert service.get(f"/api/v1/sessions/{sid}/events").json()["events"] == timeline
        sessionctl("rebuild", env=worker.env, expect=0, timeout=180)
        switched = sessionctl("rebuild", "--switch", env=worker.env, expect=0, timeout=180)
        assert "switched: the workers serve generation 2" in switched.stdout
        deadline = time.monotonic() + 30
        while (now_served := service.get(f"/api/v1/sessions/{sid}")).status_code != 200 or served(
            service, sid
        ) != before:
            assert time.monotonic() < deadline, now_served.text
            time.sleep(0.1)
        assert len(session_app.requests) == asked  # nobody called the app
