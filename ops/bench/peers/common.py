"""What every peer shares: the same fold step as the worker's agent, and how a peer reports.

A peer is one process that folds the bench topic from its beginning, then writes a result file
(JSON, written whole, then renamed) once it has processed the number of records it was told to
expect, and waits to be stopped. Times are wall-clock nanoseconds (``time.time_ns``) so the harness
can line them up with its own; the rate is taken from the first record to the last one.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from projections.rules import Rules
from projections.session import apply
from schemas.events import EventDecodeError, decode_event
from schemas.session import decode_state, encode_state
from streams.rules_file import load_rules

__all__ = ["load_rules"]  # the worker's own rules loading (no faust import: the Quix venv has none)

PROCESS_START_NS = time.time_ns()

FoldStep = Callable[[bytes | None, bytes | None, bytes | None], bytes | None]


def make_fold(rules: Rules) -> FoldStep:
    """(key, value, previous state bytes) -> new state bytes, or None for a record the worker dead-letters."""

    def step(key: bytes | None, value: bytes | None, previous: bytes | None) -> bytes | None:
        if value is None:
            return None
        try:
            event = decode_event(value)
        except EventDecodeError:
            return None
        if key != event.subject.encode():
            return None
        state = apply(decode_state(previous) if previous is not None else None, event, rules)
        return encode_state(state)

    return step


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
