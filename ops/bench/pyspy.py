"""Reading a py-spy raw profile (collapsed stacks: ``frame;frame;frame count`` per line).

The file itself loads in https://www.speedscope.app or flamegraph.pl; here we only rank functions:
"self" = samples where the function was running, "total" = samples where it was on the stack.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from streams.devkit.paths import REPO

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")


def _short(frame: str) -> str:
    match = _FRAME.match(frame)
    if not match:
        return frame
    path = match.group("file")
    for marker in ("site-packages/", "lib/python3.11/", f"{REPO}/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match.group('func')} ({path})"


def _stacks(path: Path) -> Iterator[tuple[list[str], int]]:
    """(raw frames root to leaf, sample count) of each line of a collapsed-stack profile."""
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if stack and count_text.isdigit():
            yield stack.split(";"), int(count_text)


def top_functions(path: Path, limit: int = 10) -> dict[str, Any]:
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for stack, count in _stacks(path):
        frames = [_short(f) for f in stack if f]
        if not frames:
            continue
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    if samples == 0:
        return {"samples": 0, "self": [], "total": [], "areas": []}

    def rank(counter: Counter[str]) -> list[dict[str, Any]]:
        return [
            {"function": name, "samples": n, "share": round(n / samples, 4)} for name, n in counter.most_common(limit)
        ]

    return {"samples": samples, "self": rank(own), "total": rank(total), "areas": areas(path)}


# Where a sample's time goes, judged from the innermost frame that says something (leaf to root).
# py-spy names the fold package's files by their base name ("loop.py"): both forms are listed.
_AREAS = (
    (
        "fold: decode, apply, encode (schemas/, projections/, fold/batch.py)",
        ("schemas/", "projections/", "msgspec", "streams/fold/batch.py", "(batch.py"),
    ),
    ("store: RocksDB (fold/store.py, rocksdict)", ("streams/fold/store.py", "(store.py", "rocksdict", "faust/stores/")),
    ("changelog catch-up (fold/restore.py)", ("streams/fold/restore.py", "(restore.py")),
    # confluent-kafka is C: the innermost Python frame is the loop's method that called it.
    (
        "Kafka produce + flush + commit: changelog/DLQ (fold/checkpoint.py)",
        ("streams/fold/checkpoint.py", "(checkpoint.py"),
    ),
    ("Kafka consume (fold loop)", ("._fold_once (", "._split (")),
    ("Kafka commit (fold loop)", ("._commit (",)),
    ("faust control plane (aiokafka, faust)", ("aiokafka/", "faust/")),
    ("the API appender's poll thread (streams/kafka/producer.py)", ("streams/kafka/producer.py",)),
    # Not streams/tools/sessionctl.py: it is the root of every main-thread stack.
    (
        "the fold loop's own code, views (fold/loop.py, web/, app.py)",
        ("(loop.py", "streams/control/app.py", "streams/web/"),
    ),
)


def areas(path: Path) -> list[dict[str, Any]]:
    """Samples per area of the worker; the rest (event loop, selectors, mode) is 'other'."""
    counts: Counter[str] = Counter()
    samples = 0
    for stack, count in _stacks(path):
        samples += count
        area = "other: event loop, selectors, mode, logging"
        for frame in reversed(stack):
            file = _short(frame)
            found = next((name for name, markers in _AREAS if any(m in file for m in markers)), None)
            if found:
                area = found
                break
        counts[area] += count
    return [
        {"area": name, "samples": n, "share": round(n / samples, 4) if samples else 0.0}
        for name, n in counts.most_common()
    ]
