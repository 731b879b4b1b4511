"""One fold of an event sequence, as comparable data, for tests/unit/test_compiled_fold.py: run as
``python -m tests.support.fold_builds`` in a child process per build (the compiled one with
``SESSIONS_FOLD_BUILD_DIR``, the pure one with ``SESSIONS_PURE_PYTHON=1``), one JSON line in, one out."""

from __future__ import annotations

import sys
from typing import Any

import orjson

from projections.step import NO_SESSION, fold_session
from schemas.events import event_from_object
from streams.devkit.paths import sample_rules

RULES = sample_rules()
# (lifetime ms, max session bytes): forever and unbounded, then short enough that sequences meet
# expiries and refusals for size too (fold_session's second pass).
POLICIES = ((0, 256 * 1024), (1500, 900))


def fold_outcome(objects: list[dict[str, Any]]) -> list[Any]:
    """The sequence folded under each policy: state bytes, activity, each event's outcome."""
    events = [event_from_object(o) for o in objects]
    results = []
    for lifetime_ms, max_bytes in POLICIES:
        folded = fold_session(NO_SESSION, events, RULES, lifetime_ms, max_bytes)
        outcomes = [[o.ended, o.refusal] for o in folded.outcomes]
        results.append([folded.encoded.decode(), folded.session.activity_ms, outcomes])
    return results


def main() -> None:
    for line in sys.stdin:
        sys.stdout.write(orjson.dumps(fold_outcome(orjson.loads(line))).decode() + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
