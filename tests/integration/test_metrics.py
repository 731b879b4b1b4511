"""/metrics on a real worker (scraped and parsed as Prometheus text) and its logs as JSON lines."""

from __future__ import annotations

import re
import time
import uuid

import orjson
import pytest
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from streams.devkit.events import new_session_id, page_view, public_set
from tests.support.http import HttpClient, http_client
from tests.support.sessions import wait_for_session
from tests.support.workers import shared_worker

pytestmark = pytest.mark.integration

SERVICE_KEY = "test-metrics-service-key-" + uuid.uuid4().hex
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-")
SIGNING_KEY = "test-metrics-signing-key-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def worker(kafka_bootstrap, tmp_path_factory):
    with shared_worker(
        kafka_bootstrap, tmp_path_factory, "metrics", partitions=4,
        SESSIONS_LOG_FORMAT="json", SESSIONS_LOG_LEVEL="info",
        SESSIONS_SERVICE_KEYS=f"{SERVICE_KEY}=events:trusted sessions:read",
        SESSIONS_SESSION_SIGNING_KEY=SIGNING_KEY,
    ) as process:  # fmt: skip
        yield process


@pytest.fixture
def client(worker):
    with http_client(base_url=worker.url, timeout=10.0, headers={"Authorization": f"Bearer {SERVICE_KEY}"}) as c:
        yield c


def scrape(client: HttpClient) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    """Metric family name -> its samples (sample name, labels, value)."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        family.name: [(s.name, dict(s.labels), s.value) for s in family.samples]
        for family in text_string_to_metric_families(response.text)
    }


def value(families, sample_name: str, **labels: str) -> float:
    family = sample_name.removesuffix("_total").removesuffix("_count").removesuffix("_sum")
    return sum(v for name, got, v in families.get(family, []) if name == sample_name and labels.items() <= got.items())


def test_metrics_count_events_requests_and_lag(client, worker, kafka_bootstrap):
    before = scrape(client)
    sessions = [new_session_id() for _ in range(3)]
    events = [page_view(sid, f"https://s/?n={i}", i) for i, sid in enumerate(sessions * 2)]
    events += [public_set(sessions[0], {"k": {"value": "v"}}, 10)]
    assert client.post("/api/events", json=events).status_code == 202
    wait_for_session(client, sessions[0], 3)
    for sid in sessions[1:]:
        wait_for_session(client, sid, 2)
    assert client.get(f"/api/v1/sessions/{new_session_id()}").status_code == 404
    # A storefront: a new session, then a read with its cookie.
    with http_client(base_url=worker.url, timeout=10.0) as browser:
        assert browser.post("/api/sessions", json={"public": {"a": {"value": "1"}}}).status_code < 300
        assert browser.get("/api/sessions", params={"items": "public.*"}).status_code == 200
    # A record that is not an event, straight onto the topic: a dead letter.
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(worker.env["SESSIONS_EVENTS_TOPIC"], key=new_session_id().encode(), value=b"not json")
    assert producer.flush(10) == 0

    deadline = time.monotonic() + 30
    while True:
        after = scrape(client)
        lag = [v for name, _, v in after.get("sessions_consumer_lag", []) if name == "sessions_consumer_lag"]
        dead = value(after, "sessions_dead_letters_total") - value(before, "sessions_dead_letters_total")
        if (dead >= 1 and lag and not any(lag)) or time.monotonic() > deadline:
            break
        time.sleep(0.2)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert lag and not any(lag), after.get("sessions_consumer_lag")
    # Events folded by type: what was sent (the storefront's own events come on top, as other types).
    assert moved("sessions_events_folded_total", type="navigation.page_viewed") == 6
    assert moved("sessions_events_folded_total", type="session.public_set") >= 1
    assert moved("sessions_dead_letters_total", type="undecoded") == 1
    assert moved("sessions_fold_batch_size_count") >= 1
    assert moved("sessions_fold_batch_duration_seconds_count") >= 1
    # HTTP: by route template and status.
    assert moved("sessions_http_requests_total", route="/api/events", method="POST", status="202") == 1
    reads = moved("sessions_http_requests_total", route="/api/v1/sessions/{session_id}", method="GET", status="404")
    assert reads >= 1  # wait_for_session may meet a 404 before the fold, and the unknown session is one
    assert moved("sessions_http_requests_total", route="/api/v1/sessions/{session_id}", status="200") >= 3
    assert moved("sessions_http_request_duration_seconds_count", route="/api/events", method="POST") == 1
    assert moved("sessions_http_requests_total", route="/api/sessions", method="GET", status="200") == 1
    assert value(after, "sessions_owned_partitions") == 4
    assert value(after, "sessions_standby_partitions") == 0
    assert value(after, "sessions_partition_restoring") == 0
    assert "sessions_changelog_restored_records" in after
    assert "sessions_forwarded_requests" in after  # one worker: nothing forwarded
    # No session id (nor any other UUID), token or key in any label.
    for samples in after.values():
        for _, labels, _ in samples:
            for label in labels.values():
                assert not UUID.search(label), labels
                assert SERVICE_KEY not in label, labels
                assert not label.startswith("/api/sessions/") or label == "/api/sessions/{session_token}", labels


def test_every_log_line_is_json_and_holds_no_secret(client, worker, kafka_bootstrap):
    # Its own dead letter (whatever ran before): a record that is not an event, under a known key.
    before = value(scrape(client), "sessions_dead_letters_total")
    sid = new_session_id()
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(worker.env["SESSIONS_EVENTS_TOPIC"], key=sid.encode(), value=b"not json either")
    assert producer.flush(10) == 0
    deadline = time.monotonic() + 30
    while value(scrape(client), "sessions_dead_letters_total") < before + 1:
        assert time.monotonic() < deadline, "the record was not dead-lettered"
        time.sleep(0.1)  # polling the worker's counter (the log line is written before it moves)
    lines = [line for line in worker.log_path.read_text().splitlines() if line.strip()]
    not_json = [line for line in lines if not _is_json(line)]
    assert not not_json, not_json[:5]
    records = [orjson.loads(line) for line in lines]
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    text = "\n".join(lines)
    assert SERVICE_KEY not in text and SIGNING_KEY not in text
    dead = [r for r in records if r["message"].startswith("dead letter")]
    # This test's letter is logged with its session id, and so is every other one.
    assert [r for r in dead if r.get("session_id") == sid], dead[-3:]
    assert all("session_id" in r for r in dead), [r for r in dead if "session_id" not in r]


def _is_json(line: str) -> bool:
    try:
        return isinstance(orjson.loads(line), dict)
    except orjson.JSONDecodeError:
        return False
