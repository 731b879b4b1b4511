"""One session written through three workers at once: storefront PATCHes (each waits for its own
fold and answers with the document) and service events, from six threads. Each acknowledged write
is applied exactly once, each PATCH's answer holds its own write, and what every worker serves is
the pure fold of the session's events in the log."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import jwt
import orjson
import pytest

from projections.session import fold
from schemas.events import PublicSet, decode_event
from schemas.session import encode_view
from streams.devkit.events import page_view
from tests.support.cluster import make_cluster
from tests.support.http import http_client, http_get, http_post
from tests.support.sessions import public_has, wait_for_session
from tests.support.topics import read_topic

pytestmark = pytest.mark.integration

WRITES = 12  # per thread


def test_one_session_written_through_three_workers_at_once(kafka_bootstrap, tmp_path):
    cluster = make_cluster(kafka_bootstrap, tmp_path, workers=3, partitions=6, name="concurrent")
    try:
        cluster.start()
        first = cluster.workers[0]
        created = http_post(f"{first.url}/api/sessions", json={"public": {}}, timeout=30)
        assert created.status_code == 201, created.text
        cookie = created.cookies["vtex_session"]
        sid = jwt.decode(cookie, options={"verify_signature": False})["id"]
        start = threading.Barrier(6)
        sent_ids: list[str] = []
        patch_answers: list[tuple[str, int, httpx.Response]] = []
        lock = threading.Lock()

        def storefront(index: int) -> None:
            worker = cluster.workers[index]
            with http_client(base_url=worker.url, timeout=30, cookies={"vtex_session": cookie}) as http:
                start.wait()
                for n in range(WRITES):
                    key = f"w{index}"
                    answer = http.patch(f"/api/sessions?items=public.{key}", json={"public": {key: {"value": n}}})
                    with lock:
                        patch_answers.append((key, n, answer))

        def service(index: int) -> None:
            worker = cluster.workers[index]
            with http_client(base_url=worker.url, timeout=30, headers=worker.service_headers) as http:
                start.wait()
                for n in range(WRITES):
                    event = page_view(sid, f"https://shop.example/?s{index}={n}", n)
                    answer = http.post("/api/events", json=event)
                    assert answer.status_code == 202, answer.text
                    with lock:
                        sent_ids.append(event["id"])

        with ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(storefront, i) for i in range(3)] + [pool.submit(service, i) for i in range(3)]
            for future in futures:
                future.result()

        # Every PATCH acknowledged with its own write in its answer (read-your-writes through any worker).
        for key, n, answer in patch_answers:
            assert answer.status_code == 200, (key, n, answer.status_code, answer.text)
            assert answer.json()["namespaces"]["public"][key] == {"value": n}, (key, n, answer.text)

        # A last marker through the first worker, once folded every earlier record of the session is too.
        marker = page_view(sid, "https://shop.example/?marker=end", 10_000)
        with http_client(base_url=first.url, timeout=30, headers=first.service_headers) as http:
            assert http.post("/api/events", json=marker).status_code == 202
            wait_for_session(http, sid, public_has("marker"))

        events = [
            decode_event(record.value)
            for record in read_topic(kafka_bootstrap, cluster.topic)
            if record.key == sid.encode() and record.value is not None
        ]
        ids = [event.id for event in events]
        assert len(ids) == len(set(ids)), "an event was appended twice"
        assert set(sent_ids) | {marker["id"]} <= set(ids)
        # Each acknowledged PATCH appended exactly once.
        patched = [(k, v.value) for e in events if isinstance(e, PublicSet) for k, v in e.data.public.items()]
        assert sorted(patched) == sorted((key, n) for key, n, _ in patch_answers)
        expected = orjson.loads(encode_view(fold(events)))  # the cluster's workers have no rules file
        assert expected["meta"]["eventCount"] == len(events)
        for worker in cluster.workers:
            served = http_get(f"{worker.url}/api/v1/sessions/{sid}", headers=worker.service_headers, timeout=30)
            assert served.status_code == 200 and served.json() == expected, cluster.name(worker)
    finally:
        cluster.kill()
