"""``sessionctl export --sessions`` on the real broker: the documents as of T2 of exactly the
sessions active in [T1, T2), each equal to the pure fold of its events whose time is before T2."""

from __future__ import annotations

import json
import os
import uuid
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from projections.session import fold
from schemas.events import EventDecodeError, decode_event
from schemas.session import SessionState, encode_view
from streams.config.rules_file import load_rules
from streams.devkit.events import (
    BASE_TIME,
    at,
    campaign_click,
    cart_item_added,
    logged_in,
    new_session_id,
    page_view,
    public_set,
)
from streams.kafka.producer import time_ms
from tests.support.cli import sessionctl
from tests.support.cli_runner import sessionctl_in_process
from tests.support.http import http_client

pytestmark = pytest.mark.integration

T1, T2 = 600, 2400  # seconds after BASE_TIME: [BASE+10 min, BASE+40 min)
RULES = Path(__file__).resolve().parents[2] / "ops" / "rules.sample.toml"


def ms(seconds: float) -> int:
    return time_ms(BASE_TIME + timedelta(seconds=seconds))


def read_log(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    """(key, value) of every record of ``topic``, partition by partition in offset order."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4()}", "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions if ends[p] > 0])
        remaining = {p for p in ends if ends[p] > 0}
        by_partition: dict[int, list[tuple[bytes | None, bytes | None]]] = {p: [] for p in partitions}
        while remaining:
            message = consumer.poll(10)
            assert message is not None and not message.error(), message and message.error()
            by_partition[message.partition()].append((message.key(), message.value()))
            if message.offset() + 1 >= ends[message.partition()]:
                remaining.discard(message.partition())
        return [record for p in sorted(by_partition) for record in by_partition[p]]
    finally:
        consumer.close()


@pytest.fixture(scope="module")
def log(kafka_bootstrap):
    """A topic of 3 partitions with sessions whose events fall before, inside and after the range."""
    topic = f"export-sessions-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for future in admin.create_topics([NewTopic(topic, 3, 1)]).values():
        future.result()
    s = {name: new_session_id() for name in ("before", "both", "inside_after", "after", "at_t1", "at_t2", "skewed")}
    s["cart"], s["wrong_key"], s["many"] = new_session_id(), new_session_id(), new_session_id()
    records: list[tuple[str, dict | bytes, int]] = []  # (key, event or raw value, Kafka timestamp ms)

    def add(event: dict, stamp_seconds: float | None = None, key: str | None = None) -> dict:
        seconds = (decode_event(orjson.dumps(event)).time - BASE_TIME).total_seconds()
        records.append((key or event["subject"], event, ms(seconds if stamp_seconds is None else stamp_seconds)))
        return event

    add(page_view(s["before"], "https://s/?utm_source=old", -86400))
    add(page_view(s["before"], "https://s/p", T1 - 1))
    add(page_view(s["both"], "https://s/?utm_source=mail", 100))
    both_click = add(campaign_click(s["both"], T1 + 60, utm_source="g", utm_campaign="blackfriday"))
    add(both_click)  # a redelivery: the fold skips the id it remembers
    add(page_view(s["inside_after"], "https://s/in?postalCode=1", T2 - 60))
    add(public_set(s["inside_after"], {"country": "BRA", "postalCode": "04561000"}, T2 - 30))
    add(campaign_click(s["inside_after"], T2 + 10, utm_source="late"))
    add(page_view(s["after"], "https://s/after", T2 + 1))
    add(page_view(s["at_t1"], "https://s/t1", T1))
    add(page_view(s["at_t2"], "https://s/early", T1 - 100))
    add(page_view(s["at_t2"], "https://s/t2", T2))
    # Inside the range, stamped 3 minutes after T2 (within the default 5 minute slack): folded.
    add(page_view(s["skewed"], "https://s/?utm_campaign=skew", T2 - 60), stamp_seconds=T2 + 180)
    add(cart_item_added(s["cart"], "sku-1", 2, 10.1, "BRL", T1 + 5))
    add(cart_item_added(s["cart"], "sku-2", 1, 5.0, "USD", T1 + 6))  # refused: another currency
    add(page_view(s["wrong_key"], "https://s/wrong", T1 + 7), key=s["both"])  # the worker dead-letters it
    for i in range(50):
        add(page_view(s["many"], f"https://s/m?i={i}", -3600 + i * 60))
    records.append((s["both"], b"not an event", ms(T1 + 8)))

    producer = Producer(
        {"bootstrap.servers": kafka_bootstrap, "partitioner": "murmur2_random", "enable.idempotence": True}
    )
    for key, event, stamp in records:
        value = event if isinstance(event, bytes) else orjson.dumps(event)
        producer.produce(topic, key=key.encode(), value=value, timestamp=stamp)
    assert producer.flush(10) == 0
    env = {
        **os.environ,
        "SESSIONS_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "SESSIONS_EVENTS_TOPIC": topic,
        "SESSIONS_APP_ID": f"app-{uuid.uuid4().hex[:8]}",
        "SESSIONS_RULES_FILE": str(RULES),
    }
    return {"topic": topic, "sessions": s, "env": env, "log": read_log(kafka_bootstrap, topic)}


def expected_documents(log_records, only: set[str] | None = None) -> dict[str, SessionState]:
    """What the export must hold, from the pure fold: the sessions with an event in [T1, T2), each
    folded over its events whose time is before T2, in log order (records the worker would not fold
    left out: not events, or keyed by another session)."""
    by_session: dict[str, list] = {}
    active: set[str] = set()
    for key, value in log_records:
        try:
            event = decode_event(value)
        except EventDecodeError:
            continue
        if key != event.subject.encode() or event.time >= BASE_TIME + timedelta(seconds=T2):
            continue
        by_session.setdefault(event.subject, []).append(event)
        if event.time >= BASE_TIME + timedelta(seconds=T1):
            active.add(event.subject)
    rules = load_rules(str(RULES))
    documents = {}
    for subject in active:
        if only is None or subject in only:
            state = fold(by_session[subject], rules=rules)
            assert state is not None
            documents[subject] = state
    return documents


def export(log, tmp_path, *args: str, fmt: str = "jsonl", expect: int = 0):
    out = tmp_path / f"sessions-{uuid.uuid4().hex[:6]}.{fmt}"
    options = ["--sessions", "--from", at(T1), "--to", at(T2), "--format", fmt, "-o", str(out), *args]
    result = sessionctl("export", *options, env=log["env"], expect=expect)
    return out, result


def test_jsonl_holds_the_fold_as_of_t2_of_exactly_the_sessions_active_in_the_range(log, tmp_path):
    out, result = export(log, tmp_path)
    s = log["sessions"]
    expected = expected_documents(log["log"])
    assert set(expected) == {s[name] for name in ("both", "inside_after", "at_t1", "skewed", "cart")}
    lines = out.read_bytes().splitlines()
    documents = {orjson.loads(line)["id"]: line for line in lines}
    assert len(documents) == len(lines)
    assert set(documents) == set(expected)
    for subject, state in expected.items():
        assert documents[subject] == encode_view(state), subject  # as the service API serves it
        assert "facts" not in orjson.loads(documents[subject])
    both = orjson.loads(documents[s["both"]])
    assert both["meta"]["eventCount"] == 2 and both["meta"]["firstEventTime"] == at(100)
    assert both["namespaces"]["rnb"]["campaigns"]  # the rules of SESSIONS_RULES_FILE applied
    assert "utm_source" not in orjson.loads(documents[s["inside_after"]])["namespaces"]["public"]  # after T2
    assert orjson.loads(documents[s["cart"]])["namespaces"]["cart"]["cartItems"]["value"] == 2  # USD refused
    assert f"exported {len(expected)} sessions to {out} (jsonl)" in result.stdout, result.stdout
    assert "1 skipped (not events), 1 refused" in result.stdout, result.stdout
    assert not out.with_name(out.name + ".partial").exists()


def test_parquet_reads_back_with_duckdb(log, tmp_path):
    import duckdb

    out, result = export(log, tmp_path, fmt="parquet")
    path = str(out)
    expected = expected_documents(log["log"])
    assert duckdb.sql(f"select count(*) from '{path}'").fetchall() == [(len(expected),)]
    rows = duckdb.sql(
        f"select id, first_event_time, last_event_time, event_count, document from '{path}' order by id"
    ).fetchall()
    assert [row[0] for row in rows] == sorted(expected)
    for subject, first, last, count, document in rows:
        state = expected[subject]
        assert document.encode() == encode_view(state)
        assert count == state.meta.event_count
        assert first.isoformat().replace("+00:00", "Z") == state.meta.first_event_time
        assert last.isoformat().replace("+00:00", "Z") == state.meta.last_event_time
    s = log["sessions"]
    assert duckdb.sql(
        f"select utm_source, utm_campaign, channel from '{path}' where id = '{s['both']}'"
    ).fetchall() == [("g", "blackfriday", "1")]
    (region,) = duckdb.sql(f"select regionId from '{path}' where id = '{s['inside_after']}'").fetchall()[0]
    assert (
        region
        == json.loads(rows[[r[0] for r in rows].index(s["inside_after"])][4])["namespaces"]["checkout"]["regionId"][
            "value"
        ]
    )
    assert f"exported {len(expected)} sessions" in result.stdout


def test_session_filter_and_rules_option(log, tmp_path):
    s = log["sessions"]
    chosen = {s["both"], s["before"], s["after"]}
    out, _ = export(log, tmp_path, *(arg for sid in sorted(chosen) for arg in ("--session", sid)))
    expected = expected_documents(log["log"], only=chosen)
    assert set(expected) == {s["both"]}
    assert out.read_bytes().splitlines() == [encode_view(expected[s["both"]])]

    # Another rules file than SESSIONS_RULES_FILE: no rules at all, no campaigns derived.
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    out, _ = export(log, tmp_path, "--session", s["both"], "--rules", str(empty))
    (document,) = out.read_bytes().splitlines()
    assert "rnb" not in orjson.loads(document)["namespaces"]


def test_bad_options_are_refused_naming_the_option(log, tmp_path):
    out = str(tmp_path / "never.jsonl")
    for args, option in [
        (["--from", at(T2), "--to", at(T1)], "--to"),
        (["--from", at(T1), "--to", at(T1)], "--to"),
        (["--from", at(T1), "--to", at(T2), "--type", "navigation.page_viewed"], "--type"),
        (["--from", at(T1), "--to", at(T2), "--rules", str(tmp_path / "missing.toml")], "--rules"),
    ]:
        result = sessionctl_in_process("export", "--sessions", *args, "-o", out, env=log["env"], expect=2)
        assert f"error: {option}:" in result.stderr, (args, result.stderr)
    options = ["--from", at(T1), "--to", at(T2), "--rules", str(RULES), "-o", out]
    result = sessionctl_in_process("export", *options, env=log["env"], expect=2)
    assert "error: --rules:" in result.stderr
    assert not (tmp_path / "never.jsonl").exists()
    help_text = sessionctl_in_process("export", "--help", env=log["env"], expect=0).stdout
    assert "--sessions" in help_text and "active in the range" in help_text


# --- personal fields: sealed in the log, redacted unless --master-key ----------------------------


@pytest.fixture(scope="module")
def sealed(kafka_bootstrap, tmp_path_factory):
    """A worker (with the sample rules) that sealed a login in the range: the e-mail and user id are
    in its log only sealed."""
    from tests.support.workers import shared_worker

    rules = str(RULES)
    with shared_worker(kafka_bootstrap, tmp_path_factory, "sessions-sealed", 2, SESSIONS_RULES_FILE=rules) as worker:
        run = uuid.uuid4().hex[:8]
        sid, user, email = new_session_id(), f"user-{run}", f"ana.{run}@example.com"
        events = [
            campaign_click(sid, T1 + 100, utm_source="g", utm_campaign="blackfriday"),
            logged_in(sid, user, email, T1 + 200, firstName="Ana", priceTables=["t1"]),
        ]
        with http_client(base_url=worker.url, headers=worker.service_headers, timeout=30) as client:
            response = client.post("/api/events", json=events)
            assert response.status_code == 202, response.text
        raw = b"".join(value or b"" for _, value in read_log(kafka_bootstrap, worker.env["SESSIONS_EVENTS_TOPIC"]))
        assert email.encode() not in raw and user.encode() not in raw and b'"enc:v1:' in raw
        yield {"worker": worker, "sid": sid, "user": user, "email": email}


def sealed_documents(sealed, tmp_path, *args: str, fmt: str = "jsonl", master: bool = False):
    env = dict(sealed["worker"].env)
    if not master:
        env.pop("SESSIONS_MASTER_KEY")
    out = tmp_path / f"sealed-{uuid.uuid4().hex[:6]}.{fmt}"
    options = ["--sessions", "--from", at(T1), "--to", at(T2), "--format", fmt, "-o", str(out), *args]
    options += ["--session", sealed["sid"], *(["--master-key"] if master else [])]
    result = sessionctl("export", *options, env=env, expect=0)
    if fmt == "jsonl":
        lines = out.read_bytes().splitlines()
        text = out.read_text()
    else:
        import duckdb

        lines = [row[0].encode() for row in duckdb.sql(f"select document from '{out}'").fetchall()]
        text = repr(duckdb.sql(f"select * from '{out}'").fetchall())
    assert len(lines) == 1, lines
    return orjson.loads(lines[0]), text, result


def only_stand_ins(node, word: str) -> None:
    """Every value that mentions the stand-in's word is a stand-in itself, nothing derived from one."""
    if isinstance(node, dict):
        for value in node.values():
            only_stand_ins(value, word)
    elif isinstance(node, list):
        for value in node:
            only_stand_ins(value, word)
    elif isinstance(node, str) and word in node:
        assert node in (f"[{word}]", f"[{word}]@{word}.invalid"), node


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_sessions_fold_sealed_logins_redacted_without_the_master_key(sealed, tmp_path, fmt):
    document, text, result = sealed_documents(sealed, tmp_path, fmt=fmt)
    assert "personal fields: redacted" in result.stderr, result.stderr
    namespaces = document["namespaces"]
    assert namespaces["profile"]["email"]["value"] == "[redacted]@redacted.invalid"  # the login was folded
    assert namespaces["profile"]["priceTables"]["value"]  # and what it carries that is not personal
    assert namespaces["rnb"]["campaigns"]  # the rules applied
    only_stand_ins(document, "redacted")
    assert sealed["email"] not in text and sealed["user"] not in text and "enc:v1:" not in text


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_sessions_fold_sealed_logins_in_clear_with_the_master_key(sealed, tmp_path, fmt):
    document, text, result = sealed_documents(sealed, tmp_path, fmt=fmt, master=True)
    assert "personal fields: opened with the master key" in result.stderr, result.stderr
    assert document["namespaces"]["profile"]["email"]["value"] == sealed["email"]
    assert "redacted" not in text and "enc:v1:" not in text
