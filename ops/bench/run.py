"""The session engine's benchmark: `make bench` (or `.venv/bin/python ops/bench/run.py [--quick]`).

One worker process (``python -m streams worker``) against a throw-away local Kafka broker on a free
port, both on this machine, measured on issue 8's figures: the fold of a pre-loaded topic as ratios
to Quix Streams and to the raw decode ceiling (same run), with the pure fold beside it; the rebuild
of a lost data folder; event-to-visible latency at 2,000 events/s with session reads at
concurrency 32 running at the same time; (issue 24) the worker's reads as a ratio to a serving
ceiling on the same store, and event-to-visible with open-loop reads at half the worker's read
capacity from its restart on; the worker's RSS after folding 1,000,000 sessions. And
issue 9's history figures: the export of the pre-loaded topic to Parquet (ratio to the raw
ceiling), a 100-event session's timeline and ``?at=`` read on the RSS phase's 1,000,000-event
topic, warm and with the history store deleted.

The modules: ``config`` (options, targets, environments), ``phases`` (what runs), ``report`` (the
table), ``kafka_io``/``procs``/``load``/``workload``/``machine``/``pyspy`` (plumbing). Prints the
table and writes ``var/bench.json`` (and the worker's fold profile, ``var/bench-profile.txt``).
ops/bench/README.md says how to read it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

from config import VAR, ensure_quix_venv, parse_args
from machine import facts
from phases import Bench, log
from procs import stop_all
from report import notes, render, rows_json, scale_notes, scale_section, scale_title, sections
from scale import run_scale
from scaleout import scale_out

from streams.devkit import broker as local_broker


def run(bench: Bench) -> int:
    cfg = bench.config
    log(f"run {bench.run_id}: {cfg.events:,} events over {cfg.sessions:,} sessions, scratch {bench.scratch}")
    if "quix" in cfg.peers:
        bench.quix_python = bench.phase("quix venv", ensure_quix_venv)
    bench.results["machine"] = facts(local_broker.kafka_version(), bench.quix_python)
    bench.phase("setup (broker, workload, produce)", bench.setup)
    if bench.errors.get("setup (broker, workload, produce)"):
        return finish(bench)
    bench.phase("micro-benchmarks", bench.micro)
    if "raw" in cfg.peers:
        bench.phase("peer: raw decode ceiling", bench.run_peer, "raw")
    bench.phase("export to Parquet", bench.export)
    bench.phase("worker fold", bench.worker_fold)
    fold_ok = "worker fold" not in bench.errors
    if bench.worker is not None and bench.worker.process is not None:
        bench.worker.stop()
    if "faust" in cfg.peers:
        bench.phase("peer: plain faust agent", bench.run_peer, "faust")
    if "quix" in cfg.peers and bench.quix_python is not None:
        bench.phase("peer: Quix Streams", bench.run_peer, "quix")
    if fold_ok:
        # The worker is stopped: the ceiling serves its stores as the fold left them.
        bench.phase("peer: serving ceiling", bench.serving_ceiling)
        bench.phase("worker warm restart", bench.worker_restart)
        if "worker warm restart" not in bench.errors:
            bench.phase("worker reads", bench.worker_reads)
            bench.phase("stream + reads", bench.stream_and_reads)
            bench.phase("stream + open-loop reads", bench.stream_open_loop)
            bench.phase("rebuild from the changelog", bench.rebuild)
            bench.phase("rebuild into a new generation", bench.rebuild_generation)
            bench.phase("scale-out", scale_out, bench)
    else:
        for name in ("stream + reads", "stream + open-loop reads", "rebuild from the changelog"):
            bench.errors[name] = "skipped: the worker did not fold the pre-loaded topic"
    if bench.worker is not None and bench.worker.process is not None:
        bench.worker.stop()
    if cfg.rss_sessions:
        bench.phase("worker RSS", bench.rss)
        if "worker RSS" not in bench.errors:
            bench.phase("history", bench.history)
        else:
            bench.errors["history"] = "skipped: the RSS phase's worker did not fold its topic"
    return finish(bench)


def run_scale_mode(bench: Bench) -> int:
    """``--scale``: issue 24's cost at scale (scale.py) instead of the default run."""
    cfg = bench.config
    log(
        f"run {bench.run_id} --scale: {cfg.scale_events:,} events over {cfg.scale_sessions:,} sessions, beside "
        f"{cfg.events:,} over {cfg.sessions:,}, scratch {bench.scratch}"
    )
    bench.results["machine"] = facts(local_broker.kafka_version(), None)
    bench.phase("scale", run_scale, bench)
    return finish(bench)


