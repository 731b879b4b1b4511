"""The pure part of ``sessionctl export``: options, the record filter, the rows; and the clocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from schemas.events import decode_event
from streams.devkit.events import BASE_TIME, EXAMPLES, at, campaign_click, logged_in, new_session_id, page_view
from streams.history.window import ExportError, check_range, parse_duration, parse_instant, to_ms
from streams.kafka.dead_letters import DeadLetter
from streams.kafka.producer import MAX_FUTURE_MS, kafka_timestamp, time_ms
from streams.tools.export.events import RecordFilter, check_types
from streams.tools.export.writers import COLUMNS, ParquetWriter, jsonl_line, parquet_row

pytestmark = pytest.mark.unit


def raw(obj) -> bytes:
    return orjson.dumps(obj)


def test_instants_need_a_timezone_and_come_out_in_utc():
    noon = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    assert parse_instant("2026-11-26T12:00:00Z", "--from") == noon
    assert parse_instant("2026-11-26T14:00:00+02:00", "--from") == noon
    assert parse_instant(at(0), "--from") == BASE_TIME
    assert parse_instant("2026-11-26T12:00:00.250Z", "--to").microsecond == 250_000
    with pytest.raises(ExportError) as zoneless:
        parse_instant("2026-11-26T12:00:00", "--from")
    assert zoneless.value.option == "--from" and "timezone" in zoneless.value.message
    with pytest.raises(ExportError) as garbage:
        parse_instant("yesterday", "--to")
    assert garbage.value.option == "--to" and "RFC 3339" in garbage.value.message


def test_ranges_must_be_non_empty_and_in_order():
    check_range(BASE_TIME, BASE_TIME + timedelta(microseconds=1))
    for end in (BASE_TIME, BASE_TIME - timedelta(seconds=1)):
        with pytest.raises(ExportError) as error:
            check_range(BASE_TIME, end)
        assert error.value.option == "--to"
    with pytest.raises(ExportError, match="reversed"):
        check_range(BASE_TIME, BASE_TIME - timedelta(1))
    with pytest.raises(ExportError, match="empty"):
        check_range(BASE_TIME, BASE_TIME)


def test_durations():
    assert parse_duration("5m") == timedelta(minutes=5)
    assert parse_duration("300") == parse_duration("300s") == timedelta(seconds=300)
    assert parse_duration("1h") == timedelta(hours=1)
    assert parse_duration("250ms") == timedelta(milliseconds=250)
    assert parse_duration("0") == timedelta(0)
    with pytest.raises(ExportError, match="--slack"):
        parse_duration("five minutes")


def test_types_must_be_known():
    assert check_types(["cart.item_added"]) == {"cart.item_added"}
    with pytest.raises(ExportError, match=r"--type.*navigation\.teleported"):
        check_types(["navigation.teleported"])


def test_the_filter_keeps_events_in_the_half_open_range_by_their_own_time():
    sid = new_session_id()
    selection = RecordFilter(BASE_TIME, BASE_TIME + timedelta(seconds=10))
    inside = [page_view(sid, "https://s/", s) for s in (0, 5, 9.999)]
    outside = [page_view(sid, "https://s/", s) for s in (-0.001, 10, 11, -3600)]
    chosen = [selection.select(raw(e)) for e in inside + outside]
    assert [e.id for e in chosen if e is not None] == [e["id"] for e in inside]
    assert selection.outside == len(outside) and selection.skipped == 0


def test_the_filter_skips_and_counts_records_that_are_not_events():
    selection = RecordFilter(BASE_TIME, BASE_TIME + timedelta(hours=1))
    for value in (None, b"\xff not json", raw({"type": "navigation.teleported"}), raw({**page_view("x", "u")})):
        assert selection.select(value) is None
    assert selection.skipped == 4 and selection.outside == 0


def test_the_filter_by_type_and_session():
    a, b = new_session_id(), new_session_id()
    events = [page_view(a, "https://s/", 1), campaign_click(a, 2, utm_source="g"), page_view(b, "https://s/", 3)]
    end = BASE_TIME + timedelta(hours=1)

    def ids(selection: RecordFilter) -> list[str]:
        return [e.id for e in (selection.select(raw(x)) for x in events) if e is not None]

    assert ids(RecordFilter(BASE_TIME, end, types=frozenset({"navigation.campaign_clicked"}))) == [events[1]["id"]]
    assert ids(RecordFilter(BASE_TIME, end, sessions=frozenset({b}))) == [events[2]["id"]]
    both = RecordFilter(BASE_TIME, end, frozenset({"navigation.page_viewed"}), frozenset({a}))
    assert ids(both) == [events[0]["id"]]


def test_parquet_rows_carry_the_envelope_and_common_fields_and_never_the_email():
    sid = new_session_id()
    view = decode_event(raw(page_view(sid, "https://s/?a=1", 3, referrerUrl="https://r/", pageType="cart")))
    row = parquet_row(view, 2, 41)
    assert tuple(row) == COLUMNS
    assert row["type"] == "navigation.page_viewed" and row["subject"] == sid
    assert row["time"] == BASE_TIME + timedelta(seconds=3) and row["time"].tzinfo is not None
    assert (row["partition"], row["offset"]) == (2, 41)
    assert (row["url"], row["referrerUrl"], row["pageType"]) == ("https://s/?a=1", "https://r/", "cart")
    assert row["utm_source"] is None
    assert orjson.loads(row["data"])["url"] == "https://s/?a=1"

    login = parquet_row(decode_event(raw(logged_in(sid, "u1", "someone@example.com", firstName="Ann"))), 0, 0)
    assert "email" not in login and "firstName" not in login
    assert all(login[name] is None for name in ("url", "utm_source", "referrerUrl"))


def test_an_old_version_exports_upcast():
    v1 = {**page_view(new_session_id(), "https://s/"), "data": {"url": "https://s/", "referrer": "https://r/"}}
    v1["dataschema"] = "urn:session-engine:schema:navigation.page_viewed:v1"
    row = parquet_row(decode_event(raw(v1)), 0, 0)
    assert row["referrerUrl"] == "https://r/" and row["dataschema"].endswith(":v2")


def test_jsonl_lines_are_the_value_on_one_line():
    value = raw(page_view(new_session_id(), "https://s/"))
    assert jsonl_line(value) == value + b"\n"
    pretty = orjson.dumps(orjson.loads(value), option=orjson.OPT_INDENT_2)
    line = jsonl_line(pretty)
    assert line.count(b"\n") == 1 and orjson.loads(line) == orjson.loads(value)


def test_a_parquet_file_of_every_type_reads_back_with_duckdb(tmp_path):
    import duckdb

    events = [decode_event(raw(make(new_session_id()))) for make in EXAMPLES.values()]
    writer = ParquetWriter(tmp_path / "e.parquet", batch_rows=3)
    for offset, event in enumerate(events):
        writer.write(event, b"", offset % 2, offset)
    writer.close()
    path = str(tmp_path / "e.parquet")
    counts = duckdb.sql(f"select type, count(*) from '{path}' group by 1 order by 1").fetchall()
    assert counts == sorted((name, 1) for name in EXAMPLES)
    (kind,) = duckdb.sql(f"select typeof(time) from '{path}' limit 1").fetchall()[0]
    assert kind == "TIMESTAMP WITH TIME ZONE"
    # The whole `data` is there, personal fields included, until the security issue decides otherwise.
    assert duckdb.sql(f"select count(*) from '{path}' where data like '%a@b.co%'").fetchall() == [(1,)]


def test_records_are_stamped_with_their_event_time_within_what_kafka_accepts():
    now = to_ms(datetime(2026, 11, 27, tzinfo=UTC))
    noon = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    assert time_ms(noon) == to_ms(noon) == 1_795_694_400_000
    assert time_ms(BASE_TIME) == to_ms(BASE_TIME)
    assert kafka_timestamp(now - 86_400_000, now) == now - 86_400_000
    assert kafka_timestamp(now + 60_000, now) == now + 60_000
    assert kafka_timestamp(now + 10 * 3_600_000, now) == now + MAX_FUTURE_MS  # Kafka refuses > 1 h ahead
    assert kafka_timestamp(-5, now) == 1  # 0 would mean "now" to librdkafka


def test_a_redriven_letter_keeps_its_event_time_else_the_letters_timestamp():
    value = raw(page_view(new_session_id(), "https://s/", 7))
    letter = DeadLetter(0, 0, b"k", value, {}, timestamp_ms=123)
    assert letter.redrive_timestamp_ms == time_ms(BASE_TIME + timedelta(seconds=7))
    assert DeadLetter(0, 0, b"k", b"garbage", {}, timestamp_ms=123).redrive_timestamp_ms == 123
    assert DeadLetter(0, 0, b"k", None, {}, timestamp_ms=0).redrive_timestamp_ms == 0
