"""Issue 24's cost at scale (``run.py --scale``): how the cost grows from the default topic to ten million events.

Two topics of the same mix (``workload.TemplatedWorkload``: the default workload's events, stamped
fast), the default size (``--events`` over ``--sessions``) and the scale size (``--scale-events`` over
``--scale-sessions``), each with the history phase's 50 long sessions among its first
``SCALE_OLD_RECORDS`` records (old sessions, under everything produced after them). Each size, in the
same run, one after the other, through the same phases the default run measures with:

- produce: generated and produced as a stream (never held in a list), the producer's rate;
- fold: a fresh worker folds the topic (timed from its changelog: from /readyz or its first record to
  its last record, ``kafka_io.changelog_span_ms``; its CPU meanwhile), the sample sessions served
  as the pure fold says, then its RSS at rest and its peak (``memory_at_rest``);
- reads: the old sessions' timeline and ``?at=`` reads on that worker (``history_reads``);
- disk: its stores once it stopped (``data_dir_mb``), the changelog's and the topic's bytes on the
  broker (``kafka_io.topic_bytes``);
- restore: its data folder deleted, restarted, caught up from the changelog (``restore_from_changelog``);
- export: the whole time range to Parquet (``export_range``);
- rebuild: ``sessionctl rebuild`` into generation 2 (``sessionctl_rebuild``).

Every figure goes to ``results.scale.<size>``; the report (``report.scale_section``) divides the
scale size's by the default size's.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from config import LONG_SESSION_EVENTS, LONG_SESSIONS, SCALE_OLD_RECORDS, SCALE_SLOWEST_RATE
from kafka_io import broker_files, changelog_span_ms, changelog_topic, create_topic, produce_all, worker_settings
from kafka_io import topic_bytes as topic_bytes_of
from machine import process_cpu_seconds
from phases import data_dir_mb, expected_states, history_reads, log, memory_at_rest, rss_of
from workload import LongSessions, Record, TemplatedWorkload, interleave, long_sessions

from schemas.session import SessionState
from streams.devkit.workers import WorkerProcess

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from phases import Bench

# The steps of one size, in order: a step's error is under results.scale.<size>.errors.<step>.
STEPS = ("produce", "fold", "reads", "disk", "restore", "export", "rebuild")


@dataclass(frozen=True)
class Size:
    key: str  # "default" or "scale": results.scale.<key>
    events: int
    sessions: int
    timeout: float  # a bound on each of its phases, s


def sizes(config: Any) -> list[Size]:
    """The default size and the scale size; a phase may take --phase-timeout, or longer on a topic that
    would need it at SCALE_SLOWEST_RATE events/s."""

    def size(key: str, events: int, sessions: int) -> Size:
        return Size(key, events, sessions, max(config.phase_timeout, events / SCALE_SLOWEST_RATE))

    return [size("default", config.events, config.sessions), size("scale", config.scale_events, config.scale_sessions)]


@dataclass
class Watch:
    """What a stream of records leaves behind once produced: the sample sessions' records (to fold them
    purely), the first and last event times, the count."""

    samples: set[str]
    kept: list[Record] = field(default_factory=list)
    first_ms: int | None = None
    last_ms: int | None = None
    count: int = 0

    def through(self, records: Iterable[Record]) -> Iterator[Record]:
        for record in records:
            self.count += 1
            stamp = record.timestamp_ms
            if stamp is not None:
                self.first_ms = stamp if self.first_ms is None else min(self.first_ms, stamp)
                self.last_ms = stamp if self.last_ms is None else max(self.last_ms, stamp)
            if record.session in self.samples:
                self.kept.append(record)
            yield record


@dataclass
class Loaded:
    """A size's topic as produced, and what its phases check against."""

    size: Size
    topic: str
    app_id: str
    events: int
    sessions: int  # sessions with events (the long ones included)
    first_ms: int
    last_ms: int
    long: LongSessions
    expected: dict[str, SessionState]
    worker: WorkerProcess | None = None
    changelog: str = ""
    ready_s: float | None = None