def finish(bench: Bench) -> int:
    cfg = bench.config
    machine = bench.results.get("machine", {})
    where = (
        f"{machine.get('nproc')} CPUs ({machine.get('cpu_model')}), commit {machine.get('git_commit', '?')}, "
        f"the fold {machine.get('fold_build', '?')}"
    )
    if cfg.scale:
        scale = bench.results.get("scale", {})
        table = [("cost at scale (issue 24)", scale_section(scale))]
        title = f"session-engine bench {bench.run_id} {scale_title(scale, cfg.quick)}, {where}"
        lines = scale_notes(scale, bench.checks, bench.errors, bench.cpu, os.cpu_count())
    else:
        table = sections(bench.results, bench.errors, cfg)
        title = (
            f"session-engine bench {bench.run_id}{' (quick)' if cfg.quick else ''}: "
            f"{cfg.events:,} events / {cfg.sessions:,} sessions, {where}"
        )
        lines = notes(bench.results, bench.checks, bench.errors, bench.cpu, cfg, os.cpu_count())
    text = render(title, table, lines)
    document = {
        "run_id": bench.run_id,
        "quick": cfg.quick,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(cfg).items()},
        "figures": rows_json(table),
        "results": bench.results,
        "checks": bench.checks,
        "cpu_by_phase": bench.cpu,
        "profile": bench.profile_top,
        "errors": bench.errors,
    }
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    cfg.out.write_text(json.dumps(merged(previous(cfg.out), document, cfg.scale), indent=2, default=str))
    print(text)
    if bench.profile_top and bench.profile_top.get("samples"):
        print(f"\nworker fold profile ({bench.profile_top['samples']} samples, var/bench-profile.txt), top 10 self:")
        for item in bench.profile_top["self"]:
            print(f"  {item['share']:6.1%}  {item['function']}")
        print("by area (innermost frame that names one):")
        for item in bench.profile_top["areas"]:
            print(f"  {item['share']:6.1%}  {item['area']}")
    print(f"\nJSON: {cfg.out}")
    return 1 if bench.errors else 0


def previous(path: Path) -> dict[str, Any] | None:
    """The JSON an earlier run left at ``path`` (None when there is none, or it is not a document)."""
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def merged(earlier: dict[str, Any] | None, document: dict[str, Any], scale: bool) -> dict[str, Any]:
    """One var/bench.json for both modes, each with its own run id: a ``--scale`` run writes its
    document under ``scale`` and keeps the default run's keys; a default run keeps the ``scale`` of
    the last ``--scale`` run."""
    if scale:
        return {**{k: v for k, v in (earlier or {}).items() if k != "scale"}, "scale": document}
    kept = (earlier or {}).get("scale")
    return {**document, "scale": kept} if kept is not None else document


def cleanup(bench: Bench) -> None:
    stop_all()
    try:
        local_broker.stop(bench.broker_dir, quiet=True)
    finally:
        logs = VAR / "bench" / "logs"
        shutil.rmtree(logs, ignore_errors=True)
        shutil.copytree(bench.logs, logs, dirs_exist_ok=True)
        if bench.config.keep:
            log(f"scratch kept: {bench.scratch}")
        else:
            shutil.rmtree(bench.scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    VAR.mkdir(exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    bench = Bench(config)
    try:
        return run_scale_mode(bench) if config.scale else run(bench)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        cleanup(bench)


if __name__ == "__main__":
    sys.exit(main())
