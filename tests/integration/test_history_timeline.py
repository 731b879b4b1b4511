"""A session's history on a real worker: its timeline among thousands of other sessions, its state
at past instants and right after an event, read from the local history store and, once that is
gone, from Kafka by offset."""

from __future__ import annotations

import shutil
from datetime import timedelta

import orjson
import pytest

from projections.history import replay
from projections.session import fold
from schemas.events import event_from_object
from schemas.session import encode_view
from streams.devkit.events import (
    BASE_TIME,
    at,
    campaign_click,
    logged_in,
    new_session_id,
    page_view,
    public_set,
)
from streams.devkit.paths import SAMPLE_RULES_FILE, sample_rules
from tests.support.cli import sessionctl
from tests.support.http import HttpClient, http_client
from tests.support.sessions import public_has, wait_for_session
from tests.support.workers import module_worker

pytestmark = pytest.mark.integration

RULES = sample_rules()
OTHERS = 3000  # sessions around the one under test

worker = module_worker("history", partitions=4, SESSIONS_RULES_FILE=str(SAMPLE_RULES_FILE))


@pytest.fixture(scope="module")
def service(worker):
    with http_client(base_url=worker.url, timeout=30.0, headers=worker.service_headers) as client:
        yield client


@pytest.fixture(scope="module")
def story(service):
    """One session's events (a login, a campaign, a public key, two events sharing a time), sent in
    batches among two events each of thousands of other sessions; waits until all are folded."""
    sid = new_session_id()
    mine = [
        page_view(sid, "https://shop.example/", 0),
        campaign_click(sid, 60, utm_source="google", utm_campaign="blackfriday"),
        page_view(sid, "https://shop.example/p/1?color=red", 120),
        public_set(sid, {"postalCode": "04561-000"}, 180),
        page_view(sid, "https://shop.example/p/2", 180),  # same time as the one before it
        logged_in(sid, "user-42", "joao@example.com", 240, firstName="Joao"),
        page_view(sid, "https://shop.example/cart?marker=end", 300),
    ]
    others = [new_session_id() for _ in range(OTHERS)]
    noise = [page_view(o, f"https://shop.example/?n={n}", n % 400) for n, o in enumerate(others)]
    noise += [campaign_click(o, 400 + n % 50, utm_source="bing") for n, o in enumerate(others)]
    chunk = len(noise) // len(mine)
    for n, event in enumerate(mine):
        batch = [*noise[n * chunk : (n + 1) * chunk], event]
        for start in range(0, len(batch), 500):
            answer = service.post("/api/events", json=batch[start : start + 500])
            assert answer.status_code == 202, answer.text
    rest = noise[len(mine) * chunk :]
    if rest:
        assert service.post("/api/events", json=rest).status_code == 202
    wait_for_session(service, sid, public_has("marker"), timeout=60)
    wait_for_session(service, others[-1], 2, timeout=60)
    return sid, mine


def timeline(service: HttpClient, sid: str, **params) -> list[dict]:
    events, cursor = [], None
    while True:
        answer = service.get(
            f"/api/v1/sessions/{sid}/events", params={**params, **({"cursor": cursor} if cursor else {})}
        )
        assert answer.status_code == 200, answer.text
        page = answer.json()
        events.extend(page["events"])
        cursor = page["next"]
        if cursor is None:
            return events
        assert len(page["events"]) == int(params.get("limit", 100))


def expected_timeline(mine: list[dict]) -> list[tuple[str, list[str]]]:
    return [(step.event.id, step.changes) for step in replay([event_from_object(e) for e in mine], RULES)]


def view_of(events: list[dict]) -> dict:
    return orjson.loads(encode_view(fold([event_from_object(e) for e in events], rules=RULES)))


def test_the_timeline_lists_the_sessions_events_in_order_with_what_each_changed(service, story):
    sid, mine = story
    got = timeline(service, sid, limit=3)
    assert [(e["id"], e["changes"]) for e in got] == expected_timeline(mine)
    assert [e["subject"] for e in got] == [sid] * len(mine)
    assert [e["type"] for e in got] == [e["type"] for e in mine]
    # What the transformers derived counts as a change of the event that caused it.
    assert {"public.utm_source", "public.utm_campaign"} <= set(got[1]["changes"])
    assert "public.postalCode" in got[3]["changes"]
    assert {k: v for k, v in got[1]["data"].items() if v is not None} == mine[1]["data"]
    assert timeline(service, sid, limit=1000) == got


def test_the_timeline_keeps_a_time_range(service, story):
    sid, mine = story
    got = timeline(service, sid, **{"from": at(60), "to": at(180)})
    assert [e["id"] for e in got] == [mine[1]["id"], mine[2]["id"]]
    assert timeline(service, sid, **{"from": at(1000)}) == []


@pytest.mark.parametrize("seconds", [0, 59, 60, 180, 239.5, 300, 10_000])
def test_the_state_at_an_instant_is_the_fold_of_the_events_up_to_it(service, story, seconds):
    sid, mine = story
    instant = BASE_TIME + timedelta(seconds=seconds)
    answer = service.get(f"/api/v1/sessions/{sid}", params={"at": instant.isoformat()})
    assert answer.status_code == 200, answer.text
    upto = [e for e in mine if event_from_object(e).time <= instant]
    assert answer.json() == view_of(upto)


