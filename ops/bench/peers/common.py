"""What every peer shares: how it starts, the fold step (``streams.devkit.fold``, the bench's micro
phase times the same one), the worker's rules loading, and how a peer reports.

A peer is one process that folds the bench topic from its beginning, then writes a result file
(JSON, written whole, then renamed) once it has processed the number of records it was told to
expect, and waits to be stopped. Times are wall-clock nanoseconds (``time.time_ns``) so the harness
can line them up with its own; the rate is taken from the first record to the last one.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from streams.config.rules_file import load_rules
from streams.devkit.fold import FoldStep, make_fold

PROCESS_START_NS = time.time_ns()


def fold_step(args: argparse.Namespace) -> FoldStep:
    """The fold step with the rules of ``--rules``, loaded as the worker loads them (neither imports faust:
    the Quix venv has none)."""
    return make_fold(load_rules(args.rules))


def arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True, help="consumer group / app id, unique per run")
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--expect", type=int, required=True, help="records to process before reporting")
    parser.add_argument("--state-dir", default="")
    parser.add_argument("--rules", default="")
    parser.add_argument("--samples", default="", help="a file of session ids whose final state to report")
    parser.add_argument("--result", required=True)
    parser.add_argument("--timeout", type=float, default=600.0)
    return parser.parse_args()


def start(peer: str, description: str) -> tuple[argparse.Namespace, Progress]:
    """The command line and the progress of ``peer``; the process exits (3) after ``--timeout``
    seconds if nobody stops it."""
    args = arguments(description)
    safety_net = threading.Timer(args.timeout, os._exit, args=(3,))
    safety_net.daemon = True
    safety_net.start()
    return args, Progress(peer, args.expect, read_samples(args.samples))


def read_samples(path: str) -> set[bytes]:
    if not path:
        return set()
    return {line.strip().encode() for line in Path(path).read_text().splitlines() if line.strip()}


class Progress:
    """Counts records and keeps the latest state of the sample sessions."""

    def __init__(self, peer: str, expect: int, samples: set[bytes]) -> None:
        self.peer = peer
        self.expect = expect
        self.samples = samples
        self.sample_states: dict[str, str] = {}
        self.count = 0
        self.rejected = 0
        self.first_ns = 0
        self.done_ns = 0

    def processed(self, key: bytes | None, state: bytes | None) -> bool:
        """Call once per record; True exactly when the expected count is reached."""
        if self.count == 0:
            self.first_ns = time.time_ns()
        self.count += 1
        if state is None:
            self.rejected += 1
        elif key in self.samples:
            self.sample_states[key.decode()] = state.decode()
        if self.count == self.expect:
            self.done_ns = time.time_ns()
            return True
        return False

    def result(self, **extra: Any) -> dict[str, Any]:
        seconds = (self.done_ns - self.first_ns) / 1e9 if self.done_ns else 0.0
        return {
            "peer": self.peer,
            "count": self.count,
            "expect": self.expect,
            "rejected": self.rejected,
            "process_start_ns": PROCESS_START_NS,
            "first_ns": self.first_ns,
            "done_ns": self.done_ns,
            "seconds": seconds,
            "rate": (self.count - 1) / seconds if seconds > 0 else None,
            "samples": self.sample_states,
            **extra,
        }


def write_result(path: str, result: dict[str, Any]) -> None:
    target = Path(path)
    partial = target.with_suffix(".partial")
    partial.write_text(json.dumps(result))
    os.replace(partial, target)