def run_scale(bench: Bench) -> None:
    """Both sizes, the default one first; a size whose topic or fold failed skips what needs it."""
    bench.start_broker()
    bench.results["scale"] = {"old_records": SCALE_OLD_RECORDS, "long_sessions": LONG_SESSIONS}
    for size in sizes(bench.config):
        out: dict[str, Any] = {"events": size.events, "sessions": size.sessions, "errors": {}}
        bench.results["scale"][size.key] = out
        loaded = step(bench, size, out, "produce", produce, bench, size, out)
        if loaded is None:
            continue
        try:
            if step(bench, size, out, "fold", fold, bench, loaded, out) is not None:
                step(bench, size, out, "reads", reads, bench, loaded, out)
                assert loaded.worker is not None
                loaded.worker.stop()
                step(bench, size, out, "disk", disk, bench, loaded, out)
                step(bench, size, out, "restore", restore, bench, loaded, out)
        finally:
            if loaded.worker is not None:
                loaded.worker.stop()
        step(bench, size, out, "export", export, bench, loaded, out)
        step(bench, size, out, "rebuild", rebuild, bench, loaded, out)


def step(bench: Bench, size: Size, out: dict[str, Any], name: str, func: Any, *args: Any) -> Any:
    """One step as a phase of the bench (logged, timed, its error kept) and its error beside its figures."""
    phase = f"{size.key} size ({size.events:,} events): {name}"
    result = bench.phase(phase, func, *args)
    if phase in bench.errors:
        out["errors"][name] = bench.errors[phase]
        return None
    return True if result is None else result


def produce(bench: Bench, size: Size, out: dict[str, Any]) -> Loaded:
    """The topic, generated as it is produced: the long sessions among its first SCALE_OLD_RECORDS
    records, then the rest of the mix; the sample sessions' records kept to fold them purely."""
    cfg = bench.config
    topic = app_id = f"bench-scale-{size.key}-{bench.run_id}"
    create_topic(bench.bootstrap, topic, cfg.partitions)
    long = long_sessions(LONG_SESSIONS, LONG_SESSION_EVENTS, cfg.seed)
    base_events = size.events - len(long.records)
    workload = TemplatedWorkload.spanning(cfg.seed, size.sessions - LONG_SESSIONS, base_events)
    rng = random.Random(cfg.seed)
    picked = rng.sample(range(workload.sessions), min(cfg.samples, workload.sessions))
    watch = Watch({workload.session_id(i) for i in picked})
    head = min(base_events, SCALE_OLD_RECORDS)
    records = interleave(workload.records(base_events), head, long.records)
    meter = bench.meter()
    try:
        produced = produce_all(bench.bootstrap, topic, watch.through(records), timeout=size.timeout)
    finally:
        bench.metered(f"{size.key}-size-produce", meter)
    log(
        f"{size.key} size: {produced.records:,} events generated and produced in {produced.seconds:.1f} s: "
        f"{produced.rate:,.0f} ev/s"
    )
    assert watch.first_ms is not None and watch.last_ms is not None
    sessions = workload.touched() + len(long.ids)
    out["producer"] = {
        "records": produced.records,
        "seconds": round(produced.seconds, 2),
        "rate": round(produced.rate),
        "spacing_ms": round(workload.spacing_ms, 3),
        # The bench's own peak so far: the topic is streamed, so this stays flat as the topic grows
        # (librdkafka's queue, bounded by queue.buffering.max.kbytes, is the most it holds).
        "bench_peak_rss_mb": rss_of(os.getpid()).get("VmHWM"),
    }
    out["sessions_with_events"] = sessions
    # The old sessions are among the first records; how many came after them.
    out["records_after_old_sessions"] = produced.records - head - len(long.records)
    expected = expected_states(watch.kept, watch.samples, bench.rules)
    return Loaded(size, topic, app_id, produced.records, sessions, watch.first_ms, watch.last_ms, long, expected)


