"""The bench's phases, in the order run.py runs them; each records its figures in ``Bench.results``.

- setup: broker, workload, the pre-loaded topic;
- micro: decode of one page view, the pure fold per event and with the loop's batching;
- peers: the raw decode ceiling, Quix Streams (and plain faust behind ``--peers faust``);
- worker fold: the worker folds the pre-loaded topic (timed from its changelog), py-spy samples it;
- stream + reads: 2,000 events/s with their event-to-visible latency, and at the same time session
  reads at concurrency 32;
- rebuild: the data folder deleted, the worker catches up from its changelog (log lines + readyz);
- export: the pre-loaded topic's whole time range to Parquet (``export_to_file``), after the raw peer;
- RSS: a fresh worker folds 1,000,000 one-event sessions (and 50 sessions of 100 events spread
  through them); its RSS read from /proc afterwards;
- history: that worker restarted on its data folder: timeline and ``?at=`` reads of the 100-event
  sessions, then the first timeline read of each with its history store deleted (read from Kafka).
"""

from __future__ import annotations

import asyncio
import gc
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import timeit
import traceback
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pyarrow.parquet as pq
from aiokafka.partitioner import murmur2
from config import (
    HERE,
    HISTORY_REQUESTS,
    HISTORY_WARMUP_REQUESTS,
    LONG_SESSION_EVENTS,
    LONG_SESSIONS,
    OPEN_LOOP_SHARE,
    PURE_BATCH,
    VAR,
    Config,
    py_spy_binary,
)
from confluent_kafka import KafkaException
from kafka_io import (
    PacedRun,
    changelog_topic,
    committed_lag,
    create_topic,
    end_offsets,
    produce_all,
    produce_paced,
    read_changelog,
    record_count,
    wait_for_commits,
    worker_settings,
)
from latency import lag_bounded, lag_by_second, visible_at_ms
from load import VisibilityPoller, percentile, summarize_ms
from machine import CpuMeter, CpuTimeline, process_cpu_seconds
from procs import (
    AUTHORIZATION,
    BENCH_SERVICE_KEY,
    Peer,
    PySpy,
    http_get,
    http_response,
    pids,
    register,
    spawn,
    tail,
    terminate,
)
from pyspy import top_functions
from workload import LongSessions, Record, Workload, interleave, long_sessions, one_event_sessions, sample_page_view

from projections import native
from projections.session import apply
from schemas.events import decode_event
from schemas.session import SessionState, decode_state, encode_state, encode_view
from streams.control.worker import GC_THRESHOLDS
from streams.devkit import broker as local_broker
from streams.devkit.fold import make_fold
from streams.devkit.paths import REPO, SAMPLE_RULES_FILE, sample_rules
from streams.devkit.workers import WorkerProcess, make_worker
from streams.fold.batch import Stored, fold_batch
from streams.fold.store import pack_session, unpack_session, unpack_stored
from streams.tools.export.events import RecordFilter, export_to_file

# streams/fold/loop.py, at info level, once per partition caught up from the changelog.
RESTORED = re.compile(r"partition (\d+): (\d+) changelog records restored in ([\d.]+)s")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def expected_states(records: Iterable[Record], sessions: set[str], rules: Any) -> dict[str, SessionState]:
    states: dict[str, SessionState] = {}
    for record in records:
        if record.session in sessions:
            states[record.session] = apply(states.get(record.session), decode_event(record.value), rules)
    return states


def rss_of(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak) of a process, MB (10^6 bytes)."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = round(int(rest.split()[0]) * 1024 / 1e6, 1)
    return out


# The worker at rest after the fold (streams/fold/loop.py trims its heap after 0.5 s idle).
RSS_SETTLE_S = 2.0


def memory_at_rest(worker: WorkerProcess) -> dict[str, float]:
    """VmRSS and VmHWM of a worker that has just folded everything, once at rest, not mid-burst: the
    loop hands freed memory back after 0.5 s without records."""
    assert worker.process is not None
    time.sleep(RSS_SETTLE_S)
    return rss_of(worker.process.pid)


def children_cpu_seconds() -> float:
    """User + system CPU seconds of this process's children that have ended and been waited for."""
    times = os.times()
    return times.children_user + times.children_system


def data_dir_mb(data_dir: Path) -> dict[str, float]:
    """The worker's data folder on disk, MB (10^6 bytes): the partitions' session stores, their
    history stores, and all of it (docs/operations.md sizes volumes by these)."""

    def size(paths: Any) -> float:
        return round(sum(f.stat().st_size for path in paths for f in path.rglob("*") if f.is_file()) / 1e6, 1)

    store = data_dir / "store"
    return {
        "data_dir_mb": size([data_dir]),
        "session_stores_mb": size(store.glob("sessions-*")),
        "history_stores_mb": size(store.glob("history-*")),
    }


# sessionctl rebuild's last line, e.g.
# "generation 2: 19989 sessions, 200000 events folded (200500 records read) in 6.2s, 32,204 events/s"
REBUILT = re.compile(
    r"generation (\d+): (\d+) sessions, (\d+) events folded \((\d+) records read\) in ([\d.]+)s, ([\d,.]+) events/s"
)


