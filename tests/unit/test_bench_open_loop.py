"""The bench's open-loop read schedule and its latency accounting, the fold's lag from the changelog,
and the report rows of issue 24 (the serving ceiling ratio, the open-loop event-to-visible)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.support.bench import bench_module

pytestmark = pytest.mark.unit


load = bench_module("load")
latency = bench_module("latency")

SECOND = 1_000_000_000


# --- the open-loop schedule ------------------------------------------------------------------------


def test_requests_are_due_at_fixed_intervals_from_the_start():
    schedule = load.OpenSchedule(start_ns=5 * SECOND, rate=4.0, count=10)
    assert [schedule.due_ns(i) for i in range(5)] == [5 * SECOND + i * SECOND // 4 for i in range(5)]


def test_how_many_are_due_depends_on_the_clock_only_never_on_answers():
    schedule = load.OpenSchedule(start_ns=SECOND, rate=10.0, count=25)
    assert schedule.due_by(0) == 0  # before the start
    assert schedule.due_by(SECOND) == 1  # the first is due at the start
    assert schedule.due_by(SECOND + SECOND // 2) == 6  # 0, 0.1, ..., 0.5 s
    assert schedule.due_by(100 * SECOND) == 25  # never more than the schedule holds


def test_latency_counts_from_the_due_time_so_a_stall_is_not_hidden():
    # Three requests due 10 ms apart; the server stalls, the three are answered together at 100 ms.
    due = [0, 10_000_000, 20_000_000]
    done = [100_000_000] * 3
    assert load.from_schedule_ns(due, done) == [100_000_000, 90_000_000, 80_000_000]


def test_percentiles_per_second_of_the_schedule():
    due = [0, SECOND // 2, SECOND + 1, 3 * SECOND]
    latencies = [1_000_000, 3_000_000, 5_000_000, 7_000_000]
    assert load.by_second_ms(due, latencies, 0, 99) == [3.0, 5.0, None, 7.0]


# --- visibility and lag --------------------------------------------------------------------------


def test_an_event_is_visible_at_the_first_changelog_record_with_its_count():
    records = [("a", 1), ("b", 1), ("a", 2), ("a", 3)]
    changes = [("a", 1, 100), ("b", None, 105), ("b", 1, 110), ("a", 3, 130)]
    assert latency.visible_at_ms(records, changes) == {0: 100, 1: 110, 2: 130, 3: 130}


def test_events_never_in_the_changelog_are_not_visible():
    assert latency.visible_at_ms([("a", 1), ("a", 2)], [("a", 1, 50)]) == {0: 50}


def test_lag_is_the_events_sent_and_not_yet_visible_worst_per_second():
    ms = 1_000_000
    sent_ns = [0, 100 * ms, 200 * ms, 1100 * ms, 1200 * ms]
    visible = {0: 50, 1: 150, 2: 900, 3: 1250, 4: 1250}
    # Second 0: one event waits at a time (event 2 until 900 ms); second 1: events 3 and 4 both wait
    # at 1200 ms.
    assert latency.lag_by_second(sent_ns, visible, step_ms=100) == [1, 2]


def test_a_lag_that_grows_with_the_phase_is_not_bounded():
    assert not latency.lag_bounded([10, 200, 400, 600, 800, 1000], floor=100)
    assert latency.lag_bounded([900, 300, 40, 50, 30, 60], floor=100)  # the restart's backlog, then steady
    assert latency.lag_bounded([40, 50, 30, 60, 80, 90], floor=100)  # within the floor: a batch's wait
    assert not latency.lag_bounded([], floor=100)


# --- the worker's CPU per second ------------------------------------------------------------------


def test_cpu_per_second_from_samples_of_the_cpu_used_so_far():
    machine = bench_module("machine")
    samples = [(10.0, 0.0), (10.5, 0.25), (11.0, 0.5), (11.5, 0.5), (12.0, 0.5), (12.5, 0.9)]
    assert machine.busy_by_second(samples) == [0.5, 0.0]  # the unfinished third second is left out


def test_a_gap_in_the_samples_gives_each_second_it_spans_its_average():
    machine = bench_module("machine")
    assert machine.busy_by_second([(0.0, 0.0), (2.5, 1.0)]) == [0.4, 0.4]
    assert machine.busy_by_second([(0.0, 0.0)]) == []


# --- the report ----------------------------------------------------------------------------------


def _config() -> SimpleNamespace:
    return SimpleNamespace(
        rate=2000.0,
        concurrency=32,
        latency_warmup=2.0,
        partitions=12,
        rss_sessions=0,
        peers=["raw", "quix"],
        quick=False,
    )


def _rows() -> dict[str, object]:
    bench_module("config")  # report.py reads the targets from it
    report = bench_module("report")
    results = {
        "serving_ceiling": {"rate": 4000.0, "concurrency": 32, "seconds": 10.0, "warmup_seconds": 2.0},
        "reads_quiet": {"rate": 3200.0},
        "reads": {"rate": 2000.0},
        "latency": {"lag_events_by_second": [100, 4000, 8000], "lag_bounded": False},
        "open_loop": {
            "share": 0.5,
            "read_rate": 1000.0,
            "read_capacity": 2000.0,
            "read_capacity_from": "reads",
            "restart_to_ready_seconds": 3.0,
            "reads": {
                "rate": 1000.0,
                "p99_ms": 12.0,
                "service": {"p99_ms": 4.0},
                "requests": 22000,
                "connections": 32,
                "p99_ms_by_second": [30.0, 5.0],
                "statuses": {"200": 22000},
            },
            "latency": {"changelog_all": {"p99_ms": 42.0, "p50_ms": 9.0}},
        },
    }
    table = report.sections(results, {}, _config())
    # The whole table and its notes render from these results alone.
    assert "open loop" in report.render("t", table, report.notes(results, {}, {}, {}, _config(), 2))
    rows = {row.key: row for _, section in table for row in section}
    for row in rows.values():
        row.evaluate()
    return rows


def test_the_worker_reads_are_a_ratio_to_the_serving_ceiling_with_and_without_the_stream():
    rows = _rows()
    assert rows["reads_quiet_vs_ceiling"].value == pytest.approx(0.8)
    assert rows["reads_quiet_vs_ceiling"].result.startswith("pass")
    assert rows["reads_vs_ceiling"].value == pytest.approx(0.5)
    assert rows["reads_vs_ceiling"].result.startswith("MISS")


def test_the_open_loop_event_to_visible_carries_the_target_and_the_lag_its_verdict():
    rows = _rows()
    assert rows["e2v_open_p99"].value == 42.0 and rows["e2v_open_p99"].result.startswith("pass")
    assert rows["e2v_p99"].target is None  # the saturating readers' figure is reported, not judged
    assert rows["fold_lag_saturating_s"].value == pytest.approx(4.0)
    assert rows["fold_lag_saturating_s"].result.startswith("GROWING")
