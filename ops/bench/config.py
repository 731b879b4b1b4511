"""The bench's configuration: paths, targets (issue 8's and issue 9's figures), command-line options, its environments.

The bench's own packages (py-spy) come from the project's optional dependency group ``bench``
(in requirements/dev.lock: ``make install`` installs it). The Quix Streams peer gets a venv of its
own, made here: quixstreams 3.28 pins confluent-kafka < 2.13, the project 2.16.1.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.devkit.paths import REPO

HERE = Path(__file__).resolve().parent
VAR = REPO / "var"
QUIX_VENV = VAR / "bench" / "quix-venv"
# Issue 8, "Figures": throughput as ratios to peers measured in the same run.
TARGET_FOLD_VS_QUIX = 2.0  # fold of the pre-loaded topic, x the Quix Streams peer
TARGET_FOLD_VS_RAW = 0.4  # ... x the raw decode-only ceiling
TARGET_REBUILD_VS_RAW = 1.0  # changelog records restored/s net of process start, x the raw ceiling's rate
TARGET_E2V_P99_MS = 50.0  # event-to-visible p99 at 2,000 events/s
TARGET_READS_P99_MS = 15.0  # session reads at concurrency 32 while the stream runs
# Issue 24: the worker's reads at concurrency 32, x the serving ceiling's (peers/serve_ceiling.py) in
# the same run, with the stream and without; event-to-visible with open-loop reads at half the
# worker's measured read capacity, the restart's first seconds included (TARGET_E2V_P99_MS).
TARGET_READS_VS_CEILING = 0.7
OPEN_LOOP_SHARE = 0.5
TARGET_RSS_MB = 500.0  # worker RSS after folding 1,000,000 sessions
# Issue 9 (history), on the RSS phase's topic of at least 1,000,000 events.
TARGET_TIMELINE_P99_MS = 50.0  # GET .../events?limit=100 and GET ...?at= of a 100-event session, p99
TARGET_EXPORT_VS_RAW = 0.5  # export of the pre-loaded topic to Parquet, events/s x the raw ceiling's rate
# The history phase's long sessions, interleaved evenly through the RSS phase's topic.
LONG_SESSIONS = 50
LONG_SESSION_EVENTS = 100
HISTORY_WARMUP_REQUESTS = 50  # per kind of read, left out of the figures
HISTORY_REQUESTS = 300  # per kind of read, measured (one client, keep-alive, cycling over the sessions)
# Issue 24, "Cost at scale" (--scale): at SCALE_EVENTS events over SCALE_SESSIONS sessions, the fold,
# restore, export and rebuild rates x the same rates at the default size (--events), same run; the
# old sessions' timeline and ?at= p99 (TARGET_TIMELINE_P99_MS) and the worker's RSS (TARGET_RSS_MB).
SCALE_EVENTS = 10_000_000
SCALE_SESSIONS = 1_000_000
TARGET_SCALE_VS_DEFAULT = 0.8
# The long (history) sessions of a scale topic sit among its first records: old sessions.
SCALE_OLD_RECORDS = 100_000
# A bound on each scale phase that grows with the topic: no phase may take longer than at this rate.
SCALE_SLOWEST_RATE = 2_000.0
# The pure fold with the loop's batching: records per partition per batch (SESSIONS_FOLD_BATCH_MAX).
PURE_BATCH = 5000

PEERS = ("raw", "quix", "faust")


@dataclass
class Config:
    events: int
    sessions: int
    rate: float
    latency_seconds: float
    latency_warmup: float
    concurrency: int
    reads_seconds: float
    partitions: int
    seed: int
    http_sample_every: int
    peers: list[str]
    profile: bool
    phase_timeout: float
    samples: int
    rss_sessions: int
    out: Path
    keep: bool
    quick: bool
    scale: bool = False
    scale_events: int = SCALE_EVENTS
    scale_sessions: int = SCALE_SESSIONS


def parse_args(argv: list[str] | None) -> Config:
    parser = argparse.ArgumentParser(
        description="Benchmark the session engine's worker against Quix Streams and the raw decode ceiling.",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (~1 minute): a smoke test")
    parser.add_argument("--events", type=int, help="events pre-loaded for the fold (default 200,000; quick 20,000)")
    parser.add_argument("--sessions", type=int, help="sessions they spread over (default 20,000; quick 2,000)")
    parser.add_argument("--rate", type=float, default=2000.0, help="events/s of the stream phase (default 2,000)")
    parser.add_argument(
        "--latency-seconds", type=float, help="measured length of the stream + reads phase (default 20; quick 5)"
    )
    parser.add_argument(
        "--latency-warmup", type=float, help="first seconds of the stream + reads phase left out (default 2; quick 1)"
    )
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent readers (default 32)")
    parser.add_argument(
        "--reads-seconds",
        type=float,
        help="measured length of the closed-loop read phases without the stream (worker, ceiling; default 10; quick 3)",
    )
    parser.add_argument("--partitions", type=int, default=12, help="partitions of the event topic (default 12)")
    parser.add_argument("--seed", type=int, default=20261126, help="the workload's seed")
    parser.add_argument(
        "--http-sample-every", type=int, default=100, help="poll HTTP for every Nth stream event (0: off)"
    )
    parser.add_argument(
        "--peers", default="raw,quix", help="peers to run: raw,quix,faust (default raw,quix; empty: none)"
    )
    parser.add_argument("--no-profile", action="store_true", help="no py-spy profile of the worker's fold")
    parser.add_argument("--phase-timeout", type=float, help="bound on each fold/peer phase, s (default 300; quick 120)")
    parser.add_argument("--samples", type=int, default=50, help="sessions whose state is checked against the fold")
    parser.add_argument(
        "--rss-sessions",
        type=int,
        help="sessions (one event each) of the RSS and history phases (default 1,000,000; quick 20,000; 0 = both "
        "skipped)",
    )
    parser.add_argument(
        "--scale",
        action="store_true",
        help="issue 24's cost at scale instead of the default run: a --scale-events topic beside one of --events, "
        "fold, restore, export and rebuild rates as ratios, old sessions' history reads, RSS, disk (~30 min)",
    )
    parser.add_argument(
        "--scale-events", type=int, default=SCALE_EVENTS, help=f"events of the scale topic (default {SCALE_EVENTS:,})"
    )
    parser.add_argument(
        "--scale-sessions",
        type=int,
        default=SCALE_SESSIONS,
        help=f"sessions they spread over (default {SCALE_SESSIONS:,})",
    )
    parser.add_argument("--out", type=Path, default=VAR / "bench.json")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (broker data, logs)")
    args = parser.parse_args(argv)
    quick = args.quick

    def pick(value: Any, full: Any, small: Any) -> Any:
        return value if value is not None else (small if quick else full)

    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = set(peers) - set(PEERS)
    if unknown:
        parser.error(f"unknown peers {sorted(unknown)}; known: {', '.join(PEERS)}")
    config = Config(
        events=pick(args.events, 200_000, 20_000),
        sessions=pick(args.sessions, 20_000, 2_000),
        rate=args.rate,
        latency_seconds=pick(args.latency_seconds, 20.0, 5.0),
        latency_warmup=pick(args.latency_warmup, 2.0, 1.0),
        concurrency=args.concurrency,
        reads_seconds=pick(args.reads_seconds, 10.0, 3.0),
        partitions=args.partitions,
        seed=args.seed,
        http_sample_every=args.http_sample_every,
        peers=peers,
        profile=not args.no_profile,
        phase_timeout=pick(args.phase_timeout, 300.0, 120.0),
        samples=args.samples,
        rss_sessions=pick(args.rss_sessions, 1_000_000, 20_000),
        out=args.out,
        keep=args.keep,
        quick=quick,
        scale=args.scale,
        scale_events=args.scale_events,
        scale_sessions=args.scale_sessions,
    )
    if config.events < 2 or config.sessions < 1 or config.rate <= 0 or config.concurrency < 1:
        parser.error("--events >= 2, --sessions >= 1, --rate > 0 and --concurrency >= 1")
    if config.rss_sessions < 0:
        parser.error("--rss-sessions >= 0")
    if config.scale:
        # Each topic holds the long sessions' events besides at least as many of its own.
        least = 2 * LONG_SESSIONS * LONG_SESSION_EVENTS
        if (
            min(config.events, config.scale_events) < least
            or min(config.sessions, config.scale_sessions) <= LONG_SESSIONS
        ):
            parser.error(f"--scale needs --events and --scale-events >= {least:,}, sessions > {LONG_SESSIONS}")
    return config


def ensure_quix_venv() -> Path:
    """quixstreams pins confluent-kafka < 2.13 and the project pins 2.16.1: Quix gets a venv of its own."""
    # The lock of requirements-quix.txt (`make lock`, ops/lock.py): every version pinned, every file hashed.
    requirements = HERE / "requirements-quix.lock"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:16]
    python = QUIX_VENV / "bin" / "python"
    stamp = QUIX_VENV / f".requirements-{digest}"
    if not stamp.exists():
        print(f"bench: preparing the Quix Streams venv in {QUIX_VENV.relative_to(REPO)}", file=sys.stderr)
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(QUIX_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--require-hashes", "--no-deps", "-r", str(requirements)],
            check=True,
        )
        for old in QUIX_VENV.glob(".requirements-*"):
            old.unlink()
        stamp.touch()
    return python


def py_spy_binary() -> Path | None:
    """py-spy from the ``bench`` dependency group (requirements/dev.lock), or on PATH."""
    candidate = Path(sys.executable).parent / "py-spy"
    found = candidate if candidate.exists() else shutil.which("py-spy")
    return Path(found) if found else None
