"""The bench's cost at scale (``run.py --scale``, issue 24): the templated workload that makes ten
million events fast, the broker's disk accounting, the JSON both modes share, and the scale table's
ratios, targets and reasons."""

from __future__ import annotations

import itertools
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from schemas.events import decode_event
from streams.devkit.events import at
from tests.support.bench import bench_module

pytestmark = pytest.mark.unit

workload = bench_module("workload")
config = bench_module("config")  # report.py reads the targets from it
kafka_io = bench_module("kafka_io")
report = bench_module("report")


# --- the templated workload -------------------------------------------------------------------------


def test_every_templated_record_is_a_valid_event_of_its_own_session_id_and_time():
    made = workload.TemplatedWorkload(seed=11, sessions=500, spacing_ms=7.5)
    records = list(made.records(3000))
    ids = set()
    for n, record in enumerate(records):
        event = decode_event(record.value)  # the contract accepts it as the API would
        assert event.subject == record.session == record.key.decode()
        offset_ms = int(n * 7.5)
        assert orjson.loads(record.value)["time"] == at(offset_ms / 1000)  # the builders' own time text
        assert record.timestamp_ms == workload.epoch_ms(offset_ms / 1000)
        ids.add(event.id)
    assert len(ids) == len(records)  # every event its own id
    # Several kinds of event, as in the default mix.
    assert {orjson.loads(r.value)["type"] for r in records} >= {
        "navigation.page_viewed",
        "navigation.campaign_clicked",
        "session.public_set",
    }


def test_counts_follow_each_session_and_the_same_seed_gives_the_same_bytes():
    made = workload.TemplatedWorkload(seed=3, sessions=50)
    first = list(made.records(400))
    seen: dict[str, int] = {}
    for record in first:
        seen[record.session] = seen.get(record.session, 0) + 1
        assert record.count == seen[record.session]  # its eventCount once folded
    assert made.touched() == len(seen)
    assert sum(made.counts) == 400
    again = list(made.records(400))  # a second stream starts over: same records, counts not doubled
    assert [r.value for r in again] == [r.value for r in first]
    assert sum(made.counts) == 400
    assert made.session_id(7) == "00000007-0003-4000-8000-000000000000"


def test_records_are_streamed_not_held():
    made = workload.TemplatedWorkload(seed=5, sessions=10)
    stream = made.records(10**12)  # a list of these would never fit
    assert len(list(itertools.islice(stream, 5))) == 5


def test_the_topic_stays_within_the_broker_s_window_of_past_times():
    assert workload.TemplatedWorkload.spanning(1, 10, 200_000).spacing_ms == workload.DEFAULT_SPACING_MS
    dense = workload.TemplatedWorkload.spanning(1, 10, 10_000_000)
    assert dense.spacing_ms * 10_000_000 <= workload.MAX_SPAN_S * 1000


def test_an_event_pattern_needs_each_field_exactly_once():
    value = b'{"subject":"s-1","id":"e-1","data":{"p":"100%"}}'
    pattern = workload.event_pattern(value, s="s-1", i="e-1")
    assert pattern % {b"s": b"s-2", b"i": b"e-2"} == b'{"subject":"s-2","id":"e-2","data":{"p":"100%"}}'
    with pytest.raises(ValueError, match="occurs 2 times"):
        workload.event_pattern(b'{"subject":"x","data":"x"}', s="x")


def test_the_skew_favours_the_head_of_the_sessions():
    assert workload.skewed_index(1000, 0.0) == 0
    assert workload.skewed_index(1000, 0.999999) == 999
    assert workload.skewed_index(1000, 0.5) == int(1000 * 0.5**1.6) < 500


# --- disk accounting ----------------------------------------------------------------------------------


def test_a_topic_s_bytes_are_its_partition_folders_only():
    files = [
        (Path("/k/logs/events-0/00000000000000000000.log"), 1000),
        (Path("/k/logs/events-11/00000000000000000000.index"), 24),
        (Path("/k/logs/events-changelog-0/00000000000000000000.log"), 5000),  # another topic, same prefix
        (Path("/k/logs/events-x/00000000000000000000.log"), 7),  # not a partition folder
        (Path("/k/logs/meta.properties"), 3),
    ]
    assert kafka_io.topic_bytes(files, "events") == 1024
    assert kafka_io.topic_bytes(files, "events-changelog") == 5000


