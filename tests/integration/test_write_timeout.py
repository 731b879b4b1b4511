"""A write whose fold does not come in time answers 503, and the change is still applied, once."""

from __future__ import annotations

import time

import jwt
import pytest

from streams.devkit.events import new_session_id, page_view
from streams.devkit.workers import SERVICE_HEADERS
from tests.support.http import http_client
from tests.support.sessions import wait_for_session

pytestmark = pytest.mark.integration


def test_a_fold_slower_than_the_wait_gives_503_and_still_applies_once(worker_factory):
    # Every batch waits 3 s before its changelog, and a write waits 0.2 s for its fold after Kafka
    # acknowledged its event: the fold cannot be in time. (A wait of 0.1 ms with a normal fold was
    # not enough: under load the event loop saw Kafka's acknowledgement after the fold's answer.)
    worker = worker_factory(SESSIONS_WRITE_WAIT_S="0.2", SESSIONS_FAULT_POINT="slow:3").start()
    sid = new_session_id()
    with http_client(base_url=worker.url, timeout=10) as service:
        assert service.post("/api/events", json=page_view(sid, "https://s/?a=1")).status_code == 202
        wait_for_session(service, sid, 1)
    key = (worker.data_dir / "session-signing.key").read_text()
    now = int(time.time())
    token = jwt.encode({"id": sid, "version": 1, "sub": "session", "iat": now, "exp": now + 600, "jti": "t"}, key)

    with http_client(base_url=worker.url, timeout=10, cookies={"vtex_session": token}) as browser:
        response = browser.patch("/api/sessions", json={"public": {"late": {"value": "yes"}}})
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        assert response.json()["error"]["code"] == "unavailable"

        deadline = time.monotonic() + 20
        while True:
            document = browser.get("/api/sessions", params={"items": "public.*"}).json()
            if "late" in document["namespaces"].get("public", {}):
                break
            assert time.monotonic() < deadline, document
            time.sleep(0.05)
        assert document["id"] == sid
    with http_client(base_url=worker.url, timeout=10) as service:
        assert service.get(f"/api/v1/sessions/{sid}", headers=SERVICE_HEADERS).json()["meta"]["eventCount"] == 2
    assert worker.stop() == 0