def fold(bench: Bench, loaded: Loaded, out: dict[str, Any]) -> None:
    """A fresh worker folds the whole topic; the rate from its changelog, the same way at both sizes:
    from /readyz (or its first changelog record, if earlier) to its last changelog record. Then the
    sample sessions served as folded, and its RSS at rest and its peak (VmHWM: the fold's)."""
    key = loaded.size.key
    settings = worker_settings(loaded.app_id, loaded.topic)
    worker = bench.new_worker(loaded.app_id, loaded.topic, bench.scratch / f"scale-{key}-data", f"scale-{key}.log")
    loaded.worker = worker
    meter = bench.meter()
    worker.spawn()
    assert worker.process is not None
    try:
        loaded.ready_s = worker.wait_ready(120.0)
        cpu0 = process_cpu_seconds(worker.process.pid)
        # Asked every second, not every 0.25 s: the figure comes from the changelog, not from this.
        done = bench.wait_folded(loaded.topic, settings.fold_group_id, loaded.size.timeout, interval=1.0)
        cpu = process_cpu_seconds(worker.process.pid) - cpu0
    finally:
        bench.metered(f"{key}-size-fold", meter)
    if not done:
        raise RuntimeError(f"the worker did not fold {loaded.events:,} events within {loaded.size.timeout:.0f}s")
    memory = memory_at_rest(worker)
    loaded.changelog = changelog_topic(bench.bootstrap, settings)
    span = changelog_span_ms(bench.bootstrap, loaded.changelog)
    if span is None:
        raise RuntimeError(f"the changelog {loaded.changelog} is empty")
    first_ms, last_ms = span
    start_ms = min(first_ms, worker.ready_ns / 1e6)
    seconds = (last_ms - start_ms) / 1000
    out["fold"] = {
        "events": loaded.events,
        "start_to_ready_seconds": round(loaded.ready_s, 2),
        "fold_seconds": round(seconds, 3),
        "rate": round(loaded.events / seconds) if seconds > 0 else None,
        "cpu_seconds": round(cpu, 2),  # the worker's, from /readyz to the last commit seen
    }
    out["rss"] = {"rss_mb": memory.get("VmRSS"), "peak_rss_mb": memory.get("VmHWM")}
    bench.checks[f"{key}_size_states_after_fold"] = bench.check_served(worker, loaded.expected)


def reads(bench: Bench, loaded: Loaded, out: dict[str, Any]) -> None:
    """The old sessions' timelines and ``?at=`` their middle, on the worker that folded them."""
    assert loaded.worker is not None
    key = loaded.size.key
    meter = bench.meter()
    try:
        found = history_reads(loaded.worker, loaded.long)
    finally:
        bench.metered(f"{key}-size-reads", meter)
    out["history"] = {"timeline": found.timeline, "at": found.at, "events_per_session": loaded.long.length}
    bench.checks[f"{key}_size_timelines"] = found.timelines_check
    bench.checks[f"{key}_size_at_middle"] = found.at_check


def disk(bench: Bench, loaded: Loaded, out: dict[str, Any]) -> None:
    """What the stopped worker's volume holds, and what the broker holds for its changelog and topic."""
    assert loaded.worker is not None
    files = list(broker_files(bench.broker_dir))
    out["disk"] = {
        **data_dir_mb(loaded.worker.data_dir),
        # As the broker holds them now: the changelog compacted only as far as the cleaner has gone.
        "changelog_mb": round(topic_bytes_of(files, loaded.changelog) / 1e6, 1),
        "events_topic_mb": round(topic_bytes_of(files, loaded.topic) / 1e6, 1),
        "sessions": loaded.sessions,
        "events": loaded.events,
    }


def restore(bench: Bench, loaded: Loaded, out: dict[str, Any]) -> None:
    """The data folder lost: the worker catches up from its changelog; the samples served again."""
    assert loaded.worker is not None
    out["restore"] = restored = {"sessions": loaded.sessions}
    bench.restore_from_changelog(
        loaded.worker, loaded.changelog, loaded.ready_s, loaded.size.timeout, f"{loaded.size.key}-size-restore",
        restored,
    )  # fmt: skip
    bench.checks[f"{loaded.size.key}_size_states_after_restore"] = bench.check_served(loaded.worker, loaded.expected)
    loaded.worker.stop()


def export(bench: Bench, loaded: Loaded, out: dict[str, Any]) -> None:
    key = loaded.size.key
    path = bench.scratch / f"scale-{key}-export.parquet"
    result, check = bench.export_range(
        loaded.topic, loaded.first_ms, loaded.last_ms, loaded.events, path, f"{key}-size-export"
    )
    out["export"] = result
    bench.checks[f"{key}_size_export_rows"] = check


def rebuild(bench: Bench, loaded: Loaded, out: dict[str, Any]) -> None:
    key = loaded.size.key
    out["rebuild_generation"] = bench.sessionctl_rebuild(
        loaded.app_id, loaded.topic, bench.scratch / f"scale-{key}-rebuild", f"{key}-size-rebuild", loaded.size.timeout
    )
