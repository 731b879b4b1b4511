"""Rebuilding a projection: ``sessionctl rebuild --rules B`` folds the whole log into a new table
generation while the worker keeps serving the current one; ``--switch`` makes the worker serve it,
and old sessions come out with the derived keys of the new rules. Real broker, real worker, the CLI
as a real subprocess."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from streams.config.rules_file import parse_rules_text
from streams.config.settings import Settings
from streams.config.topics import changelog_topic
from streams.devkit.events import campaign_click, logged_in, new_session_id, page_view
from streams.devkit.paths import SAMPLE_RULES_FILE, sample_rules
from streams.devkit.workers import SERVICE_HEADERS
from streams.kafka.admin import TopicSpec, ensure_topics
from tests.integration.test_fold_engine_faults import produce
from tests.support.cli import sessionctl, spawn_sessionctl
from tests.support.http import http_client
from tests.support.streams import expected_views, served_views, stream_of_events
from tests.support.topics import read_topic

pytestmark = pytest.mark.integration

RULES_A = sample_rules()
# Rules B: the same file with another price table for the blackfriday audience and a new audience.
RULES_B_TEXT = SAMPLE_RULES_FILE.read_text().replace('price_tables = ["promo-bf"]', 'price_tables = ["promo-bf-b"]') + (
    '\n[[campaigns]]\nname = "summer-b"\nwhen = { utm_campaign = "summer" }\nprice_tables = ["promo-summer"]\n'
)
RULES_B = parse_rules_text(RULES_B_TEXT, "rules B")
SHOPPER_EMAIL = "rebuild.shopper@example.com"


def served_as(
    url: str, expected: dict[str, dict], timeout: float = 90.0, headers: dict[str, str] | None = None
) -> dict[str, dict]:
    """Poll until every session is served as expected (503 while the worker switches is fine)."""
    deadline = time.monotonic() + timeout
    served: dict[str, dict] = {}
    with http_client(base_url=url, timeout=10) as client:
        for sid, document in expected.items():
            while True:
                response = client.get(f"/api/v1/sessions/{sid}", headers={**SERVICE_HEADERS, **(headers or {})})
                assert response.status_code in (200, 404, 503), response.text
                if response.status_code == 503:
                    assert response.headers.get("Retry-After")
                if response.status_code == 200:
                    served[sid] = response.json()
                    if served[sid] == document:
                        break
                if time.monotonic() > deadline:
                    raise AssertionError(f"{sid} not served as expected: {served.get(sid)} != {document}")
                time.sleep(0.05)
    return served


def test_a_rebuild_with_new_rules_then_a_switch_gives_old_sessions_the_new_derived_keys(
    worker_factory, kafka_bootstrap, tmp_path
):
    worker = worker_factory(partitions=3, SESSIONS_RULES_FILE=str(SAMPLE_RULES_FILE)).start()
    topic = worker.env["SESSIONS_EVENTS_TOPIC"]
    stream, distinct = stream_of_events(seed=9, sessions=30, events=1500)
    produce(kafka_bootstrap, topic, stream)
    # A login through the API, sealed in the log: the rebuild opens it for the fold and seals the
    # state it writes again (the new generation's changelog holds no e-mail address in clear).
    shopper = next(iter(distinct))
    login = logged_in(shopper, "u-rebuild", SHOPPER_EMAIL, 1600, firstName="Rui")
    with http_client(base_url=worker.url, timeout=10, headers=SERVICE_HEADERS) as client:
        assert client.post("/api/events", json=[login]).status_code == 202
    distinct[shopper].append(login)
    as_a, as_b = expected_views(distinct, RULES_A), expected_views(distinct, RULES_B)
    assert as_a != as_b, "rules B must derive other keys for these sessions"
    # The login comes after the shopper's marker: wait for it too (its fold may come a batch later).
    served_as(worker.url, {shopper: as_a[shopper]})
    assert served_views(worker.url, distinct) == as_a

    rules_b = tmp_path / "rules-b.toml"
    rules_b.write_text(RULES_B_TEXT)
    rebuilt = sessionctl("rebuild", "--rules", str(rules_b), env=worker.env, expect=0, timeout=180)
    found = re.search(r"generation 2: (\d+) sessions, (\d+) events folded \((\d+) records read\)", rebuilt.stdout)
    assert found, rebuilt.stdout
    assert int(found[1]) == len(distinct)
    assert int(found[3]) == len(stream) + 1  # every record of the log (and the login), none twice
    assert "run `sessionctl rebuild --switch`" in rebuilt.stderr
    # The worker still serves generation 1, with rules A.
    assert served_as(worker.url, as_a, timeout=5) == as_a

    switched = sessionctl("rebuild", "--switch", env=worker.env, expect=0, timeout=180)
    assert "switched: the workers serve generation 2" in switched.stdout
    assert served_as(worker.url, as_b) == as_b
    assert as_b[shopper]["namespaces"]["profile"]["email"]["value"] == SHOPPER_EMAIL
    changelog = changelog_topic(Settings.from_env(worker.env).changelog_topic, 2)
    records = [record.value or b"" for record in read_topic(kafka_bootstrap, changelog)]
    assert any(b'"enc:v1:' in value for value in records)
    assert not any(SHOPPER_EMAIL.encode() in value for value in records)

    # A new event after the switch is folded with rules B too, onto the rebuilt state.
    old = next(iter(distinct))
    fresh = new_session_id()
    after = [
        campaign_click(old, 5000, utm_campaign="summer"),
        page_view(old, "https://s/p?marker=after", 5001),
        campaign_click(fresh, 5000, utm_campaign="summer"),
        page_view(fresh, "https://s/p?marker=after", 5001),
    ]
    with http_client(base_url=worker.url, timeout=10) as client:
        assert client.post("/api/events", json=after).status_code == 202
    distinct[old] += after[:2]
    distinct[fresh] = after[2:]
    now_b = expected_views({sid: distinct[sid] for sid in (old, fresh)}, RULES_B)
    assert served_as(worker.url, now_b) == now_b
    assert now_b[fresh]["namespaces"]["profile"]["priceTables"]["value"] == "promo-summer"
    # Nothing lost: every session's event count is its distinct events.
    for sid, document in served_as(worker.url, expected_views(distinct, RULES_B)).items():
        assert document["meta"]["eventCount"] == len(distinct[sid]), sid

    # A restart reads the control topic first: it serves generation 2 (rules B), not its local file's.
    assert worker.stop() == 0
    worker.start()
    assert served_as(worker.url, expected_views(distinct, RULES_B), timeout=30)
    assert "rules than SESSIONS_RULES_FILE" in worker.log_tail(400)


def test_two_workers_a_resumed_rebuild_and_a_switch_in_one_go(worker_factory, kafka_bootstrap, tmp_path):
    # Each keeps the other's partitions warm as standbys: those switch to the new changelog too.
    env = {"SESSIONS_RULES_FILE": str(SAMPLE_RULES_FILE), "SESSIONS_STANDBY_REPLICAS": "1"}
    w1 = worker_factory("w1", partitions=4, **env).start()
    w2 = worker_factory("w2", partitions=4, **env).start()
    topic = w1.env["SESSIONS_EVENTS_TOPIC"]
    stream, distinct = stream_of_events(seed=11, sessions=40, events=1200)
    first, second = stream[: len(stream) // 2], stream[len(stream) // 2 :]
    produce(kafka_bootstrap, topic, first)
    rules_b = tmp_path / "rules-b.toml"
    rules_b.write_text(RULES_B_TEXT)
    scratch = tmp_path / "rebuild"  # the rebuild's own data folder, beside the workers'
    env = {**w1.env, "SESSIONS_DATA_DIR": str(scratch)}

    rebuilt = sessionctl("rebuild", "--rules", str(rules_b), env=env, expect=0, timeout=180)
    assert f"({len(first)} records read)" in rebuilt.stdout

    # More events, then the same rules again with --switch: the rebuild goes on from where its
    # stores stand (as after Ctrl-C) and reads only what was appended since.
    produce(kafka_bootstrap, topic, second)
    options = ["--rules", str(rules_b), "--switch", "--max-lag", "0"]
    switched = sessionctl("rebuild", *options, env=env, expect=0, timeout=180)
    assert "going on with the rebuild of generation 2" in switched.stderr
    assert f"({len(second)} records read)" in switched.stdout
    assert "switched: the workers serve generation 2" in switched.stdout
    assert not (scratch / "rebuild-g2").exists()  # the scratch stores go once switched

    # Both workers switched: every session read through either (reads go to the owner) is rules B.
    expected = expected_views(distinct, RULES_B)
    assert served_as(w1.url, expected) == expected
    assert served_as(w2.url, expected) == expected
    for worker in (w1, w2):
        assert "switching from table generation 1 to 2" in worker.log_tail(400)
        # Reads that may take a standby copy: each worker answers from its own stores (owned or
        # standby), so every session through both workers shows its standby copies are rules B.
        assert served_as(worker.url, expected, headers={"X-Session-Allow-Stale": "true"}) == expected

    # A switch with nothing newer to switch to is refused, clearly.
    again = sessionctl("rebuild", "--switch", env=env, expect=2)
    assert "no rebuild to switch to" in again.stderr


def test_ctrl_c_stops_a_rebuild_that_goes_on_where_it_stood(worker_factory, kafka_bootstrap):
    # No worker needed: the rebuild reads the log alone. Its fold is made slow (each batch, at most
    # 20,000 events, takes 2 s more), so it is still folding when its first progress line shows.
    env = worker_factory(partitions=4, SESSIONS_RULES_FILE=str(SAMPLE_RULES_FILE)).env
    topic = env["SESSIONS_EVENTS_TOPIC"]
    ensure_topics(kafka_bootstrap, [TopicSpec(topic, 4)])
    stream = [page_view(f"00000000-0000-4000-8000-{n % 5000:012d}", f"https://s/p?n={n}", n) for n in range(40_000)]
    produce_many(kafka_bootstrap, topic, stream)

    process, log = spawn_sessionctl("rebuild", env={**env, "SESSIONS_FAULT_POINT": "slow:2"})
    try:
        progress = wait_for_line(process, log, PROGRESS, 120)  # a first batch folded and written
        process.send_signal(signal.SIGINT)
        process.wait(60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = log.read_text()
    assert process.returncode == 130, output
    assert "stopped before the end: run the same command again" in output
    first = int(re.search(r"\((\d+) records read\)", output)[1])
    assert 0 < int(progress[1]) <= first < len(stream), (progress[0], first)

    again = sessionctl("rebuild", env=env, expect=0, timeout=180)
    assert "going on with the rebuild of generation 2" in again.stderr
    second = int(re.search(r"(\d+) sessions, \d+ events folded \((\d+) records read\)", again.stdout)[2])
    assert first + second == len(stream)  # nothing read twice, nothing left out
    assert "generation 2: 5000 sessions" in again.stdout


PROGRESS = re.compile(r"^rebuild: (\d+)/\d+ records read, [1-9]\d* events folded", re.MULTILINE)


def wait_for_line(process: subprocess.Popen[str], log: Path, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
    """The first match of ``pattern`` in the log of a running ``sessionctl``."""
    deadline = time.monotonic() + timeout
    while (found := pattern.search(log.read_text())) is None:
        assert process.poll() is None, f"it ended (exit {process.returncode}) before the line:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"no such line within {timeout:.0f}s:\n{log.read_text()}"
        time.sleep(0.05)  # polling its log for the line
    return found


def produce_many(bootstrap: str, topic: str, stream: list[dict]) -> None:
    # murmur2, as the workers read: a record on another partition is moved by the live workers, and
    # a rebuild of a log no worker has folded would leave it out (docs/engine.md).
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 20,
                         "partitioner": "murmur2_random"})  # fmt: skip
    for event in stream:
        while True:
            try:
                producer.produce(topic, key=event["subject"].encode(), value=orjson.dumps(event))
                break
            except BufferError:
                producer.poll(0.1)  # the client's queue is full: let it deliver
    assert producer.flush(60) == 0