class Bench:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.run_id = f"{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"
        self.scratch = Path(tempfile.mkdtemp(prefix="session-engine-bench."))
        self.logs = self.scratch / "logs"
        self.logs.mkdir()
        self.broker_dir = self.scratch / "kafka"
        self.bootstrap = ""
        self.topic = f"bench-events-{self.run_id}"
        self.app_id = f"bench-worker-{self.run_id}"
        self.settings = worker_settings(self.app_id, self.topic)
        self.rules = sample_rules()
        self.results: dict[str, Any] = {}
        self.checks: dict[str, Any] = {}
        self.errors: dict[str, str] = {}
        self.cpu: dict[str, dict[str, float]] = {}
        self.quix_python: Path | None = None
        self.worker: WorkerProcess | None = None
        self.changelog = ""
        self.profile_top: dict[str, Any] | None = None
        # The RSS phase's worker, topic and long sessions: the history phase reads them.
        self.rss_worker: WorkerProcess | None = None
        self.rss_events = 0
        self.long: LongSessions | None = None
        # The stream phases' records actually sent, in order (the rebuild's check folds them too).
        self.streamed: list[Record] = []
        # The serving ceiling's answer to one read: (status, headers, body), compared with the worker's.
        self.ceiling_answer: tuple[int | None, dict[str, str], bytes] | None = None

    # -- plumbing --

    def broker_pid(self) -> list[int]:
        try:
            return [int((self.broker_dir / "broker.pid").read_text().strip())]
        except (OSError, ValueError):
            return []

    def meter(self) -> CpuMeter:
        return CpuMeter.start([*pids(), *self.broker_pid()])

    def metered(self, phase: str, meter: CpuMeter) -> None:
        self.cpu[phase] = meter.stop([*pids(), *self.broker_pid()])

    def phase(self, name: str, func: Any, *args: Any) -> Any:
        log(f"{name} ...")
        began = time.monotonic()
        try:
            result = func(*args)
        except Exception as exc:  # noqa: BLE001 - one phase failing must not lose the others' figures
            self.errors[name] = f"{type(exc).__name__}: {exc}"
            log(f"{name} FAILED: {exc}")
            traceback.print_exc(file=sys.stderr)
            return None
        log(f"{name} done in {time.monotonic() - began:.1f}s")
        return result

    def new_worker(self, app_id: str, topic: str, data_dir: Path, log_name: str) -> WorkerProcess:
        worker = make_worker(
            self.bootstrap, app_id, topic, data_dir, self.logs / log_name, self.config.partitions,
            SESSIONS_RULES_FILE=str(SAMPLE_RULES_FILE),
            SESSIONS_SERVICE_KEYS=f"{BENCH_SERVICE_KEY}=sessions:read",
        )  # fmt: skip
        worker.on_spawn = register
        return worker

    def check_served(self, worker: WorkerProcess, expected: dict[str, SessionState]) -> dict[str, Any]:
        mismatched, missing = [], []
        for session, state in expected.items():
            status, body = http_get(f"{worker.url}/api/v1/sessions/{session}")
            if status != 200:
                missing.append(session)
            elif orjson.loads(body) != orjson.loads(encode_view(state)):
                mismatched.append(session)
        return {
            "checked": len(expected),
            "missing": missing[:5],
            "mismatched": mismatched[:5],
            "ok": not (mismatched or missing),
        }

    def wait_folded(self, topic: str, group: str, timeout: float, interval: float = 0.25) -> bool:
        """Until the fold loop's group (``<app id>-fold``) has committed every record of ``topic``
        (asked every ``interval`` s: each asking is a consumer of its own, CPU the worker shares)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if committed_lag(self.bootstrap, group, topic) == 0:
                    return True
            except (KafkaException, RuntimeError):
                pass  # the group has not committed yet
            time.sleep(interval)
        return False

    # -- phases --

    def start_broker(self) -> None:
        self.bootstrap = local_broker.start(self.broker_dir, local_broker.free_port(), quiet=True)
        log(f"broker {local_broker.kafka_version()} at {self.bootstrap} (data {self.broker_dir})")

    def setup(self) -> None:
        cfg = self.config
        self.start_broker()
        workload = Workload(cfg.seed, cfg.sessions)
        self.fold_records = workload.take(cfg.events)
        self.counts_a = dict(workload.touched())
        # One stream for the closed-loop phase, one for the open-loop phase: each event's count in its
        # session follows on from the events before it.
        stream_events = max(1, int(cfg.rate * (cfg.latency_warmup + cfg.latency_seconds)))
        self.latency_records = workload.take(stream_events)
        self.open_records = workload.take(stream_events)
        self.counts_b = dict(workload.touched())
        rng = random.Random(cfg.seed)
        self.sample_ids = sorted(rng.sample(sorted(self.counts_a), min(cfg.samples, len(self.counts_a))))
        self.samples_file = self.scratch / "samples.txt"
        self.samples_file.write_text("\n".join(self.sample_ids) + "\n")
        self.expected_a = expected_states(self.fold_records, set(self.sample_ids), self.rules)
        create_topic(self.bootstrap, self.topic, cfg.partitions)
        produced = produce_all(self.bootstrap, self.topic, self.fold_records, timeout=cfg.phase_timeout)
        self.results["workload"] = {
            "seed": cfg.seed,
            "events": cfg.events,
            "sessions": cfg.sessions,
            "sessions_touched": len(self.counts_a),
            "max_events_per_session": max(self.counts_a.values()),
            "mean_value_bytes": round(sum(len(r.value) for r in self.fold_records) / len(self.fold_records), 1),
            "latency_events": len(self.latency_records),
            "open_loop_events": len(self.open_records),
            "topic": self.topic,
            "partitions": cfg.partitions,
            "producer_rate": round(produced.rate),
            "producer_seconds": round(produced.seconds, 2),
        }
        gc.collect()
        gc.freeze()  # the workload lives for the whole run: keep it out of the collector's way

    def micro(self) -> None:
        raw = sample_page_view()
        number = 20_000
        timings = timeit.repeat(lambda: decode_event(raw), number=number, repeat=7)
        decode_us = min(timings) / number * 1e6
        # The old per-event pure fold (the peers' fold step): decode, decode the state, apply, encode,
        # into a dict.
        subset = self.fold_records[: min(len(self.fold_records), 50_000)]
        store: dict[bytes, bytes | None] = {}
        step = make_fold(self.rules)
        began = time.perf_counter()
        for record in subset:
            store[record.key] = step(record.key, record.value, store.get(record.key))
        seconds = time.perf_counter() - began
        batched = self.pure_batched_fold()
        self.results["micro"] = {
            "decode_page_view_us": round(decode_us, 3),
            "decode_page_view_bytes": len(raw),
            "pure_fold_events": len(subset),
            "pure_fold_us_per_event": round(seconds / len(subset) * 1e6, 2),
            "pure_fold_rate": round(len(subset) / seconds),
            **batched,
        }

    def pure_batched_fold(self) -> dict[str, Any]:
        """``streams.fold.batch.fold_batch`` as the loop calls it: per partition, batches of PURE_BATCH
        records, each touched session read from a dict of stored bytes kept between batches (the
        loop's cache), under the worker's GC thresholds, no Kafka, no RocksDB."""
        cfg = self.config
        by_partition: dict[int, list[tuple[bytes | None, bytes | None, int]]] = defaultdict(list)
        for record in self.fold_records:
            records = by_partition[(murmur2(record.key) & 0x7FFFFFFF) % cfg.partitions]
            records.append((record.key, record.value, len(records)))
        rules, max_bytes = self.rules, self.settings.max_session_bytes
        caches: dict[int, dict[bytes, bytes]] = {p: {} for p in by_partition}
        batches = dead = writes = 0
        thresholds = gc.get_threshold()
        gc.set_threshold(*GC_THRESHOLDS)  # as the worker runs (streams/control/worker.py)
        began = time.perf_counter()
        for partition, records in by_partition.items():
            cache = caches[partition]

            def read(key: bytes, cache: dict[bytes, bytes] = cache) -> Stored | None:
                raw = cache.get(key)
                if raw is None:
                    return None
                stored = unpack_stored(raw)
                return Stored(stored.offset, decode_state(stored.encoded), stored.locator)

            for start in range(0, len(records), PURE_BATCH):
                outcome = fold_batch(records[start : start + PURE_BATCH], read, rules, max_bytes)
                for key, written in outcome.writes.items():
                    cache[key] = pack_session(written.offset, written.encoded, written.locator, written.activity_ms)
                batches += 1
                dead += len(outcome.dead)
                writes += len(outcome.writes)
        seconds = time.perf_counter() - began
        gc.set_threshold(*thresholds)
        wanted = {s: orjson.loads(encode_state(state)) for s, state in self.expected_a.items()}
        got: dict[str, Any] = {}
        for cache in caches.values():
            for session in wanted:
                stored = cache.get(session.encode())
                if stored is not None:
                    got[session] = orjson.loads(unpack_session(stored)[1])
        bad = sorted(s for s in wanted if got.get(s) != wanted[s])
        self.checks["pure_batched_fold_states"] = {"checked": len(wanted), "mismatched": bad[:5], "ok": not bad}
        return {
            "pure_batch_fold_events": len(self.fold_records),
            "pure_batch_fold_batch": PURE_BATCH,
            "pure_batch_fold_batches": batches,
            "pure_batch_fold_writes": writes,
            "pure_batch_fold_dead": dead,
            "pure_batch_fold_us_per_event": round(seconds / len(self.fold_records) * 1e6, 2),
            "pure_batch_fold_rate": round(len(self.fold_records) / seconds),
        }

    def run_peer(self, name: str) -> dict[str, Any]:
        cfg = self.config
        script = {"raw": "raw_consume.py", "faust": "faust_plain.py", "quix": "quix_fold.py"}[name]
        python = sys.executable
        if name == "quix":
            assert self.quix_python is not None
            python = str(self.quix_python)
        result_path = self.scratch / f"peer-{name}.json"
        cmd = [
            python,
            str(HERE / "peers" / script),
            "--bootstrap",
            self.bootstrap,
            "--topic",
            self.topic,
            "--group",
            f"bench-peer-{name}-{self.run_id}",
            "--partitions",
            str(cfg.partitions),
            "--expect",
            str(len(self.fold_records)),
            "--state-dir",
            str(self.scratch / f"peer-{name}-state"),
            "--rules",
            str(SAMPLE_RULES_FILE),
            "--samples",
            "" if name == "raw" else str(self.samples_file),
            "--result",
            str(result_path),
            "--timeout",
            str(cfg.phase_timeout + 60),
        ]
        # The Quix venv has no project installed: the peers import it from the checkout.
        # The peers fold with the pure-Python modules, as a Quix or faust user's code runs (the
        # worker runs the compiled build when there is one: `make compile`, projections/native.py).
        env = {**os.environ, "PYTHONPATH": str(REPO), native.OFF_SWITCH: "1"}
        peer = Peer(name, cmd, result_path, self.logs / f"peer-{name}.log", env)
        meter = self.meter()
        peer.start()
        try:
            result = peer.wait(cfg.phase_timeout)
        finally:
            self.metered(f"peer-{name}", meter)
            peer.stop()
        result["start_to_done_seconds"] = round((result["done_ns"] - peer.started_ns) / 1e9, 2)
        if name != "raw":
            wanted = {s: orjson.loads(encode_state(state)) for s, state in self.expected_a.items()}
            got = {s: orjson.loads(v) for s, v in result.pop("samples", {}).items()}
            bad = sorted(s for s in wanted if got.get(s) != wanted[s])
            self.checks[f"peer_{name}_states"] = {"checked": len(wanted), "mismatched": bad[:5], "ok": not bad}
        else:
            result.pop("samples", None)
        self.results[f"peer_{name}"] = result
        return result

    def worker_fold(self) -> None:
        cfg = self.config
        worker = self.worker = self.new_worker(self.app_id, self.topic, self.scratch / "worker-data", "worker.log")
        meter = self.meter()
        worker.spawn()
        ready_s = worker.wait_ready(120.0)
        spy = None
        binary = py_spy_binary()
        profile_path = VAR / "bench-profile.txt"
        if cfg.profile and binary is not None and worker.process is not None:
            profile_path.unlink(missing_ok=True)
            spy = PySpy(binary, worker.process.pid, profile_path, self.logs / "py-spy.log")
        elif cfg.profile:
            self.errors["profile"] = "no py-spy: `make install` (requirements/dev.lock holds it)"
        # The loop commits its source offsets under <app id>-fold about every second: lag 0 means
        # every event is folded (the profile then stops; the rate comes from the changelog below).
        finished = self.wait_folded(self.topic, self.settings.fold_group_id, cfg.phase_timeout)
        if spy is not None:
            self.stop_profile(spy, profile_path)
        self.metered("worker-fold", meter)
        self.changelog = changelog_topic(self.bootstrap, self.settings)
        records = read_changelog(self.bootstrap, self.changelog, timeout=cfg.phase_timeout)
        reached: dict[str, int] = {}
        seen: dict[str, int] = defaultdict(int)
        first_ms = min((r.timestamp_ms for r in records), default=0)
        for record in records:
            session = record.key.decode()
            if record.count is None:
                continue
            seen[session] = max(seen[session], record.count)
            if session not in reached and record.count >= self.counts_a.get(session, 1 << 62):
                reached[session] = record.timestamp_ms
        unfinished = [s for s in self.counts_a if s not in reached]
        done_ms = max(reached.values(), default=0)
        # From the earlier of /readyz answering (the loop runs) and the first changelog record (the
        # end of the first batch) to the record that brought the last session to its final count.
        start_ms = min(first_ms, worker.ready_ns / 1e6) if first_ms else worker.ready_ns / 1e6
        seconds = (done_ms - start_ms) / 1000 if done_ms > start_ms else 0.0
        folded = sum(min(seen.get(s, 0), c) for s, c in self.counts_a.items())
        self.results["worker_fold"] = {
            "events": len(self.fold_records),
            "finished": finished and not unfinished,
            "events_folded": folded,
            "sessions_unfinished": len(unfinished),
            "changelog_records": len(records),
            "start_to_ready_seconds": round(ready_s, 2),
            "ready_to_first_changelog_seconds": round((first_ms - worker.ready_ns / 1e6) / 1000, 3),
            "fold_seconds": round(seconds, 3),
            "start_to_last_fold_seconds": round(done_ms / 1000 - worker.started_ns / 1e9, 2) if done_ms else None,
            "rate": round(folded / seconds) if seconds > 0 else None,
            "profiled": self.profile_top is not None,
        }
        if unfinished:
            raise RuntimeError(
                f"{len(unfinished)} sessions not folded to their last event within {cfg.phase_timeout:.0f}s "
                f"({folded} of {len(self.fold_records)} events)"
            )
        self.checks["worker_states_after_fold"] = self.check_served(worker, self.expected_a)
        self.checks["dead_letters"] = record_count(self.bootstrap, self.settings.dlq_topic)
        worker.stop()

    def stop_profile(self, spy: PySpy, path: Path) -> None:
        if spy.stop():
            self.profile_top = top_functions(path)
        else:
            self.errors["profile"] = f"py-spy wrote nothing: {tail(self.logs / 'py-spy.log', 5)}"

    def worker_restart(self) -> None:
        # Same port as before: with static group membership (the worker's instance id comes from
        # its data folder) a restart at another address hangs in faust's assignor, see README.md.
        assert self.worker is not None
        meter = self.meter()
        self.worker.spawn()
        self.results["worker_warm_restart_seconds"] = round(self.worker.wait_ready(120.0), 2)
        self.metered("worker-warm-restart", meter)

    def start_reads(
        self, port: int, seconds: float, warmup: float, out: Path, log_name: str
    ) -> subprocess.Popen[bytes]:
        """The closed-loop read load (``load.py reads``): ``concurrency`` connections, each sending its
        next read when the last one is answered, in a process of its own."""
        cfg = self.config
        return spawn(
            [
                sys.executable, str(HERE / "load.py"), "reads",
                "--port", str(port),
                "--ids", str(self.read_ids_file()),
                "--concurrency", str(cfg.concurrency),
                "--seconds", str(seconds),
                "--warmup", str(warmup),
                "--seed", str(cfg.seed),
                "--authorization", AUTHORIZATION,
                "--out", str(out),
            ],
            self.logs / log_name,
        )  # fmt: skip

    def read_ids_file(self) -> Path:
        ids_file = self.scratch / "read-ids.txt"
        if not ids_file.exists():
            ids_file.write_text("\n".join(sorted(self.counts_a)) + "\n")
        return ids_file

    def finish_reads(self, proc: subprocess.Popen[bytes], out: Path, timeout: float, log_name: str) -> dict[str, Any]:
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            terminate(proc)
            raise TimeoutError("the read load did not end in time") from None
        if code != 0 or not out.exists():
            raise RuntimeError(f"the read load failed ({code}):\n{tail(self.logs / log_name)}")
        return dict(json.loads(out.read_text()))

    def closed_loop_reads(self, port: int, name: str) -> dict[str, Any]:
        cfg = self.config
        out = self.scratch / f"{name}.json"
        proc = self.start_reads(port, cfg.reads_seconds, cfg.latency_warmup, out, f"{name}.log")
        return self.finish_reads(proc, out, cfg.reads_seconds + cfg.latency_warmup + 60.0, f"{name}.log")

    def serving_ceiling(self) -> None:
        """The serving ceiling (``peers/serve_ceiling.py``) on the worker's partition stores as the fold
        left them (the worker stopped; opened read-only), under the same closed-loop read load as the
        worker's reads; its answers checked against the pure fold, its rate the ceiling."""
        cfg = self.config
        assert self.worker is not None and (self.worker.process is None or self.worker.process.poll() is not None)
        port = local_broker.free_port()
        log_name = "peer-serve-ceiling.log"
        cmd = [
            sys.executable, str(HERE / "peers" / "serve_ceiling.py"),
            "--stores", str(self.worker.data_dir / "store"),
            "--partitions", str(cfg.partitions),
            "--port", str(port),
            "--block-cache-bytes", str(self.settings.rocksdb_block_cache_bytes),
            "--bootstrap", self.bootstrap,
            "--keys-topic", self.settings.keys_topic,
            "--timeout", str(cfg.phase_timeout + 120),
        ]  # fmt: skip
        # The worker's master key (its personal values are sealed in the store), by environment.
        env = {**os.environ, "SESSIONS_MASTER_KEY": self.worker.env.get("SESSIONS_MASTER_KEY", "")}
        meter = self.meter()
        began = time.monotonic()
        proc = spawn(cmd, self.logs / log_name, env)
        try:
            url = f"http://127.0.0.1:{port}/api/v1/sessions/{self.sample_ids[0]}"
            while http_response(url)[0] != 200:
                if proc.poll() is not None or time.monotonic() - began > 60:
                    raise RuntimeError(f"the serving ceiling peer did not answer:\n{tail(self.logs / log_name)}")
                time.sleep(0.05)
            up_s = time.monotonic() - began
            self.ceiling_answer = http_response(url)
            mismatched = []
            for session, state in self.expected_a.items():
                status, _, body = http_response(f"http://127.0.0.1:{port}/api/v1/sessions/{session}")
                if status != 200 or orjson.loads(body) != orjson.loads(encode_view(state)):
                    mismatched.append(session)
            self.checks["ceiling_peer_states"] = {
                "checked": len(self.expected_a),
                "mismatched": mismatched[:5],
                "ok": not mismatched,
            }
            reads = self.closed_loop_reads(port, "reads-ceiling")
        finally:
            terminate(proc)
            self.metered("serving-ceiling", meter)
        self.results["serving_ceiling"] = {**reads, "start_to_first_answer_seconds": round(up_s, 2)}

    def worker_reads(self) -> None:
        """The worker's reads under the same closed-loop load as the ceiling's, no stream running, right
        after its warm restart; and its answer to one read beside the ceiling's (same body, headers)."""
        worker = self.worker
        assert worker is not None
        meter = self.meter()
        try:
            reads = self.closed_loop_reads(worker.port, "reads-quiet")
            answer = http_response(f"{worker.url}/api/v1/sessions/{self.sample_ids[0]}")
        finally:
            self.metered("worker-reads", meter)
        self.results["reads_quiet"] = reads
        ceiling = self.ceiling_answer
        if ceiling is not None:
            # Date differs by its nature; every other header and the body must be the same.
            worker_headers = {k: v for k, v in answer[1].items() if k != "date"}
            ceiling_headers = {k: v for k, v in ceiling[1].items() if k != "date"}
            self.checks["ceiling_same_response"] = {
                "status": [answer[0], ceiling[0]],
                "body_equal": answer[2] == ceiling[2],
                "worker_headers": worker_headers,
                "ceiling_headers": ceiling_headers,
                "ok": answer[0] == ceiling[0] == 200 and answer[2] == ceiling[2] and worker_headers == ceiling_headers,
            }

    def stream(self, records: list[Record]) -> Streamed:
        """``records`` produced at ``--rate`` (each one's send time recorded), every
        ``--http-sample-every``th polled over HTTP until visible; with the worker's CPU meanwhile,
        in all and per second (a second the worker was idle while events waited is a stall that is
        not its CPU)."""
        cfg = self.config
        worker = self.worker
        assert worker is not None
        run = PacedRun(records, cfg.rate)
        every = cfg.http_sample_every
        http_ns: dict[int, int | None] = {}

        async def drive() -> VisibilityPoller:
            loop = asyncio.get_running_loop()
            poller = VisibilityPoller(worker.port, AUTHORIZATION)
            tasks: list[asyncio.Task[None]] = []

            async def watch(index: int) -> None:
                record = run.records[index]
                http_ns[index] = await poller.wait_visible(record.session, record.count, run.sent_ns[index], index)

            def on_sent(index: int) -> None:
                if every and index % every == 0:
                    loop.call_soon_threadsafe(lambda: tasks.append(loop.create_task(watch(index))))

            thread = threading.Thread(
                target=produce_paced, args=(self.bootstrap, self.topic, run, on_sent), name="bench-paced-producer"
            )
            thread.start()
            while thread.is_alive():
                await asyncio.sleep(0.05)
            thread.join()
            await asyncio.sleep(0)
            if tasks:
                await asyncio.gather(*tasks)
            poller.close()
            return poller

        worker_pid = worker.process.pid if worker.process is not None else 0
        worker_cpu0, wall0 = process_cpu_seconds(worker_pid), time.monotonic()
        timeline = CpuTimeline(worker_pid).start()
        gc.disable()
        try:
            poller = asyncio.run(drive())
        finally:
            gc.enable()
            by_second = timeline.stop()
        worker_cpu = (process_cpu_seconds(worker_pid) - worker_cpu0) / (time.monotonic() - wall0)
        self.streamed.extend(run.records[: len(run.sent_ns)])
        return Streamed(run, poller, http_ns, worker_cpu, by_second)

    def visibility(self, streamed: Streamed, start_offsets: dict[int, int], warm: int) -> dict[str, Any]:
        """Event-to-visible of a stream phase from the worker's changelog (``latency.py``): percentiles
        of the events from index ``warm`` on, the warm-up's apart, per second, and the fold's lag."""
        cfg = self.config
        run, poller, http_ns = streamed.run, streamed.poller, streamed.http_ns
        caught_up = wait_for_commits(self.bootstrap, self.settings.fold_group_id, self.topic, time.monotonic() + 60)
        changes = read_changelog(self.bootstrap, self.changelog, start=start_offsets)
        sent = len(run.sent_ns)
        records = [(record.session, record.count) for record in run.records[:sent]]
        visible = visible_at_ms(records, ((c.key.decode(), c.count, c.timestamp_ms) for c in changes))
        by_index = {i: ms - run.sent_ns[i] / 1e6 for i, ms in visible.items()}
        warm = min(sent, warm)
        measured = {i: v for i, v in by_index.items() if i >= warm}
        tenth = max(1, (sent - warm) // 10)
        http_measured = {i: v for i, v in http_ns.items() if i >= warm}
        http_values = [v for v in http_measured.values() if v is not None]
        http_skipped = sum(1 for i in http_measured if i in poller.skipped_indices)
        lag = lag_by_second(run.sent_ns, visible)
        return {
            "rate_target": cfg.rate,
            "events": sent,
            "warmup_events": warm,
            "seconds": round(run.seconds, 2),
            "achieved_rate": round(run.achieved_rate, 1),
            "late_ticks": run.late_ticks,
            "produce_failures": run.failed,
            "worker_caught_up": caught_up,
            "worker_cpus_busy": round(streamed.worker_cpu, 2),
            "worker_cpus_busy_by_second": streamed.worker_cpus_by_second,
            "not_visible": sent - len(visible),
            "reads_concurrently": True,
            # Percentiles over the events after the warm-up; the warm-up's own below.
            "changelog": summarize_ms([int(v * 1e6) for v in measured.values()]),
            "changelog_warmup": summarize_ms([int(v * 1e6) for i, v in by_index.items() if i < warm]),
            "changelog_all": summarize_ms([int(v * 1e6) for v in by_index.values()]),
            # A backlog shows as latency growing through the phase: the worker is not keeping up.
            "changelog_p50_ms_by_second": [
                percentile([v for i, v in by_index.items() if second <= i / cfg.rate < second + 1], 50)
                for second in range(math.ceil(sent / cfg.rate))
            ],
            "changelog_p99_ms_by_second": [
                percentile([v for i, v in by_index.items() if second <= i / cfg.rate < second + 1], 99)
                for second in range(math.ceil(sent / cfg.rate))
            ],
            "changelog_first_tenth_p50_ms": percentile([v for i, v in measured.items() if i < warm + tenth], 50),
            "changelog_last_tenth_p50_ms": percentile([v for i, v in measured.items() if i >= sent - tenth], 50),
            # The fold's lag: events sent and not visible yet, worst of each second; bounded when the
            # last third of the phase is no worse than before it (or than 1 s of the stream).
            "lag_events_by_second": lag,
            "lag_bounded": lag_bounded(lag, floor=int(cfg.rate)),
            "http_samples": len(http_measured) - http_skipped,
            "http_skipped_busy": http_skipped,
            "http_not_visible": len(http_measured) - http_skipped - len(http_values),
            "http_polls": poller.polls,
            "http_errors": poller.errors,
            "http": summarize_ms(http_values),
        }

    def stream_and_reads(self) -> None:
        """The paced stream (event-to-visible latency) and, in a process of its own at the same time,
        the closed-loop (saturating) reads at concurrency 32 over the same warm-up and measured window."""
        cfg = self.config
        worker = self.worker
        assert worker is not None
        start_offsets = {p: high for p, (_, high) in end_offsets(self.bootstrap, self.changelog).items()}
        reads_out = self.scratch / "reads.json"
        meter = self.meter()
        reader = self.start_reads(worker.port, cfg.latency_seconds, cfg.latency_warmup, reads_out, "reads.log")
        try:
            streamed = self.stream(self.latency_records)
        finally:
            try:
                self.results["reads"] = self.finish_reads(reader, reads_out, 60.0, "reads.log")
            except Exception as exc:  # noqa: BLE001 - the latency figures still count
                self.errors["reads while streaming"] = f"{type(exc).__name__}: {exc}"
            self.metered("stream-and-reads", meter)
        warm = int(cfg.rate * cfg.latency_warmup)
        self.results["latency"] = self.visibility(streamed, start_offsets, warm)

    def read_capacity(self) -> tuple[float | None, str]:
        """The worker's read capacity measured in this run: its closed-loop rate while the stream ran
        (the open-loop phase runs the same stream), else without it."""
        for key in ("reads", "reads_quiet"):
            rate = self.results.get(key, {}).get("rate")
            if rate:
                return float(rate), key
        return None, ""

    def stream_open_loop(self) -> None:
        """The worker restarted, then from its /readyz on: the paced stream and, at the same time, reads
        on a fixed schedule (``load.py open``) at OPEN_LOOP_SHARE of its measured read capacity, each
        read's latency from its due time. Event-to-visible over the whole phase, restart included."""
        cfg = self.config
        worker = self.worker
        assert worker is not None
        capacity, source = self.read_capacity()
        if not capacity:
            raise RuntimeError("no closed-loop read rate measured: nothing to take a share of")
        rate = capacity * OPEN_LOOP_SHARE
        seconds = cfg.latency_warmup + cfg.latency_seconds
        out = self.scratch / "reads-open.json"
        log_name = "reads-open.log"
        worker.stop()
        start_offsets = {p: high for p, (_, high) in end_offsets(self.bootstrap, self.changelog).items()}
        go = self.scratch / "reads-open.start"
        go.unlink(missing_ok=True)
        meter = self.meter()
        try:
            # The reader starts first and waits for the go file: its start-up is not in the phase.
            reader = spawn(
                [
                    sys.executable, str(HERE / "load.py"), "open",
                    "--port", str(worker.port),
                    "--ids", str(self.read_ids_file()),
                    "--rate", f"{rate:.1f}",
                    "--seconds", str(seconds),
                    "--connections", str(cfg.concurrency),
                    "--start-file", str(go),
                    "--seed", str(cfg.seed),
                    "--authorization", AUTHORIZATION,
                    "--out", str(out),
                ],
                self.logs / log_name,
            )  # fmt: skip
            try:
                worker.spawn()
                restart_s = worker.wait_ready(120.0)
            except Exception:
                terminate(reader)
                raise
            # Reads and stream begin together, as soon as /readyz answers.
            start_at = time.time() + 0.02
            partial = go.with_suffix(".partial")
            partial.write_text(f"{start_at:.6f}")
            os.replace(partial, go)
            time.sleep(max(0.0, start_at - time.time()))
            try:
                streamed = self.stream(self.open_records)
            finally:
                reads = self.finish_reads(reader, out, 60.0, log_name)
        finally:
            self.metered("stream-open-loop", meter)
        warm = int(cfg.rate * cfg.latency_warmup)
        self.results["open_loop"] = {
            "read_capacity": capacity,
            "read_capacity_from": source,
            "share": OPEN_LOOP_SHARE,
            "read_rate": round(rate, 1),
            "restart_to_ready_seconds": round(restart_s, 2),
            "reads": reads,
            # The figure is ``latency.changelog_all``: every event of the phase, the restart's first
            # seconds included; ``latency.changelog`` leaves the warm-up out, as the closed-loop phase does.
            "latency": self.visibility(streamed, start_offsets, warm),
        }

    def rebuild(self) -> None:
        """The worker's data folder lost: it catches up from its changelog (``restore_from_changelog``);
        then the sample sessions served as folded before, the stream phases' events included."""
        worker = self.worker
        assert worker is not None
        self.results["rebuild"] = restored = {"sessions": len(self.counts_b)}
        cold = self.results.get("worker_fold", {}).get("start_to_ready_seconds")
        self.restore_from_changelog(worker, self.changelog, cold, self.config.phase_timeout, "rebuild", restored)
        # What was folded before the data folder went: the pre-loaded topic and the streams sent.
        expected = expected_states([*self.fold_records, *self.streamed], set(self.sample_ids), self.rules)
        self.checks["worker_states_after_rebuild"] = self.check_served(worker, expected)
        worker.stop()

    def restore_from_changelog(
        self, worker: WorkerProcess, changelog: str, cold_start_s: float | None, timeout: float, phase: str,
        out: dict[str, Any],
    ) -> None:  # fmt: skip
        """The worker stopped, its data folder deleted, started again at info level: the changelog
        records restored and the seconds of catch-up, summed over its log lines (net of process start,
        imports and group join), into ``out`` (before a missing log line fails the phase: the readyz
        cross-check still counts). The worker is left running, ready."""
        worker.stop()
        changelog_records = record_count(self.bootstrap, changelog)
        shutil.rmtree(worker.data_dir)
        # At info level the loop logs each partition's catch-up: records and seconds, net of start.
        worker.env["SESSIONS_LOG_LEVEL"] = "info"
        log_from = worker.log_path.stat().st_size if worker.log_path.exists() else 0
        meter = self.meter()
        worker.spawn()
        try:
            seconds = worker.wait_ready(timeout)
        finally:
            worker.env["SESSIONS_LOG_LEVEL"] = "warning"
            self.metered(phase, meter)
        with open(worker.log_path, "rb") as handle:
            handle.seek(log_from)
            text = handle.read().decode(errors="replace")
        restored = [(int(p), int(n), float(s)) for p, n, s in RESTORED.findall(text)]
        restored_records = sum(n for _, n, _ in restored)
        restore_seconds = sum(s for _, _, s in restored)
        net = seconds - cold_start_s if cold_start_s is not None and seconds > cold_start_s else None
        out.update(
            {
                "changelog_records": changelog_records,
                "partitions_logged": len(restored),
                "restored_records": restored_records,
                "restore_seconds": round(restore_seconds, 3),
                # The figure: records restored per second of catch-up, from the worker's own log lines.
                "rate": round(restored_records / restore_seconds) if restore_seconds > 0 else None,
                "start_to_ready_seconds": round(seconds, 2),
                # Cross-check: readyz time minus a cold start (empty store) of the same worker.
                "net_of_cold_start_seconds": round(net, 2) if net else None,
                "net_rate": round(changelog_records / net) if net else None,
            }
        )
        if not restored:
            raise RuntimeError(f"no 'changelog records restored' lines in the worker log:\n{tail(worker.log_path)}")

    def export(self) -> None:
        """The pre-loaded topic's whole time range to Parquet (``export_range``), after the raw peer."""
        stamps = [r.timestamp_ms for r in self.fold_records if r.timestamp_ms is not None]
        result, check = self.export_range(
            self.topic, min(stamps), max(stamps), len(self.fold_records), self.scratch / "export.parquet", "export"
        )
        self.results["export"], self.checks["export_rows"] = result, check

    def export_range(
        self, topic: str, first_ms: int, last_ms: int, expected: int, path: Path, phase: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """``export_to_file`` (what ``sessionctl export --format parquet`` calls), in this process, over
        ``topic``'s whole time range (its first event's time to just after its last one), to a scratch
        file; timed around the call (consumer start, time index lookups, the file's close). The result
        and the check of its rows (``expected`` events)."""
        start = datetime.fromtimestamp(first_ms / 1000, UTC)
        end = datetime.fromtimestamp((last_ms + 1) / 1000, UTC)
        first: list[tuple[float, int]] = []  # (time, events written) at the first progress call

        def progress(read: int, written: int, planned: int) -> None:
            if not first:
                first.append((time.perf_counter(), written))

        meter = self.meter()
        cpu0 = process_cpu_seconds(os.getpid())
        began = time.perf_counter()
        try:
            summary = export_to_file(
                self.bootstrap, topic, RecordFilter(start, end), "parquet", path, progress=progress
            )
        finally:
            self.metered(phase, meter)
        ended = time.perf_counter()
        seconds = ended - began
        cpu = process_cpu_seconds(os.getpid()) - cpu0
        # Beside the figure: the rate after the first batch written (as the raw peer times itself,
        # from its first record), without the consumer's start and the time index lookups.
        steady = (summary.written - first[0][1]) / (ended - first[0][0]) if first and ended > first[0][0] else None
        rows = pq.ParquetFile(path).metadata.num_rows
        result = {
            "format": "parquet",
            "how": "streams.tools.export.events.export_to_file, in the bench's process",
            "from": start.isoformat(),
            "to": end.isoformat(),
            "events": expected,
            "written": summary.written,
            "records_read": summary.read,
            "skipped": summary.skipped,
            "partitions_read": summary.partitions_read,
            "seconds": round(seconds, 3),
            "export_seconds": round(summary.seconds, 3),  # the export's own clock: up to the last write
            "file_bytes": path.stat().st_size,
            "rate": round(summary.written / seconds) if seconds > 0 else None,
            "rate_after_first_batch": round(steady) if steady else None,
            "cpu_seconds": round(cpu, 2),  # the bench's process (the export and its consumer's threads)
        }
        check = {
            "expected": expected,
            "written": summary.written,
            "parquet_rows": rows,
            "ok": rows == summary.written == expected,
        }
        path.unlink(missing_ok=True)
        return result, check

    def rebuild_generation(self) -> None:
        """``sessionctl rebuild`` of the pre-loaded topic into table generation 2 (``sessionctl_rebuild``)."""
        self.results["rebuild_generation"] = self.sessionctl_rebuild(
            self.app_id,
            self.topic,
            self.scratch / "rebuild-generation",
            "rebuild-generation",
            self.config.phase_timeout,
        )

    def sessionctl_rebuild(self, app_id: str, topic: str, data_dir: Path, name: str, timeout: float) -> dict[str, Any]:
        """``python -m streams rebuild`` (a process of its own, as an operator runs it) folds the whole of
        ``topic`` into the next table generation of ``app_id``; the figure is the rate it prints, its
        own clock (from its first record to its last write)."""
        cfg = self.config
        env = {
            **os.environ,
            "SESSIONS_KAFKA_BOOTSTRAP": self.bootstrap,
            "SESSIONS_APP_ID": app_id,
            "SESSIONS_EVENTS_TOPIC": topic,
            "SESSIONS_PARTITIONS": str(cfg.partitions),
            "SESSIONS_DATA_DIR": str(data_dir),
            "SESSIONS_RULES_FILE": str(SAMPLE_RULES_FILE),
            "SESSIONS_LOG_LEVEL": "warning",
        }
        log_path = self.logs / f"{name}.log"
        meter = self.meter()
        # Its CPU: children's times grow by what a child used once it is reaped (the wait below).
        cpu0 = children_cpu_seconds()
        try:
            proc = spawn([sys.executable, "-m", "streams", "rebuild"], log_path, env)
            code = proc.wait(timeout)
        finally:
            self.metered(name, meter)
        cpu = children_cpu_seconds() - cpu0
        text = log_path.read_text(errors="replace")
        found = REBUILT.search(text)
        if code != 0 or found is None:
            raise RuntimeError(f"sessionctl rebuild exited {code}:\n{tail(log_path)}")
        generation, sessions, events, records, seconds, rate = found.groups()
        return {
            "generation": int(generation),
            "sessions": int(sessions),
            "events": int(events),
            "records": int(records),
            "seconds": float(seconds),
            "rate": float(rate.replace(",", "")),
            "cpu_seconds": round(cpu, 2),  # the whole process: start and imports included
        }

    def rss(self) -> None:
        """A fresh worker folds ``rss_sessions`` sessions of one event each, with LONG_SESSIONS sessions
        of LONG_SESSION_EVENTS events spread evenly through them (for the history phase); its RSS
        afterwards, at rest (``RSS_SETTLE_S`` after the last offset is committed), and its peak."""
        cfg = self.config
        topic, app_id = f"bench-rss-{self.run_id}", f"bench-rss-{self.run_id}"
        settings = worker_settings(app_id, topic)
        create_topic(self.bootstrap, topic, cfg.partitions)
        self.long = long_sessions(LONG_SESSIONS, LONG_SESSION_EVENTS, cfg.seed)
        records = interleave(one_event_sessions(cfg.rss_sessions, cfg.seed), cfg.rss_sessions, self.long.records)
        produced = produce_all(self.bootstrap, topic, records, timeout=cfg.phase_timeout)
        self.rss_events = produced.records
        worker = self.new_worker(app_id, topic, self.scratch / "rss-worker-data", "rss-worker.log")
        self.rss_worker = worker
        meter = self.meter()
        worker.spawn()
        try:
            worker.wait_ready(120.0)
            began = time.monotonic()
            done = self.wait_folded(topic, settings.fold_group_id, cfg.phase_timeout)
            seconds = time.monotonic() - began
            memory = memory_at_rest(worker)
        finally:
            self.metered("rss", meter)
            worker.stop()
        # After the stop: what a volume must hold for these sessions (the stores closed, WAL included).
        disk = data_dir_mb(self.scratch / "rss-worker-data")
        self.results["rss"] = {
            **disk,
            "sessions": cfg.rss_sessions,
            "long_sessions": LONG_SESSIONS,
            "long_session_events": LONG_SESSION_EVENTS,
            "events": produced.records,
            "producer_seconds": round(produced.seconds, 2),
            "folded": done,
            "fold_seconds_upper_bound": round(seconds, 1),
            "rss_mb": memory.get("VmRSS"),
            "peak_rss_mb": memory.get("VmHWM"),
            "state_cache_sessions": self.settings.state_cache_sessions,
            "rocksdb_block_cache_bytes": self.settings.rocksdb_block_cache_bytes,
            "rocksdb_memtables_bytes": self.settings.rocksdb_memtables_bytes,
            "history_store": self.settings.history_store,
        }
        if not done:
            raise RuntimeError(f"the worker did not fold {produced.records:,} events within {cfg.phase_timeout:.0f}s")

    def history(self) -> None:
        """Issue 9's reads on the RSS phase's topic, one HTTP client (keep-alive), one request at a time:
        the long sessions' timelines and their state in the middle (``?at=``) with the worker restarted
        on its data folder; then, with its history stores deleted, the first timeline read of each
        (its records fetched from Kafka by offset)."""
        cfg = self.config
        worker, long = self.rss_worker, self.long
        assert worker is not None and long is not None
        meter = self.meter()
        try:
            worker.spawn()
            restart_s = worker.wait_ready(cfg.phase_timeout)
            warm = history_reads(worker, long)
            worker.stop()
            stores = sorted((worker.data_dir / "store").glob("history-*"))
            for folder in stores:
                shutil.rmtree(folder)
            worker.spawn()
            cold_restart_s = worker.wait_ready(cfg.phase_timeout)
            cold_ns: list[int] = []
            cold_statuses: dict[str, int] = defaultdict(int)
            bad_cold = []
            with history_client(worker) as client:
                for session, path in zip(long.ids, timeline_paths(long), strict=True):
                    began = time.perf_counter_ns()
                    response = client.get(path)
                    cold_ns.append(time.perf_counter_ns() - began)
                    cold_statuses[str(response.status_code)] += 1
                    if not timeline_ok(response, long.event_ids[session]):
                        bad_cold.append(session)
        finally:
            self.metered("history", meter)
            worker.stop()
        self.results["history"] = {
            "topic_events": self.rss_events,
            "long_sessions": len(long.ids),
            "events_per_session": long.length,
            "restart_to_ready_seconds": round(restart_s, 2),
            "timeline": warm.timeline,
            "at": warm.at,
            "cold_history_stores_deleted": len(stores),
            "cold_restart_to_ready_seconds": round(cold_restart_s, 2),
            "cold_first_timeline": {**summarize_ms(cold_ns), "requests": len(cold_ns), "statuses": dict(cold_statuses)},
        }
        self.checks["history_timelines"] = warm.timelines_check
        self.checks["history_at_middle"] = warm.at_check
        self.checks["history_cold_timelines"] = {
            "checked": len(long.ids),
            "history_stores_deleted": len(stores),
            "mismatched": bad_cold[:5],
            "ok": not bad_cold and bool(stores),
        }


@dataclass
class Streamed:
    """What a stream phase recorded: the paced run (send times), the HTTP cross-check, the worker's CPU."""

    run: PacedRun
    poller: VisibilityPoller
    http_ns: dict[int, int | None]
    worker_cpu: float  # CPUs busy over the phase
    worker_cpus_by_second: list[float]


@dataclass
class HistoryReads:
    """Timeline and ``?at=`` reads of the long sessions: their latency, and whether each was right."""

    timeline: dict[str, Any]
    at: dict[str, Any]
    timelines_check: dict[str, Any]
    at_check: dict[str, Any]


def timeline_paths(long: LongSessions) -> list[str]:
    """Each long session's whole timeline in one page."""
    return [f"/api/v1/sessions/{s}/events?limit={long.length}" for s in long.ids]


def history_reads(worker: WorkerProcess, long: LongSessions) -> HistoryReads:
    """One HTTP client (keep-alive), one request at a time. First the checks (not timed): every long
    session's timeline (``?limit=`` its length) whole and in order, its state ``?at=`` its middle at
    half its events; then each kind of read timed, cycling over the sessions, after a warm-up."""
    half = long.length // 2
    timelines = timeline_paths(long)
    at_paths = [f"/api/v1/sessions/{s}?at={long.middle[s]}" for s in long.ids]
    with history_client(worker) as client:
        bad_timelines = [s for s, p in zip(long.ids, timelines, strict=True) if
                         not timeline_ok(client.get(p), long.event_ids[s])]  # fmt: skip
        bad_at = [s for s, p in zip(long.ids, at_paths, strict=True) if not count_is(client.get(p), half)]
        timeline = timed_cycle(client, timelines, HISTORY_WARMUP_REQUESTS, HISTORY_REQUESTS)
        past = timed_cycle(client, at_paths, HISTORY_WARMUP_REQUESTS, HISTORY_REQUESTS)
    return HistoryReads(
        timeline,
        past,
        {
            "checked": len(long.ids),
            "events_each": long.length,
            "mismatched": bad_timelines[:5],
            "ok": not bad_timelines,
        },
        {"checked": len(long.ids), "event_count": half, "mismatched": bad_at[:5], "ok": not bad_at},
    )


def history_client(worker: WorkerProcess) -> httpx.Client:
    return httpx.Client(base_url=worker.url, headers=worker.service_headers, timeout=15.0)


def timeline_ok(response: httpx.Response, event_ids: list[str]) -> bool:
    """One page holding the whole timeline: exactly the events produced, in order, each with its changes."""
    if response.status_code != 200:
        return False
    body = orjson.loads(response.content)
    events = body.get("events", [])
    return (
        body.get("next") is None and [e.get("id") for e in events] == event_ids and all("changes" in e for e in events)
    )


def count_is(response: httpx.Response, count: int) -> bool:
    if response.status_code != 200:
        return False
    return bool(orjson.loads(response.content).get("meta", {}).get("eventCount") == count)


def timed_cycle(client: httpx.Client, paths: list[str], warmup: int, requests: int) -> dict[str, Any]:
    """``warmup`` then ``requests`` GETs cycling over ``paths``, one at a time; latency of the measured
    ones, from the request's start to its body read."""
    statuses: dict[str, int] = defaultdict(int)
    latencies: list[int] = []
    for index in range(warmup + requests):
        path = paths[index % len(paths)]
        began = time.perf_counter_ns()
        response = client.get(path)
        elapsed = time.perf_counter_ns() - began
        if index >= warmup:
            latencies.append(elapsed)
            statuses[str(response.status_code)] += 1
    seconds = sum(latencies) / 1e9
    return {
        **summarize_ms(latencies),
        "requests": len(latencies),
        "warmup_requests": warmup,
        "rate": round(len(latencies) / seconds, 1) if seconds else None,
        "statuses": dict(statuses),
    }
