"""The session engine's benchmark: `make bench` (or `.venv/bin/python ops/bench/run.py [--quick]`).

One worker process (``python -m streams worker``) against a throw-away local Kafka broker on a free
port, both on this machine, measured on:

- fold throughput: a pre-loaded topic, from the first fold to the last (changelog timestamps);
- event-to-visible latency at a fixed rate (2,000 events/s): each event's send time against the
  timestamp of the changelog record that made it visible, plus an HTTP polling cross-check;
- session reads: GET /api/v1/sessions/{id} at concurrency 32 against pre-folded sessions;
- rebuild from the log: the worker's data folder deleted, time until it is ready again;
- decode+validate of one page view (timeit).

Side by side on the same topic: the same fold as a Quix Streams app, as a plain faust agent, and
the raw ceiling (a bare confluent-kafka consumer that only decodes). Prints a table and writes
``var/bench.json`` (and the worker's fold profile, ``var/bench-profile.txt``). ops/bench/README.md
says how to read it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import timeit
import tomllib
import traceback
import uuid
from collections import defaultdict
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
VAR = REPO / "var"
QUIX_VENV = VAR / "bench" / "quix-venv"
if str(REPO) not in sys.path:
    sys.path.insert(1, str(REPO))

import orjson  # noqa: E402
from confluent_kafka import KafkaException  # noqa: E402
from kafka_io import (  # noqa: E402
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
)
from load import VisibilityPoller, percentile, summarize_ms  # noqa: E402
from machine import CpuMeter, facts, process_cpu_seconds  # noqa: E402
from procs import AUTHORIZATION, Peer, PySpy, Worker, http_get, pids, spawn, stop_all, tail, terminate  # noqa: E402
from pyspy import top_functions  # noqa: E402
from report import Row, Target, ratio_text, render, rows_json, short_text  # noqa: E402
from workload import Record, Workload, sample_page_view  # noqa: E402

from projections.rules import Rules, parse_rules  # noqa: E402
from projections.session import apply  # noqa: E402
from schemas.events import decode_event  # noqa: E402
from schemas.session import SessionState, decode_state, encode_state, encode_view  # noqa: E402
from streams.kafka import broker as local_broker  # noqa: E402

RULES_FILE = REPO / "ops" / "rules.sample.toml"

TARGET_FOLD = 50_000.0
TARGET_FOLD_VS_QUIX = 1.5
TARGET_E2V_P99_MS = 50.0
TARGET_READS = 5_000.0
TARGET_READS_P99_MS = 10.0
TARGET_REBUILD = 50_000.0


# --- requirements ---------------------------------------------------------------------------------


def _pins(path: Path) -> list[tuple[str, str]]:
    pins = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins.append((name.strip(), version.strip()))
    return pins


def ensure_requirements() -> None:
    """Install ops/bench/requirements.txt into this interpreter's environment when anything is missing."""
    requirements = HERE / "requirements.txt"
    missing = []
    for name, version in _pins(requirements):
        try:
            if metadata.version(name) != version:
                missing.append(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
    if missing:
        print(f"bench: installing {', '.join(missing)} (ops/bench/requirements.txt)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-r", str(requirements)], check=True)


def ensure_quix_venv() -> Path:
    """quixstreams pins confluent-kafka < 2.13 and the project pins 2.16.1: Quix gets a venv of its own."""
    requirements = HERE / "requirements-quix.txt"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:16]
    python = QUIX_VENV / "bin" / "python"
    stamp = QUIX_VENV / f".requirements-{digest}"
    if not stamp.exists():
        print(f"bench: preparing the Quix Streams venv in {QUIX_VENV.relative_to(REPO)}", file=sys.stderr)
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(QUIX_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(requirements)], check=True)
        for old in QUIX_VENV.glob(".requirements-*"):
            old.unlink()
        stamp.touch()
    return python


def py_spy_binary() -> Path | None:
    candidate = Path(sys.executable).parent / "py-spy"
    found = candidate if candidate.exists() else shutil.which("py-spy")
    return Path(found) if found else None


# --- configuration --------------------------------------------------------------------------------


@dataclass
class Config:
    events: int
    sessions: int
    rate: float
    latency_seconds: float
    latency_warmup: float
    read_seconds: float
    read_warmup: float
    concurrency: int
    partitions: int
    seed: int
    http_sample_every: int
    peers: list[str]
    profile: bool
    phase_timeout: float
    samples: int
    out: Path
    keep: bool
    quick: bool