def test_broker_files_count_allocated_blocks_not_sparse_sizes(tmp_path):
    folder = tmp_path / "logs" / "t-0"
    folder.mkdir(parents=True)
    (folder / "0.log").write_bytes(b"x" * 100_000)
    with open(folder / "0.index", "wb") as handle:
        handle.truncate(10_485_760)  # as Kafka preallocates an index: sparse
    found = dict(kafka_io.broker_files(tmp_path))
    assert found[folder / "0.log"] >= 100_000
    assert found[folder / "0.index"] < 1_000_000
    assert kafka_io.topic_bytes(found.items(), "t") < 1_100_000


# --- the JSON both modes write ------------------------------------------------------------------------


def test_a_scale_run_keeps_the_default_run_s_figures_and_the_other_way_round():
    run = bench_module("run")
    default = {"run_id": "a", "figures": [1], "scale": {"run_id": "old"}}
    scaled = run.merged(default, {"run_id": "b"}, scale=True)
    assert scaled == {"run_id": "a", "figures": [1], "scale": {"run_id": "b"}}
    again = run.merged(scaled, {"run_id": "c", "figures": [2]}, scale=False)
    assert again == {"run_id": "c", "figures": [2], "scale": {"run_id": "b"}}
    assert run.merged(None, {"run_id": "d"}, scale=False) == {"run_id": "d"}


def test_each_size_may_take_as_long_as_its_topic_needs():
    scale = bench_module("scale")
    sizes = scale.sizes(SimpleNamespace(events=200_000, sessions=20_000, scale_events=10_000_000,
                                        scale_sessions=1_000_000, phase_timeout=300.0))  # fmt: skip
    assert [(s.key, s.events, s.timeout) for s in sizes] == [
        ("default", 200_000, 300.0),
        ("scale", 10_000_000, 10_000_000 / config.SCALE_SLOWEST_RATE),
    ]


def test_the_watch_keeps_the_samples_and_the_time_range_of_a_stream():
    scale = bench_module("scale")
    record = workload.Record
    stream = [record("a", 1, b"a", b"1", 30), record("b", 1, b"b", b"2", 10), record("a", 2, b"a", b"3", 20)]
    watch = scale.Watch({"a"})
    assert list(watch.through(iter(stream))) == stream
    assert (watch.count, watch.first_ms, watch.last_ms) == (3, 10, 30)
    assert [r.value for r in watch.kept] == [b"1", b"3"]


# --- the scale table ----------------------------------------------------------------------------------


def _size(events: int, sessions: int, fold: float, cpu: float, **extra: Any) -> dict[str, Any]:
    return {
        "events": events,
        "sessions": sessions,
        "errors": {},
        "producer": {"rate": 150_000, "records": events, "seconds": events / 150_000, "spacing_ms": 7.2},
        "fold": {"rate": fold, "events": events, "cpu_seconds": cpu},
        "restore": {"rate": 120_000, "changelog_records": 2 * sessions},
        "export": {"rate": 60_000, "written": events, "cpu_seconds": events / 60_000},
        "rebuild_generation": {"rate": 30_000, "events": events, "cpu_seconds": events / 30_000},
        "history": {"timeline": {"p50_ms": 9.0, "p99_ms": 30.0}, "at": {"p50_ms": 4.0, "p99_ms": 12.0}},
        "rss": {"rss_mb": 250.0, "peak_rss_mb": 600.0},
        "disk": {
            "sessions": sessions,
            "events": events,
            "data_dir_mb": 300.0 * sessions / 1e6,
            "session_stores_mb": 130.0 * sessions / 1e6,
            "history_stores_mb": 800.0 * sessions / 1e6,
            "changelog_mb": 400.0 * sessions / 1e6,
            "events_topic_mb": 1.0,
        },
        **extra,
    }


