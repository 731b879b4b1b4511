"""``sessionctl export`` on the real broker, and the clocks it relies on: every record appended by
the API (and by ``dlq redrive``) carries its event's ``time`` as its Kafka timestamp."""

from __future__ import annotations

import json
import os
import re
import uuid
from datetime import timedelta

import orjson
import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, Consumer, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from schemas.events import decode_event
from streams.devkit.events import BASE_TIME, at, campaign_click, logged_in, new_session_id, page_view
from streams.kafka.producer import time_ms
from tests.support.cli import sessionctl
from tests.support.cli_runner import sessionctl_in_process
from tests.support.http import HttpClient, http_client
from tests.support.workers import shared_worker

pytestmark = pytest.mark.integration

# The times, as seconds from streams.devkit.events.BASE_TIME: an old day, then an hour around the range.
OLD = -3 * 86400
T1, T2 = 600, 2400  # [BASE+10 min, BASE+40 min)
OLD_EVENTS = 600


@pytest.fixture(scope="module")
def worker(kafka_bootstrap, tmp_path_factory):
    with shared_worker(kafka_bootstrap, tmp_path_factory, "export", partitions=4) as process:
        yield process


def read_topic(bootstrap: str, topic: str) -> list[Message]:
    """Every record of ``topic``, from offset 0 to the end."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4()}", "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions if ends[p] > 0])
        remaining, out = {p for p in ends if ends[p] > 0}, []
        while remaining:
            message = consumer.poll(10)
            assert message is not None and not message.error(), message and message.error()
            out.append(message)
            if message.offset() + 1 >= ends[message.partition()]:
                remaining.discard(message.partition())
        return out
    finally:
        consumer.close()


def post(client: HttpClient, events: list[dict]) -> None:
    for i in range(0, len(events), 400):
        response = client.post("/api/events", json=events[i : i + 400])
        assert response.status_code == 202, response.text


def ms(seconds: float) -> int:
    return time_ms(BASE_TIME + timedelta(seconds=seconds))


@pytest.fixture(scope="module")
def loaded(worker, kafka_bootstrap):
    """The topic: 600 old events, then one hour of events (two a minute) with three records produced
    directly in the middle of it: an in-range event stamped 3 minutes early (inside the slack), an
    out-of-range event stamped inside the range, and a record that is not an event."""
    topic = worker.env["SESSIONS_EVENTS_TOPIC"]
    sessions = [new_session_id() for _ in range(6)]
    old = [page_view(sessions[i % 6], f"https://s/old?i={i}", OLD + i) for i in range(OLD_EVENTS)]
    hour = []
    for minute in range(61):
        hour.append(page_view(sessions[minute % 6], f"https://s/p?m={minute}", minute * 60))
        hour.append(campaign_click(sessions[(minute + 1) % 6], minute * 60 + 30, utm_source="g", utm_campaign="bf"))
    edges = [page_view(sessions[0], "https://s/edge", s) for s in (T1, T2 - 0.001, T2)]
    early = page_view(sessions[1], "https://s/early-stamp", T1 + 60)  # stamped T1 - 3 min
    late = page_view(sessions[2], "https://s/late-stamp", T1 - 60)  # stamped T1 + 1 min, time outside
    with http_client(base_url=worker.url, timeout=30) as client:
        post(client, old)
        first, rest = [e for e in hour if e["time"] < at(T2)], [e for e in hour if e["time"] >= at(T2)]
        post(client, first + edges)
        producer = Producer({"bootstrap.servers": kafka_bootstrap, "partitioner": "murmur2_random"})
        producer.produce(topic, key=sessions[1].encode(), value=orjson.dumps(early), timestamp=ms(T1 - 180))
        producer.produce(topic, key=sessions[2].encode(), value=orjson.dumps(late), timestamp=ms(T1 + 60))
        producer.produce(topic, key=sessions[3].encode(), value=b"not an event", timestamp=ms(T1 + 120))
        assert producer.flush(10) == 0
        post(client, rest)
    by_api = old + hour + edges
    expected = {e["id"] for e in by_api if at(T1) <= e["time"] < at(T2)} | {early["id"]}
    return {
        "topic": topic,
        "sessions": sessions,
        "by_api": by_api,
        "expected": expected,
        "events": {e["id"]: e for e in [*by_api, early, late]},
        "total": len(by_api) + 3,
    }


def export(worker, tmp_path, *args: str, fmt: str = "jsonl", expect: int = 0):
    out = tmp_path / f"export-{uuid.uuid4().hex[:6]}.{fmt}"
    options = ["--from", at(T1), "--to", at(T2), "--format", fmt, "-o", str(out), *args]
    result = sessionctl("export", *options, env=worker.env, expect=expect)
    return out, result


def summary_numbers(stdout: str) -> dict[str, int]:
    match = re.search(
        r"exported (\d+) events .*: (\d+) records read from (\d+) of (\d+) partitions, (\d+) skipped", stdout
    )
    assert match, stdout
    written, read, used, partitions, skipped = map(int, match.groups())
    return {"written": written, "read": read, "used": used, "partitions": partitions, "skipped": skipped}


def test_every_record_the_api_appends_carries_its_event_time(loaded, kafka_bootstrap):
    records = read_topic(kafka_bootstrap, loaded["topic"])
    assert len(records) == loaded["total"]
    stamped = {}
    for message in records:
        kind, timestamp = message.timestamp()
        assert kind == TIMESTAMP_CREATE_TIME
        try:
            stamped[decode_event(message.value()).id] = timestamp
        except ValueError:
            continue
    for event in loaded["by_api"]:
        assert stamped[event["id"]] == time_ms(decode_event(orjson.dumps(event)).time), event["time"]


def test_a_jsonl_export_holds_exactly_the_events_of_the_range_without_reading_from_offset_0(worker, loaded, tmp_path):
    out, result = export(worker, tmp_path)
    lines = out.read_bytes().splitlines()
    ids = [orjson.loads(line)["id"] for line in lines]
    assert len(ids) == len(set(ids)) == len(loaded["expected"])
    assert set(ids) == loaded["expected"]
    for line in lines:  # each line is one event as appended, the early-stamped one included
        assert at(T1) <= decode_event(line).time.isoformat().replace("+00:00", "Z") < at(T2)
    numbers = summary_numbers(result.stdout)
    assert numbers["written"] == len(loaded["expected"])
    assert numbers["skipped"] == 1  # the record that is not an event
    assert numbers["partitions"] == 4
    # Found with the time index: the 600 old events (and most of the hour) were never read.
    assert numbers["read"] < loaded["total"] - OLD_EVENTS
    assert numbers["read"] <= 100, numbers


def test_a_parquet_export_reads_back_with_duckdb(worker, loaded, tmp_path):
    import duckdb

    out, result = export(worker, tmp_path, fmt="parquet")
    path = str(out)
    rows = duckdb.sql(f"select id from '{path}'").fetchall()
    assert len(rows) == len(loaded["expected"]) and {r[0] for r in rows} == loaded["expected"]
    counts = dict(duckdb.sql(f"select type, count(*) from '{path}' group by 1").fetchall())
    expected_types: dict[str, int] = {}
    for event_id in loaded["expected"]:
        kind = loaded["events"][event_id]["type"]
        expected_types[kind] = expected_types.get(kind, 0) + 1
    assert counts == expected_types
    bounds = duckdb.sql(f"select min(time), max(time) from '{path}'").fetchall()[0]
    assert bounds[0] == BASE_TIME + timedelta(seconds=T1)
    assert bounds[1] == BASE_TIME + timedelta(seconds=T2 - 0.001)
    campaigns = duckdb.sql(f"select distinct utm_source, utm_campaign from '{path}' where utm_source is not null")
    assert campaigns.fetchall() == [("g", "bf")]
    (data,) = duckdb.sql(f"select data from '{path}' where url = 'https://s/edge' limit 1").fetchall()[0]
    assert json.loads(data)["url"] == "https://s/edge"
    assert summary_numbers(result.stdout)["written"] == len(rows)


def test_type_and_session_filters(worker, loaded, tmp_path):
    events = loaded["events"]
    out, _ = export(worker, tmp_path, "--type", "navigation.campaign_clicked")
    ids = {orjson.loads(line)["id"] for line in out.read_bytes().splitlines()}
    assert ids == {i for i in loaded["expected"] if events[i]["type"] == "navigation.campaign_clicked"} != set()

    a, b = loaded["sessions"][:2]
    out, _ = export(worker, tmp_path, "--session", a, "--session", b, "--type", "navigation.page_viewed")
    ids = {orjson.loads(line)["id"] for line in out.read_bytes().splitlines()}
    wanted = {
        i
        for i in loaded["expected"]
        if events[i]["subject"] in (a, b) and events[i]["type"] == "navigation.page_viewed"
    }
    assert ids == wanted != set()


def test_bad_ranges_are_refused_naming_the_option(worker, tmp_path):
    out = str(tmp_path / "never.jsonl")
    for args, option in [
        (["--from", at(T2), "--to", at(T1)], "--to"),
        (["--from", at(T1), "--to", at(T1)], "--to"),
        (["--from", "2026-11-26T12:00:00", "--to", at(T2)], "--from"),
        (["--from", at(T1), "--to", "tomorrow"], "--to"),
        (["--from", at(T1), "--to", at(T2), "--type", "navigation.teleported"], "--type"),
        (["--from", at(T1), "--to", at(T2), "--format", "csv"], "--format"),
    ]:
        result = sessionctl_in_process("export", *args, "-o", out, env=worker.env, expect=2)
        assert f"error: {option}:" in result.stderr, (args, result.stderr)
    assert not (tmp_path / "never.jsonl").exists()


def test_redrive_re_appends_with_the_events_time_else_the_letters_timestamp(kafka_bootstrap, unique_name):
    topic = unique_name("events")
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for future in admin.create_topics([NewTopic(topic, 2, 1), NewTopic(f"{topic}.dlq", 2, 1)]).values():
        future.result()
    sid = new_session_id()
    event = page_view(sid, "https://s/?redriven=1", OLD)
    letter_ms = ms(-86400)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(f"{topic}.dlq", key=sid.encode(), value=orjson.dumps(event), timestamp=letter_ms)
    producer.produce(f"{topic}.dlq", key=sid.encode(), value=b"still not an event", timestamp=letter_ms)
    assert producer.flush(10) == 0
    env = {
        **os.environ,
        "SESSIONS_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "SESSIONS_EVENTS_TOPIC": topic,
        "SESSIONS_APP_ID": unique_name("app"),
    }
    assert "re-drove 2 dead letter(s)" in sessionctl("dlq", "redrive", env=env, expect=0).stdout
    stamps = {m.value(): m.timestamp() for m in read_topic(kafka_bootstrap, topic)}
    assert stamps[orjson.dumps(event)] == (TIMESTAMP_CREATE_TIME, ms(OLD))
    assert stamps[b"still not an event"] == (TIMESTAMP_CREATE_TIME, letter_ms)


# --- personal fields: sealed in the log, redacted unless --master-key ----------------------------


@pytest.fixture(scope="module")
def sealed(kafka_bootstrap, tmp_path_factory):
    """A worker of its own (the other tests count their topic's records) that sealed two logins in
    the range, then erased the second person: their e-mails and user ids are in the log only sealed."""
    with shared_worker(kafka_bootstrap, tmp_path_factory, "export-sealed", partitions=2) as process:
        run = uuid.uuid4().hex[:8]
        kept, gone = new_session_id(), new_session_id()
        people = {
            kept: (f"user-{run}-kept", f"ana.{run}@example.com"),
            gone: (f"user-{run}-gone", f"bia.{run}@example.com"),
        }
        events = [page_view(kept, "https://s/?sealed=1", T1 + 100), page_view(gone, "https://s/?sealed=2", T1 + 110)]
        events += [logged_in(sid, user, email, T1 + 200, firstName="Ana") for sid, (user, email) in people.items()]
        with http_client(base_url=process.url, headers=process.service_headers, timeout=30) as client:
            post(client, events)
            erased = client.delete("/api/v1/people", params={"email": people[gone][1]})
            assert erased.status_code == 202, erased.text
        raw = b"".join(m.value() or b"" for m in read_topic(kafka_bootstrap, process.env["SESSIONS_EVENTS_TOPIC"]))
        for user, email in people.values():
            assert email.encode() not in raw and user.encode() not in raw
        assert raw.count(b'"enc:v1:') >= 2 * 3  # userId, email, firstName of each login
        yield {"worker": process, "kept": kept, "gone": gone, "people": people}


def sealed_export(
    sealed, tmp_path, env: dict[str, str], *args: str, fmt: str = "jsonl", expect: int = 0, run=sessionctl
):
    out = tmp_path / f"sealed-{uuid.uuid4().hex[:6]}.{fmt}"
    chosen = [arg for sid in (sealed["kept"], sealed["gone"]) for arg in ("--session", sid)]
    options = ["--from", at(T1), "--to", at(T2), "--format", fmt, "-o", str(out), *chosen, *args]
    return out, run("export", *options, env=env, expect=expect)


def without_master_key(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k != "SESSIONS_MASTER_KEY"}


def logins_of_jsonl(out) -> dict[str, dict]:
    events = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert len(events) == 4, events  # the two page views and the two logins: none dropped
    return {e["subject"]: e["data"] for e in events if e["type"] == "auth.logged_in"}


def logins_of_parquet(out) -> dict[str, dict]:
    import duckdb

    rows = duckdb.sql(f"select * from '{out}'").fetchall()
    assert len(rows) == 4, rows
    columns = [c[0] for c in duckdb.sql(f"describe select * from '{out}'").fetchall()]
    found = {}
    for row in rows:
        cells = dict(zip(columns, row, strict=True))
        if cells["type"] == "auth.logged_in":
            found[cells["subject"]] = json.loads(cells["data"])
    return found


def cells_text(out, fmt: str) -> str:
    if fmt == "jsonl":
        return out.read_text()
    import duckdb

    return repr(duckdb.sql(f"select * from '{out}'").fetchall())


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_sealed_logins_are_exported_redacted_without_the_master_key(sealed, tmp_path, fmt):
    env = without_master_key(sealed["worker"].env)
    out, result = sealed_export(sealed, tmp_path, env, fmt=fmt)
    assert "personal fields: redacted" in result.stderr, result.stderr
    logins = logins_of_jsonl(out) if fmt == "jsonl" else logins_of_parquet(out)
    assert set(logins) == {sealed["kept"], sealed["gone"]}
    for data in logins.values():
        assert data["email"] == "[redacted]@redacted.invalid"
        assert data["userId"] == data["firstName"] == "[redacted]"
    text = cells_text(out, fmt)
    for user, email in sealed["people"].values():
        assert email not in text and user not in text
    assert "enc:v1:" not in text and "[redacted]@redacted.invalid" in text
    assert "exported 4 events" in result.stdout, result.stdout


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_the_master_key_opens_them_and_an_erased_persons_read_erased(sealed, tmp_path, fmt):
    out, result = sealed_export(sealed, tmp_path, sealed["worker"].env, "--master-key", fmt=fmt)
    assert "personal fields: opened with the master key" in result.stderr, result.stderr
    logins = logins_of_jsonl(out) if fmt == "jsonl" else logins_of_parquet(out)
    user, email = sealed["people"][sealed["kept"]]
    kept = logins[sealed["kept"]]
    assert (kept["userId"], kept["email"], kept["firstName"]) == (user, email, "Ana")
    gone = logins[sealed["gone"]]
    assert gone["email"] == "[erased]@erased.invalid" and gone["userId"] == "[erased]"
    assert sealed["people"][sealed["gone"]][1] not in cells_text(out, fmt)


def test_the_master_key_file_of_the_data_folder_and_no_key_at_all(sealed, tmp_path):
    worker = sealed["worker"]
    folder = tmp_path / "ops-data"
    folder.mkdir()
    (folder / "master.key").write_text(worker.env["SESSIONS_MASTER_KEY"] + "\n")
    env = {**without_master_key(worker.env), "SESSIONS_DATA_DIR": str(folder)}
    out, _ = sealed_export(sealed, tmp_path, env, "--master-key")
    assert logins_of_jsonl(out)[sealed["kept"]]["email"] == sealed["people"][sealed["kept"]][1]

    empty = tmp_path / "no-key"
    empty.mkdir()
    env = {**without_master_key(worker.env), "SESSIONS_DATA_DIR": str(empty)}
    out, result = sealed_export(sealed, tmp_path, env, "--master-key", expect=2, run=sessionctl_in_process)
    assert "error: --master-key:" in result.stderr, result.stderr
    assert not out.exists() and not (empty / "master.key").exists()  # none generated: it would open nothing
