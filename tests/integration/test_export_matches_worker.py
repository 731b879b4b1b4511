"""``sessionctl export --sessions`` gives exactly what the worker serves, over a range that holds an
erasure and an expiry (issue 20): both fold with one per-session step (``projections.step``).

The lifetime is measured in event time (``projections.lifetime``: an event more than the lifetime
after the session's latest event starts it afresh), so the expiry needs no waiting: X's second
event is stamped two lifetimes after its first. The lifetime is the shortest the settings accept.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from projections.session import rfc3339
from streams.devkit.events import new_session_id, page_view
from tests.support.cli import sessionctl
from tests.support.http import HttpClient, http_client
from tests.support.sessions import public_has, wait_for_session

pytestmark = pytest.mark.integration

LIFETIME_S = 60  # SESSIONS_SESSION_TTL_S: the settings refuse less


def stamped(event: dict, moment: datetime) -> dict:
    return event | {"time": rfc3339(moment)}


def test_export_sessions_equals_what_the_worker_serves_across_an_erasure_and_an_expiry(worker_factory, tmp_path):
    worker = worker_factory("w1", partitions=2, SESSIONS_SESSION_TTL_S=str(LIFETIME_S)).start()
    now = datetime.now(UTC)
    erased, expired, live = new_session_id(), new_session_id(), new_session_id()
    lifetime = timedelta(seconds=LIFETIME_S)
    events = [
        stamped(page_view(erased, "https://shop.example/?utm_source=mail"), now - timedelta(seconds=20)),
        stamped(page_view(erased, "https://shop.example/p/1?marker=e"), now - timedelta(seconds=10)),
        stamped(page_view(expired, "https://shop.example/?utm_source=google&first=1"), now - 2 * lifetime),
        # More than the lifetime after its previous event: the session expired and starts afresh.
        stamped(page_view(expired, "https://shop.example/?marker=x"), now),
        stamped(page_view(live, "https://shop.example/?utm_source=g"), now - timedelta(seconds=30)),
        stamped(page_view(live, "https://shop.example/p/2?marker=l"), now),
    ]
    with http_client(base_url=worker.url, headers=worker.service_headers, timeout=30.0) as service:
        assert service.post("/api/events", json=events).status_code == 202
        wait_for_session(service, erased, public_has("marker"))
        answer = service.delete(f"/api/v1/sessions/{erased}")
        assert answer.status_code == 202 and answer.json()["deleted"] is True, answer.text  # folded, not just sent
        served_x, _ = wait_for_session(service, expired, public_has("marker"))
        served_l, _ = wait_for_session(service, live, public_has("marker"))
        assert service.get(f"/api/v1/sessions/{erased}").status_code == 404
        assert served_x["meta"]["eventCount"] == 1 and "first" not in served_x["namespaces"]["public"]
        assert served_l["meta"]["eventCount"] == 2

        # The range holds every event above, the erasure (stamped by the worker) included.
        out = tmp_path / "sessions.jsonl"
        start, end = now - 3 * lifetime, datetime.now(UTC) + lifetime
        sessionctl(
            "export", "--sessions", "--from", rfc3339(start), "--to", rfc3339(end), "-o", str(out),
            env=worker.env, expect=0,
        )  # fmt: skip
        exported = {document["id"]: document for document in map(json.loads, out.read_text().splitlines())}

        sessions = {"E (erased)": erased, "X (expired, restarted)": expired, "L (live)": live}
        served = {name: document(service, sid) for name, sid in sessions.items()}
        written = {name: exported.get(sid) for name, sid in sessions.items()}
        # The event counts first: a short message when the export and the worker disagree.
        assert event_counts(written) == event_counts(served)
        assert written == served


def document(service: HttpClient, sid: str) -> dict | None:
    """What the worker serves for the session (None: 404)."""
    answer = service.get(f"/api/v1/sessions/{sid}")
    assert answer.status_code in (200, 404), answer.text
    return answer.json() if answer.status_code == 200 else None


def event_counts(documents: dict[str, dict | None]) -> dict[str, int | None]:
    return {name: None if d is None else d["meta"]["eventCount"] for name, d in documents.items()}