def _table(scale: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    rows = {row.key: row for row in report.scale_section(scale)}
    for row in rows.values():
        row.evaluate()
    lines = report.scale_notes(scale, {}, {}, {}, 2)
    # The whole table renders from these results alone.
    assert "cost at scale" in report.render("t", [("cost at scale", list(rows.values()))], lines)
    return rows, lines


def test_rates_are_judged_as_ratios_to_the_default_size_of_the_same_run():
    scale = {
        "default": _size(200_000, 20_000, fold=20_000.0, cpu=10.0),
        # At scale: the fold at 0.75x its default rate, CPU per event 1.33x (the work grew).
        "scale": _size(10_000_000, 1_000_000, fold=15_000.0, cpu=666.7, records_after_old_sessions=9_895_000),
    }
    rows, lines = _table(scale)
    assert rows["scale_fold_rate"].value == 15_000.0
    assert rows["scale_fold_rate"].peers == "200,000 events: 20,000 ev/s"
    assert rows["scale_fold_rate_vs_default"].value == pytest.approx(0.75)
    assert rows["scale_fold_rate_vs_default"].result.startswith("MISS")
    assert rows["scale_export_rate_vs_default"].result.startswith("pass")
    why = next(line for line in lines if line.startswith("why (fold"))
    assert "1.33x" in why and "the work per event grew" in why


def test_a_slower_rate_at_the_same_cpu_per_event_is_called_waiting():
    scale = {
        "default": _size(200_000, 20_000, fold=20_000.0, cpu=10.0),
        "scale": _size(10_000_000, 1_000_000, fold=10_000.0, cpu=500.0),  # same 50 µs an event, half the rate
    }
    _, lines = _table(scale)
    why = next(line for line in lines if line.startswith("why (fold"))
    assert "waiting" in why and "0.50 CPUs busy against 1.00" in why


def test_latency_and_rss_carry_their_own_limits_with_the_ratio_beside_them():
    big = _size(10_000_000, 1_000_000, fold=20_000.0, cpu=500.0)
    big["history"]["timeline"] = {"p50_ms": 40.0, "p99_ms": 80.0}
    big["rss"]["rss_mb"] = 400.0
    rows, lines = _table({"default": _size(200_000, 20_000, fold=20_000.0, cpu=10.0), "scale": big})
    assert rows["scale_timeline_p99"].result.startswith("MISS")
    assert rows["scale_timeline_p99"].peers == "200,000 events: 30.0 ms (2.67x)"
    assert rows["scale_at_p99"].result.startswith("pass")
    assert rows["scale_rss_mb"].target.value == config.TARGET_RSS_MB
    assert rows["scale_rss_mb"].result.startswith("pass")
    assert rows["scale_peak_rss_mb"].target is None  # reported, as at the default size
    assert any(line.startswith("why (timeline)") and "every read got slower" in line for line in lines)


def test_disk_is_per_million_sessions_at_both_sizes():
    scale = {
        "default": _size(200_000, 20_000, fold=20_000.0, cpu=10.0),
        "scale": _size(10_000_000, 1_000_000, fold=20_000.0, cpu=500.0),
    }
    scale["scale"]["disk"]["session_stores_mb"] = 260.0  # twice the default size's per session
    rows, _ = _table(scale)
    assert rows["scale_store_mb_per_m"].value == pytest.approx(260.0)
    assert rows["scale_store_mb_per_m"].peers == "200,000 events: 130.00 MB (2.00x)"
    assert rows["scale_changelog_mb_per_m"].value == pytest.approx(400.0)


def test_a_figure_not_measured_says_which_step_failed_first():
    big = _size(10_000_000, 1_000_000, fold=20_000.0, cpu=500.0)
    for name in ("fold", "restore", "rss", "history", "disk"):
        del big[name]
    big["errors"] = {"fold": "TimeoutError: not folded"}
    rows, _ = _table({"default": _size(200_000, 20_000, fold=20_000.0, cpu=10.0), "scale": big})
    for key in ("scale_fold_rate_vs_default", "scale_restore_rate_vs_default", "scale_timeline_p99"):
        assert rows[key].value is None
        assert rows[key].result == "MISS: not measured (fold: TimeoutError: not folded)"
    assert rows["scale_export_rate_vs_default"].result.startswith("pass")  # needs the topic only
    assert rows["scale_peak_rss_mb"].result == "n/a"
