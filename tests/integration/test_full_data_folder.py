"""A data folder that fills up: the fold pauses without corrupting anything, /readyz answers 503,
a write that waits for its fold answers 503, the cause is logged and counted, reads serve what was
folded before; once there is room again the worker resumes by itself and every event sent
meanwhile is folded, once. A real full filesystem: a small tmpfs filled to its last byte."""

from __future__ import annotations

import time

import httpx
import jwt
import pytest

from streams.devkit.events import new_session_id, page_view
from tests.support.cluster import parse_metrics
from tests.support.filesystems import fill, tmpfs
from tests.support.http import http_client, http_get
from tests.support.sessions import public_has, wait_for_session
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

PARTITIONS = 2


def metric(worker, name: str) -> float:
    families = parse_metrics(http_get(f"{worker.url}/metrics", timeout=10).text)
    [(_, _, value)] = families[name]
    return value


def test_a_full_data_folder_pauses_the_fold_until_there_is_room(worker_factory, tmp_path):
    with tmpfs(tmp_path / "data", "size=48m") as folder:
        worker = worker_factory("w1", PARTITIONS, SESSIONS_DATA_DIR=str(folder), SESSIONS_WRITE_WAIT_S="2").start()
        before = [new_session_id() for _ in range(10)]
        during = [new_session_id() for _ in range(10)]
        with http_client(base_url=worker.url, timeout=15, headers=worker.service_headers) as service:
            for sid in before:
                first = page_view(sid, f"https://s/?v=1&sid={sid}", 0)
                assert service.post("/api/events", json=first).status_code == 202
            folded = {sid: wait_for_session(service, sid, public_has("sid", sid))[0] for sid in before}

            filler = fill(folder)
            # Accepted (they are in Kafka), not foldable now: the first store write finds no room.
            for sid in before + during:
                assert service.post("/api/events", json=page_view(sid, "https://s/?v=2", 1)).status_code == 202

            def full() -> httpx.Response | None:
                answer = http_get(f"{worker.url}/readyz")
                return answer if answer.status_code == 503 and "data folder is full" in answer.text else None

            ready = wait_for("/readyz says the folder is full", full, 60)
            assert ready.headers["Retry-After"]
            assert metric(worker, "sessions_data_folder_full") == 1
            assert metric(worker, "sessions_data_folder_full_incidents") == 1
            assert f"the data folder {folder}" in worker.log_path.read_text()
            # Reads serve what was written, never a half-written state: a session's state before
            # its second event, or after it (a partition whose write still found room: tmpfs
            # pages have slack), and nothing else.
            for sid in before:
                served = service.get(f"/api/v1/sessions/{sid}").json()
                if served != folded[sid]:
                    assert served["meta"]["eventCount"] == 2 and served["namespaces"]["public"]["v"] == {"value": "2"}
                    assert served["namespaces"]["public"]["sid"] == {"value": sid}

            # A storefront write waits for its fold, which cannot come: 503, and it is kept.
            sid = before[0]
            key = (folder / "session-signing.key").read_text()
            now = int(time.time())
            claims = {"id": sid, "version": 1, "sub": "session", "iat": now, "exp": now + 600, "jti": "t"}
            cookies = {"vtex_session": jwt.encode(claims, key)}
            with http_client(base_url=worker.url, timeout=15, cookies=cookies) as browser:
                patched = browser.patch("/api/sessions", json={"public": {"late": {"value": "yes"}}})
            assert patched.status_code == 503 and patched.headers["Retry-After"], patched.text
            assert worker.process.poll() is None

            filler.unlink()  # room again: the worker resumes by itself
            wait_for("/readyz ready again", lambda: http_get(f"{worker.url}/readyz").status_code == 200, 60)
            assert metric(worker, "sessions_data_folder_full") == 0
            for sid in before[1:]:
                document, _ = wait_for_session(service, sid, public_has("v", "2"))
                assert document["meta"]["eventCount"] == 2  # each event folded once
            document, _ = wait_for_session(service, before[0], public_has("late", "yes"))
            assert document["meta"]["eventCount"] == 3
            for sid in during:
                document, _ = wait_for_session(service, sid, public_has("v", "2"))
                assert document["meta"]["eventCount"] == 1
        assert "the data folder has room again" in worker.log_path.read_text()
        assert "Traceback" not in worker.log_path.read_text()
        assert worker.stop() == 0