def test_the_state_at_the_last_events_time_is_the_current_state(service, story):
    sid, mine = story
    now = service.get(f"/api/v1/sessions/{sid}").json()
    assert service.get(f"/api/v1/sessions/{sid}", params={"at": mine[-1]["time"]}).json() == now


def test_the_state_after_an_event_tells_apart_events_that_share_a_time(service, story):
    sid, mine = story
    after_public = service.get(f"/api/v1/sessions/{sid}", params={"after": mine[3]["id"]}).json()
    after_page = service.get(f"/api/v1/sessions/{sid}", params={"after": mine[4]["id"]}).json()
    assert after_public == view_of(mine[:4])
    assert after_page == view_of(mine[:5])
    assert after_public != after_page


def test_bad_history_parameters_are_400s_naming_them(service, story):
    sid, _ = story
    cases = [
        ("", {"at": "2026-11-26T12:00:00"}, "at"),  # no timezone
        ("", {"at": "yesterday"}, "at"),
        ("", {"at": at(0), "after": "x"}, "after"),
        ("/events", {"limit": "0"}, "limit"),
        ("/events", {"limit": "1001"}, "limit"),
        ("/events", {"cursor": "not-a-cursor"}, "cursor"),
        ("/events", {"from": at(10), "to": at(5)}, "to"),
        ("/events", {"from": "2026-11-26"}, "from"),
    ]
    for suffix, params, name in cases:
        answer = service.get(f"/api/v1/sessions/{sid}{suffix}", params=params)
        assert answer.status_code == 400, (params, answer.text)
        assert answer.json()["error"]["details"][0]["path"] == name, (params, answer.text)


def test_unknown_sessions_and_events_are_404s(service, story):
    sid, _ = story
    unknown = new_session_id()
    assert service.get(f"/api/v1/sessions/{unknown}/events").json()["error"]["code"] == "session_not_found"
    assert service.get(f"/api/v1/sessions/{unknown}", params={"at": at(0)}).status_code == 404
    before = service.get(f"/api/v1/sessions/{sid}", params={"at": at(-1)})
    assert (before.status_code, before.json()["error"]["code"]) == (404, "no_state_at")
    missing = service.get(f"/api/v1/sessions/{sid}", params={"after": new_session_id()})
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "event_not_found")


def test_sessionctl_history_prints_the_timeline_and_a_past_state(worker, story):
    sid, mine = story
    # The key: the first of the worker's settings with sessions:history (never on a command line).
    options = ["--url", worker.url]
    printed = sessionctl("history", sid, *options, env=worker.env, expect=0)
    lines = printed.stdout.splitlines()
    assert lines[0] == f"session {sid}: {len(mine)} events"
    assert [line.split()[1] for line in lines[1::2]] == [e["type"] for e in mine]
    assert "url=https://shop.example/p/1?color=red" in lines[5]
    assert "public.utm_campaign" in lines[4]
    past = sessionctl("history", sid, *options, "--after", mine[2]["id"], env=worker.env, expect=0)
    assert "public.color = red" in past.stdout.splitlines()
    unknown = sessionctl("history", new_session_id(), *options, env=worker.env, expect=1)
    assert "no session" in unknown.stderr
    # Personal fields are redacted unless asked for: the login's line and the state after it.
    login = lines[1 + 2 * 5]
    assert "userId=[redacted]" in login and "email=[redacted]" in login and "joao" not in printed.stdout.lower()
    after_login = sessionctl("history", sid, *options, "--after", mine[5]["id"], env=worker.env, expect=0)
    assert "profile.email = [redacted]" in after_login.stdout.splitlines()
    assert "profile.firstName = [redacted]" in after_login.stdout.splitlines()


def test_sessionctl_history_prints_personal_fields_only_when_asked(worker, service):
    sid = new_session_id()  # a personal public key of the sample rules, not an e-mail (the logs are scanned)
    event = public_set(sid, {"phone": "5511999990000", "marker": "phone"}, 0)
    assert service.post("/api/events", json=event).status_code == 202
    wait_for_session(service, sid, public_has("marker"))
    options = ["--url", worker.url]
    redacted = sessionctl("history", sid, *options, env=worker.env, expect=0).stdout
    assert "public.phone=[redacted]" in redacted and "5511999990000" not in redacted
    clear = sessionctl("history", sid, *options, "--personal", env=worker.env, expect=0).stdout
    assert "public.phone=5511999990000" in clear


def test_without_the_local_history_store_the_timeline_is_read_from_kafka(worker, service, story):
    """Last in the module: it restarts the worker. A partition restored on another worker, or a
    deleted history store, has only the locators: the records come from Kafka by offset."""
    sid, mine = story
    before = timeline(service, sid)
    assert worker.stop() == 0, worker.log_tail()
    history_dirs = sorted((worker.data_dir / "store").glob("history-*"))
    assert history_dirs, "no local history store was written"
    for path in history_dirs:
        shutil.rmtree(path)
    worker.start()
    assert timeline(service, sid) == before
    assert service.get(f"/api/v1/sessions/{sid}", params={"after": mine[2]["id"]}).json() == view_of(mine[:3])
    # What Kafka gave was kept: the history store holds the session's records again.
    assert sorted((worker.data_dir / "store").glob("history-*"))