def parse_args(argv: list[str] | None) -> Config:
    parser = argparse.ArgumentParser(
        description="Benchmark the session engine's worker against Quix Streams, plain faust and the raw ceiling.",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (~1-2 minutes): a smoke test")
    parser.add_argument("--events", type=int, help="events pre-loaded for the fold (default 200,000; quick 20,000)")
    parser.add_argument("--sessions", type=int, help="sessions they spread over (default 20,000; quick 2,000)")
    parser.add_argument("--rate", type=float, default=2000.0, help="events/s of the latency phase (default 2,000)")
    parser.add_argument("--latency-seconds", type=float, help="length of the latency phase (default 20; quick 5)")
    parser.add_argument(
        "--latency-warmup", type=float, help="first seconds of the latency phase left out (default 2; quick 1)"
    )
    parser.add_argument("--read-seconds", type=float, help="length of the read load (default 15; quick 4)")
    parser.add_argument("--read-warmup", type=float, help="unmeasured warm-up of the read load (default 2; quick 1)")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent readers (default 32)")
    parser.add_argument("--partitions", type=int, default=12, help="partitions of the event topic (default 12)")
    parser.add_argument("--seed", type=int, default=20261126, help="the workload's seed")
    parser.add_argument(
        "--http-sample-every", type=int, default=100, help="poll HTTP for every Nth latency event (0: off)"
    )
    parser.add_argument("--peers", default="raw,faust,quix", help="peers to run: raw,faust,quix (empty: none)")
    parser.add_argument("--no-profile", action="store_true", help="no py-spy profile of the worker's fold")
    parser.add_argument("--phase-timeout", type=float, help="bound on each fold/peer phase, s (default 300; quick 120)")
    parser.add_argument("--samples", type=int, default=50, help="sessions whose state is checked against the fold")
    parser.add_argument("--out", type=Path, default=VAR / "bench.json")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (broker data, logs)")
    args = parser.parse_args(argv)
    quick = args.quick

    def pick(value: Any, full: Any, small: Any) -> Any:
        return value if value is not None else (small if quick else full)

    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = set(peers) - {"raw", "faust", "quix"}
    if unknown:
        parser.error(f"unknown peers {sorted(unknown)}; known: raw, faust, quix")
    config = Config(
        events=pick(args.events, 200_000, 20_000),
        sessions=pick(args.sessions, 20_000, 2_000),
        rate=args.rate,
        latency_seconds=pick(args.latency_seconds, 20.0, 5.0),
        latency_warmup=pick(args.latency_warmup, 2.0, 1.0),
        read_seconds=pick(args.read_seconds, 15.0, 4.0),
        read_warmup=pick(args.read_warmup, 2.0, 1.0),
        concurrency=args.concurrency,
        partitions=args.partitions,
        seed=args.seed,
        http_sample_every=args.http_sample_every,
        peers=peers,
        profile=not args.no_profile,
        phase_timeout=pick(args.phase_timeout, 300.0, 120.0),
        samples=args.samples,
        out=args.out,
        keep=args.keep,
        quick=quick,
    )
    if config.events < 2 or config.sessions < 1 or config.rate <= 0 or config.concurrency < 1:
        parser.error("--events >= 2, --sessions >= 1, --rate > 0 and --concurrency >= 1")
    return config


# --- the bench ------------------------------------------------------------------------------------


def load_rules() -> Rules:
    return parse_rules(tomllib.loads(RULES_FILE.read_text()))


def expected_states(records: list[Record], sessions: set[str], rules: Rules) -> dict[str, SessionState]:
    states: dict[str, SessionState] = {}
    for record in records:
        if record.session in sessions:
            states[record.session] = apply(states.get(record.session), decode_event(record.value), rules)
    return states


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


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
        self.rules = load_rules()
        self.results: dict[str, Any] = {}
        self.checks: dict[str, Any] = {}
        self.errors: dict[str, str] = {}
        self.cpu: dict[str, dict[str, float]] = {}
        self.quix_python: Path | None = None
        self.worker: Worker | None = None
        self.changelog = ""
        self.profile_top: dict[str, Any] | None = None

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

    def new_worker(self) -> Worker:
        return Worker(
            bootstrap=self.bootstrap,
            app_id=self.app_id,
            topic=self.topic,
            data_dir=self.scratch / "worker-data",
            port=local_broker.free_port(),
            log_path=self.logs / "worker.log",
            partitions=self.config.partitions,
            rules_file=RULES_FILE,
        )

    def check_served(self, worker: Worker, expected: dict[str, SessionState]) -> dict[str, Any]:
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

    # -- phases --

    def setup(self) -> None:
        cfg = self.config
        self.bootstrap = local_broker.start(self.broker_dir, local_broker.free_port(), quiet=True)
        log(f"broker {local_broker.kafka_version()} at {self.bootstrap} (data {self.broker_dir})")
        workload = Workload(cfg.seed, cfg.sessions)
        self.fold_records = workload.take(cfg.events)
        self.counts_a = dict(workload.touched())
        self.latency_records = workload.take(max(1, int(cfg.rate * (cfg.latency_warmup + cfg.latency_seconds))))
        self.counts_b = dict(workload.touched())
        rng = random.Random(cfg.seed)
        self.sample_ids = sorted(rng.sample(sorted(self.counts_a), min(cfg.samples, len(self.counts_a))))
        self.samples_file = self.scratch / "samples.txt"
        self.samples_file.write_text("\n".join(self.sample_ids) + "\n")
        self.expected_a = expected_states(self.fold_records, set(self.sample_ids), self.rules)
        self.expected_b = expected_states([*self.fold_records, *self.latency_records], set(self.sample_ids), self.rules)
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
        subset = self.fold_records[: min(len(self.fold_records), 50_000)]
        store: dict[bytes, bytes] = {}
        rules = self.rules
        began = time.perf_counter()
        for record in subset:
            event = decode_event(record.value)
            previous = store.get(record.key)
            state = apply(decode_state(previous) if previous is not None else None, event, rules)
            store[record.key] = encode_state(state)
        seconds = time.perf_counter() - began
        self.results["micro"] = {
            "decode_page_view_us": round(decode_us, 3),
            "decode_page_view_bytes": len(raw),
            "pure_fold_events": len(subset),
            "pure_fold_us_per_event": round(seconds / len(subset) * 1e6, 2),
            "pure_fold_rate": round(len(subset) / seconds),
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
            str(RULES_FILE),
            "--samples",
            "" if name == "raw" else str(self.samples_file),
            "--result",
            str(result_path),
            "--timeout",
            str(cfg.phase_timeout + 60),
        ]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
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
        worker = self.worker = self.new_worker()
        meter = self.meter()
        worker.start()
        ready_s = worker.wait_ready(120.0)
        spy = None
        binary = py_spy_binary()
        profile_path = VAR / "bench-profile.txt"
        if cfg.profile and binary is not None and worker.proc is not None:
            profile_path.unlink(missing_ok=True)
            spy = PySpy(binary, worker.proc.pid, profile_path, self.logs / "py-spy.log")
        changelog = f"{self.app_id}-sessions-changelog"
        deadline = time.monotonic() + cfg.phase_timeout
        finished = False
        while time.monotonic() < deadline:
            try:
                # One changelog record per folded event: the profile stops with the last fold, not
                # with the commit a few seconds later (a worker that writes fewer records stops it there).
                if spy is not None and record_count(self.bootstrap, changelog) >= len(self.fold_records):
                    self.stop_profile(spy, profile_path)
                    spy = None
                if committed_lag(self.bootstrap, self.app_id, self.topic) == 0:
                    finished = True
                    break
            except (KafkaException, RuntimeError):
                pass  # the changelog topic or the group is not there yet
            time.sleep(0.5)
        if spy is not None:
            self.stop_profile(spy, profile_path)
        self.metered("worker-fold", meter)
        self.changelog = changelog_topic(self.bootstrap, self.app_id)
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
        seconds = (done_ms - first_ms) / 1000 if done_ms > first_ms else 0.0
        folded = sum(min(seen.get(s, 0), c) for s, c in self.counts_a.items())
        self.results["worker_fold"] = {
            "events": len(self.fold_records),
            "finished": finished and not unfinished,
            "events_folded": folded,
            "sessions_unfinished": len(unfinished),
            "changelog_records": len(records),
            "start_to_ready_seconds": round(ready_s, 2),
            "first_fold_to_last_seconds": round(seconds, 3),
            "start_to_last_fold_seconds": round(done_ms / 1000 - worker.started_ns / 1e9, 2) if done_ms else None,
            "rate": round((folded - 1) / seconds) if seconds > 0 else None,
            "profiled": self.profile_top is not None,
        }
        if unfinished:
            raise RuntimeError(
                f"{len(unfinished)} sessions not folded to their last event within {cfg.phase_timeout:.0f}s "
                f"({folded} of {len(self.fold_records)} events)"
            )
        self.checks["worker_states_after_fold"] = self.check_served(worker, self.expected_a)
        self.checks["dead_letters"] = record_count(self.bootstrap, f"{self.topic}.dlq")
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
        self.worker.start()
        self.results["worker_warm_restart_seconds"] = round(self.worker.wait_ready(120.0), 2)
        self.metered("worker-warm-restart", meter)

    def reads(self) -> None:
        cfg = self.config
        assert self.worker is not None
        ids_file = self.scratch / "read-ids.txt"
        ids_file.write_text("\n".join(sorted(self.counts_a)) + "\n")
        out = self.scratch / "reads.json"
        meter = self.meter()
        proc = spawn(
            [
                sys.executable,
                str(HERE / "load.py"),
                "reads",
                "--port",
                str(self.worker.port),
                "--ids",
                str(ids_file),
                "--concurrency",
                str(cfg.concurrency),
                "--seconds",
                str(cfg.read_seconds),
                "--warmup",
                str(cfg.read_warmup),
                "--seed",
                str(cfg.seed),
                "--authorization",
                AUTHORIZATION,
                "--out",
                str(out),
            ],
            self.logs / "reads.log",
        )
        try:
            code = proc.wait(cfg.read_seconds + cfg.read_warmup + 60)
        except subprocess.TimeoutExpired:
            terminate(proc)
            raise TimeoutError("the read load did not end in time") from None
        finally:
            self.metered("reads", meter)
        if code != 0 or not out.exists():
            raise RuntimeError(f"the read load failed ({code}):\n{tail(self.logs / 'reads.log')}")
        self.results["reads"] = json.loads(out.read_text())

    def latency(self) -> None:
        cfg = self.config
        worker = self.worker
        assert worker is not None
        start_offsets = {p: high for p, (_, high) in end_offsets(self.bootstrap, self.changelog).items()}
        run = PacedRun(self.latency_records, cfg.rate)
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

        meter = self.meter()
        worker_pid = worker.proc.pid if worker.proc is not None else 0
        worker_cpu0, wall0 = process_cpu_seconds(worker_pid), time.monotonic()
        gc.disable()
        try:
            poller = asyncio.run(drive())
        finally:
            gc.enable()
            self.metered("latency", meter)
        worker_cpu = (process_cpu_seconds(worker_pid) - worker_cpu0) / (time.monotonic() - wall0)
        caught_up = wait_for_commits(self.bootstrap, self.app_id, self.topic, time.monotonic() + 60)
        changes = read_changelog(self.bootstrap, self.changelog, start=start_offsets)
        pending: dict[str, list[int]] = defaultdict(list)
        for index, record in enumerate(run.records[: len(run.sent_ns)]):
            pending[record.session].append(index)
        by_index: dict[int, float] = {}
        for change in changes:
            if change.count is None:
                continue
            queue = pending.get(change.key.decode())
            while queue and run.records[queue[0]].count <= change.count:
                index = queue.pop(0)
                by_index[index] = change.timestamp_ms - run.sent_ns[index] / 1e6
        not_visible = sum(len(q) for q in pending.values())
        sent = len(run.sent_ns)
        warm = min(sent, int(cfg.rate * cfg.latency_warmup))
        measured = {i: v for i, v in by_index.items() if i >= warm}
        tenth = max(1, (sent - warm) // 10)
        http_measured = {i: v for i, v in http_ns.items() if i >= warm}
        http_values = [v for v in http_measured.values() if v is not None]
        http_skipped = sum(1 for i in http_measured if i in poller.skipped_indices)
        self.results["latency"] = {
            "rate_target": cfg.rate,
            "events": sent,
            "warmup_events": warm,
            "seconds": round(run.seconds, 2),
            "achieved_rate": round(run.achieved_rate, 1),
            "late_ticks": run.late_ticks,
            "produce_failures": run.failed,
            "worker_caught_up": caught_up,
            "worker_cpus_busy": round(worker_cpu, 2),
            "not_visible": not_visible,
            # Percentiles over the events after the warm-up; the warm-up's own below.
            "changelog": summarize_ms([int(v * 1e6) for v in measured.values()]),
            "changelog_warmup": summarize_ms([int(v * 1e6) for i, v in by_index.items() if i < warm]),
            # A backlog shows as latency growing through the phase: the worker is not keeping up.
            "changelog_p50_ms_by_second": [
                percentile([v for i, v in by_index.items() if second <= i / cfg.rate < second + 1], 50)
                for second in range(math.ceil(sent / cfg.rate))
            ],
            "changelog_first_tenth_p50_ms": percentile([v for i, v in measured.items() if i < warm + tenth], 50),
            "changelog_last_tenth_p50_ms": percentile([v for i, v in measured.items() if i >= sent - tenth], 50),
            "http_samples": len(http_measured) - http_skipped,
            "http_skipped_busy": http_skipped,
            "http_not_visible": len(http_measured) - http_skipped - len(http_values),
            "http_polls": poller.polls,
            "http_errors": poller.errors,
            "http": summarize_ms(http_values),
        }

    def rebuild(self) -> None:
        cfg = self.config
        worker = self.worker
        assert worker is not None
        worker.stop()
        changelog_records = record_count(self.bootstrap, self.changelog)
        events = sum(self.counts_b.values())
        shutil.rmtree(worker.data_dir)
        meter = self.meter()
        worker.start()
        seconds = worker.wait_ready(cfg.phase_timeout)
        self.metered("rebuild", meter)
        cold = self.results.get("worker_fold", {}).get("start_to_ready_seconds")
        net = seconds - cold if cold is not None and seconds > cold else None
        self.results["rebuild"] = {
            "changelog_records": changelog_records,
            "events": events,
            "sessions": len(self.counts_b),
            "start_to_ready_seconds": round(seconds, 2),
            "rate": round(events / seconds),
            "records_rate": round(changelog_records / seconds),
            "net_of_cold_start_seconds": round(net, 2) if net else None,
            "net_rate": round(events / net) if net else None,
        }
        self.checks["worker_states_after_rebuild"] = self.check_served(worker, self.expected_b)
        worker.stop()

    # -- the whole run --

    def run(self) -> int:
        cfg = self.config
        log(f"run {self.run_id}: {cfg.events:,} events over {cfg.sessions:,} sessions, scratch {self.scratch}")
        if "quix" in cfg.peers:
            self.quix_python = self.phase("quix venv", ensure_quix_venv)
        self.results["machine"] = facts(local_broker.kafka_version(), self.quix_python)
        self.phase("setup (broker, workload, produce)", self.setup)
        if self.errors.get("setup (broker, workload, produce)"):
            return self.finish()
        self.phase("micro-benchmarks", self.micro)
        if "raw" in cfg.peers:
            self.phase("peer: raw decode ceiling", self.run_peer, "raw")
        self.phase("worker fold", self.worker_fold)
        fold_ok = "worker fold" not in self.errors
        if self.worker is not None and self.worker.proc is not None:
            self.worker.stop()
        if "faust" in cfg.peers:
            self.phase("peer: plain faust agent", self.run_peer, "faust")
        if "quix" in cfg.peers and self.quix_python is not None:
            self.phase("peer: Quix Streams", self.run_peer, "quix")
        if fold_ok:
            self.phase("worker warm restart", self.worker_restart)
            if "worker warm restart" not in self.errors:
                self.phase("reads", self.reads)
                self.phase("event-to-visible latency", self.latency)
                self.phase("rebuild from the changelog", self.rebuild)
        else:
            for name in ("reads", "event-to-visible latency", "rebuild from the changelog"):
                self.errors[name] = "skipped: the worker did not fold the pre-loaded topic"
        return self.finish()

    def finish(self) -> int:
        sections = self.rows()
        notes = self.notes()
        title = (
            f"session-engine bench {self.run_id}{' (quick)' if self.config.quick else ''}: "
            f"{self.config.events:,} events / {self.config.sessions:,} sessions, "
            f"{self.results.get('machine', {}).get('nproc')} CPUs ({self.results.get('machine', {}).get('cpu_model')})"
        )
        text = render(title, sections, notes)
        document = {
            "run_id": self.run_id,
            "quick": self.config.quick,
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(self.config).items()},
            "figures": rows_json(sections),
            "results": self.results,
            "checks": self.checks,
            "cpu_by_phase": self.cpu,
            "profile": self.profile_top,
            "errors": self.errors,
        }
        self.config.out.parent.mkdir(parents=True, exist_ok=True)
        self.config.out.write_text(json.dumps(document, indent=2, default=str))
        print(text)
        if self.profile_top and self.profile_top.get("samples"):
            print(f"\nworker fold profile ({self.profile_top['samples']} samples, var/bench-profile.txt), top 10 self:")
            for item in self.profile_top["self"]:
                print(f"  {item['share']:6.1%}  {item['function']}")
            print("by area (innermost frame that names one):")
            for item in self.profile_top["areas"]:
                print(f"  {item['share']:6.1%}  {item['area']}")
        print(f"\nJSON: {self.config.out}")
        return 1 if self.errors else 0

    def rows(self) -> list[tuple[str, list[Row]]]:
        r = self.results
        fold = r.get("worker_fold", {})
        quix = r.get("peer_quix", {}).get("rate")
        plain = r.get("peer_faust", {}).get("rate")
        raw = r.get("peer_raw", {}).get("rate")
        fold_rate = fold.get("rate") if fold.get("finished") else None
        peers = {"Quix": quix, "faust-plain": plain, "raw ceiling": raw}
        lat = r.get("latency", {})
        reads = r.get("reads", {})
        rebuild = r.get("rebuild", {})
        micro = r.get("micro", {})
        rate_text = f"{self.config.rate:,.0f} ev/s"
        worker_rows = [
            Row(
                "fold_rate",
                "fold throughput",
                fold_rate,
                "ev/s",
                Target(">=", TARGET_FOLD),
                ratio_text(fold_rate, peers),
                self.errors.get("worker fold", ""),
            ),
            Row(
                "fold_vs_quix",
                "fold throughput / Quix",
                fold_rate / quix if fold_rate and quix else None,
                "x",
                Target(">=", TARGET_FOLD_VS_QUIX),
                note=self.errors.get("peer: Quix Streams", "") or ("Quix not run" if not quix else ""),
            ),
            Row("e2v_p50", f"event-to-visible p50 @ {rate_text}", lat.get("changelog", {}).get("p50_ms"), "ms"),
            Row(
                "e2v_p99",
                f"event-to-visible p99 @ {rate_text}",
                lat.get("changelog", {}).get("p99_ms"),
                "ms",
                Target("<", TARGET_E2V_P99_MS),
                note=self.errors.get("event-to-visible latency", ""),
            ),
            Row("e2v_http_p50", "  same, HTTP poll sample p50", lat.get("http", {}).get("p50_ms"), "ms"),
            Row(
                "e2v_http_p99",
                "  same, HTTP poll sample p99",
                lat.get("http", {}).get("p99_ms"),
                "ms",
                Target("<", TARGET_E2V_P99_MS),
                note=self.errors.get("event-to-visible latency", ""),
            ),
            Row("e2v_rate", "  rate achieved in that phase", lat.get("achieved_rate"), "ev/s"),
            Row(
                "reads_rate",
                f"session reads @ concurrency {self.config.concurrency}",
                reads.get("rate"),
                "req/s",
                Target(">=", TARGET_READS),
                note=self.errors.get("reads", ""),
            ),
            Row("reads_p50", "  reads p50", reads.get("p50_ms"), "ms"),
            Row(
                "reads_p99",
                "  reads p99",
                reads.get("p99_ms"),
                "ms",
                Target("<", TARGET_READS_P99_MS),
                note=self.errors.get("reads", ""),
            ),
            Row(
                "rebuild_rate",
                "rebuild from the changelog",
                rebuild.get("rate"),
                "ev/s",
                Target(">=", TARGET_REBUILD),
                note=self.errors.get("rebuild from the changelog", ""),
            ),
            Row("rebuild_seconds", "  rebuild: start to ready", rebuild.get("start_to_ready_seconds"), "s"),
            Row("rebuild_net_rate", "  rebuild net of a cold start", rebuild.get("net_rate"), "ev/s"),
            Row("decode_us", "decode+validate one page view", micro.get("decode_page_view_us"), "µs"),
            Row("cold_start", "worker start to ready (empty table)", fold.get("start_to_ready_seconds"), "s"),
            Row("warm_restart", "worker restart to ready (local state)", r.get("worker_warm_restart_seconds"), "s"),
        ]
        peer_rows = [
            Row(
                "quix_rate",
                "Quix Streams fold",
                quix,
                "ev/s",
                note=self.errors.get("peer: Quix Streams", ""),
            ),
            Row(
                "faust_plain_rate",
                "plain faust agent fold",
                plain,
                "ev/s",
                note=self.errors.get("peer: plain faust agent", ""),
            ),
            Row("raw_rate", "raw ceiling: consume + decode only", raw, "ev/s"),
            Row("pure_fold_rate", "pure fold in memory (no Kafka, dict)", micro.get("pure_fold_rate"), "ev/s"),
            Row(
                "producer_rate", "bulk producer (loading the topic)", r.get("workload", {}).get("producer_rate"), "ev/s"
            ),
        ]
        for row in peer_rows:
            if row.value is not None and row.key not in {"pure_fold_rate", "producer_rate"} and fold_rate:
                row.peers = f"worker = {fold_rate / row.value:.2f}x"
        return [("worker", worker_rows), ("peers and ceilings, same topic", peer_rows)]

    def notes(self) -> list[str]:
        notes = []
        for name, check in self.checks.items():
            if isinstance(check, dict) and not check.get("ok", True):
                notes.append(f"CHECK FAILED {name}: {check}")
        if self.checks.get("dead_letters"):
            notes.append(f"CHECK FAILED: {self.checks['dead_letters']} records went to the dead-letter topic")
        lat = self.results.get("latency", {})
        if lat.get("not_visible"):
            notes.append(f"latency: {lat['not_visible']} events never became visible in the changelog")
        first, last = lat.get("changelog_first_tenth_p50_ms"), lat.get("changelog_last_tenth_p50_ms")
        p50 = lat.get("changelog", {}).get("p50_ms")
        series = ", ".join("—" if v is None else f"{v:,.0f}" for v in lat.get("changelog_p50_ms_by_second", []))
        if first is not None and last is not None and last > max(100.0, 3 * first):
            notes.append(
                f"latency: the worker did not keep up with {self.config.rate:,.0f} ev/s: p50 grew from {first:,.0f} ms "
                f"(first tenth of the events) to {last:,.0f} ms (last tenth): the figures measure its backlog"
            )
        elif p50 is not None and p50 > 100.0:
            busy = lat.get("worker_cpus_busy", 0.0)
            why = (
                "it is CPU-bound at this rate (a backlog)"
                if busy >= 0.9
                else "it is not CPU-bound, so events wait in a buffer or a periodic stall, not for the fold"
            )
            notes.append(
                f"latency: a p50 of {p50:,.0f} ms is time events wait inside the worker; it used {busy:.2f} CPU "
                f"during the phase: {why}"
            )
        if series:
            notes.append(f"latency: p50 per second of the phase, warm-up included (ms): {series}")
        if lat and lat.get("achieved_rate", 0) < 0.95 * self.config.rate:
            notes.append(f"latency: the producer reached only {lat['achieved_rate']:,.0f} ev/s")
        reads = self.results.get("reads", {})
        if reads and reads.get("client_cpu_share", 0) > 0.85:
            notes.append(
                f"reads: the load client used {reads['client_cpu_share']:.0%} of a CPU: the figure may be client-bound"
            )
        if reads and set(reads.get("statuses", {})) - {"200"}:
            notes.append(f"reads: non-200 answers {reads['statuses']}")
        for phase, cpu in self.cpu.items():
            if cpu.get("foreign_cpus_busy", 0) > 0.25:
                notes.append(
                    f"noise: during {phase} other processes kept {cpu['foreign_cpus_busy']:.2f} CPUs busy "
                    f"(of {os.cpu_count()}): figures of that phase are pessimistic"
                )
        for name, error in self.errors.items():
            notes.append(f"ERROR {name}: {short_text(error, 160)}")
        if self.config.quick:
            notes.append("quick mode: sizes too small for figures to mean much; use `make bench` for them")
        return notes

    def cleanup(self) -> None:
        stop_all()
        try:
            local_broker.stop(self.broker_dir, quiet=True)
        finally:
            logs = VAR / "bench" / "logs"
            shutil.rmtree(logs, ignore_errors=True)
            shutil.copytree(self.logs, logs, dirs_exist_ok=True)
            if self.config.keep:
                log(f"scratch kept: {self.scratch}")
            else:
                shutil.rmtree(self.scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    VAR.mkdir(exist_ok=True)
    ensure_requirements()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    bench = Bench(config)
    try:
        return bench.run()
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        bench.cleanup()


if __name__ == "__main__":
    sys.exit(main())
