"""Three workers in one group: any worker answers for any session, and a storefront write through
one worker is visible at once through the others (read-your-writes across workers)."""

from __future__ import annotations

from collections.abc import Iterator
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx
import pytest

from streams.devkit.events import new_session_id, page_view, public_set
from streams.devkit.paths import SAMPLE_RULES_FILE
from streams.web.tokens import SessionTokens
from tests.support.cluster import Cluster, make_cluster, session_in
from tests.support.http import HttpClient, http_client
from tests.support.sessions import public_has, wait_for_session

pytestmark = pytest.mark.integration

PARTITIONS = 6


@pytest.fixture(scope="module")
def cluster(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    made = make_cluster(
        kafka_bootstrap, tmp_path_factory.mktemp("scale-out"), workers=3, partitions=PARTITIONS, name="scale",
        SESSIONS_RULES_FILE=str(SAMPLE_RULES_FILE),
    )  # fmt: skip
    try:
        made.start()
        yield made
        assert made.stop() == [0, 0, 0], [w.log_tail() for w in made.workers]
    finally:
        made.kill()


def clients(cluster: Cluster, service: bool = True) -> list[HttpClient]:
    """A client of each worker: with the service key, or a browser's (no key; cookies sent by hand)."""
    return [
        http_client(
            base_url=w.url,
            timeout=15.0,
            headers=w.service_headers if service else {},
            cookies=CookieJar(DefaultCookiePolicy(allowed_domains=[])),  # keeps none
        )
        for w in cluster.workers
    ]


def storefront_read(client: HttpClient, cookie: str) -> httpx.Response:
    # The cookie by hand, not the client's jar: one browser, its requests sent to three workers.
    return client.get("/api/sessions", params={"items": "*"}, headers={"Cookie": f"vtex_session={cookie}"})


def test_every_worker_serves_every_session_the_same(cluster: Cluster):
    first, *_ = http = clients(cluster)
    browsers = clients(cluster, service=False)
    try:
        # Through worker 1: sessions made by service events (their partitions spread over the group)
        # and by the storefront (a new session's id is drawn in a partition of the worker it asks).
        by_events = [session_in(p, PARTITIONS) for p in range(PARTITIONS)] + [new_session_id(), new_session_id()]
        for n, sid in enumerate(by_events):
            events = [page_view(sid, f"https://s/p?utm_campaign=blackfriday&n={n}", 0), public_set(sid, {"m": n}, 1)]
            assert first.post("/api/events", json=events).status_code == 202
        cookies: dict[str, str] = {}
        for n in range(4):
            answer = browsers[0].post("/api/sessions", json={"public": {"made": {"value": n}}})
            assert answer.status_code == 201, answer.text
            cookie = answer.cookies["vtex_session"]
            sid = storefront_read(browsers[0], cookie).json()["id"]
            cookies[sid] = cookie

        for sid in by_events:
            wait_for_session(first, sid, public_has("m"))
        for sid in [*by_events, *cookies]:
            documents = [client.get(f"/api/v1/sessions/{sid}") for client in http]
            assert [d.status_code for d in documents] == [200, 200, 200], [d.text for d in documents]
            assert documents[0].json()["id"] == sid
            assert documents[1].json() == documents[0].json() == documents[2].json()
        for sid, cookie in cookies.items():
            reads = [storefront_read(client, cookie) for client in browsers]
            assert [r.status_code for r in reads] == [200, 200, 200], [r.text for r in reads]
            assert reads[0].json()["id"] == sid
            assert reads[0].json()["namespaces"]["public"]["made"]["value"] in range(4)
            assert reads[1].json() == reads[0].json() == reads[2].json()
    finally:
        for client in http + browsers:
            client.close()


def test_a_storefront_write_through_one_worker_is_read_at_once_through_the_others(cluster: Cluster):
    http = clients(cluster)
    browsers = clients(cluster, service=False)
    tokens = SessionTokens(cluster.signing_key, 3600)
    try:
        # Sessions in every partition, so every worker owns some: made by a service event, then a
        # cookie for each signed with the group's key (as any worker would sign it).
        sessions = [session_in(p % PARTITIONS, PARTITIONS) for p in range(3 * PARTITIONS)]
        for sid in sessions:
            assert http[0].post("/api/events", json=page_view(sid, "https://s/?start=1")).status_code == 202
        for sid in sessions:
            wait_for_session(http[0], sid, public_has("start"))
        stale = []
        for n, sid in enumerate(sessions):
            cookie = tokens.issue(sid, 1)
            for writer in range(3):
                value = f"{n}-{writer}"
                body, jar = {"public": {"rw": {"value": value}}}, {"Cookie": f"vtex_session={cookie}"}
                patched = browsers[writer].patch("/api/sessions", json=body, headers=jar)
                assert patched.status_code == 200, patched.text
                cookie = patched.cookies["vtex_session"]
                # The very next read through each other worker, no polling.
                for reader in (r for r in range(3) if r != writer):
                    served = http[reader].get(f"/api/v1/sessions/{sid}").json()["namespaces"]["public"]["rw"]
                    browser = storefront_read(browsers[reader], cookie).json()["namespaces"]["public"]["rw"]
                    if served != {"value": value} or browser != {"value": value}:
                        stale.append((sid, f"written via w{writer + 1}", f"read via w{reader + 1}", served, browser))
        assert not stale
    finally:
        for client in http + browsers:
            client.close()
