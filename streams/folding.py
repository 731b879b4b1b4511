"""One batch of records through the fold: decode, apply per session in order, one write per session.

faust hands the agent many events at once (``take_events``); folding them here, with each touched
session read once and written once, spares the table and the changelog a write per event. The
outcome is the same as folding the records one at a time: each session sees its events in order,
and a record that cannot be folded is set aside with its reason, as before.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from faust import streams as faust_streams

from projections.rules import Rules
from projections.session import apply
from schemas.events import EventDecodeError, decode_event
from schemas.session import SessionState, decode_state, encode_state

log = logging.getLogger(__name__)


@dataclass
class BatchOutcome:
    # key -> (the session's encoded state after the batch, the last event of it: its partition)
    writes: dict[bytes, tuple[bytes, Any]] = field(default_factory=dict)
    dead: list[tuple[Any, str]] = field(default_factory=list)  # (message, reason)
    folded_ids: list[tuple[str, bytes]] = field(default_factory=list)  # (event id, its session key)


@contextlib.contextmanager
def as_current(event: Any) -> Iterator[None]:
    """Make ``event`` faust's current event: a table reads and writes the partition of the current
    event, and in a batch each session's partition is the one of its own events."""
    token = faust_streams._current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        faust_streams._current_event.reset(token)


def fold_batch(
    events: Sequence[Any], read: Callable[[bytes], bytes | None], rules: Rules, max_session_bytes: int
) -> BatchOutcome:
    outcome = BatchOutcome()
    states: dict[bytes, SessionState | None] = {}  # each touched session as the batch left it so far
    for event in events:
        message = event.message
        try:
            decoded = decode_event(message.value)
        except EventDecodeError as exc:
            outcome.dead.append((message, f"{exc.path}: {exc.message}"))
            continue
        key = message.key
        if key != decoded.subject.encode():
            outcome.dead.append((message, "record key does not equal the event's subject"))
            continue
        if key in states:
            state = states[key]
        else:
            with as_current(event):
                raw = read(key)
            state = states[key] = decode_state(raw) if raw is not None else None
        try:
            new_state = apply(state, decoded, rules)
        except Exception as exc:  # a bug in one rule must not stop every session's stream
            log.exception("fold failed for event %s", decoded.id)
            outcome.dead.append((message, f"fold failed: {exc!r}"))
            continue
        new_encoded = encode_state(new_state)
        if len(new_encoded) > max_session_bytes:
            # Kept below Kafka's message limit: a changelog write that fails would stop the worker,
            # and it would fail again on every restart.
            outcome.dead.append((message, f"the session would grow over {max_session_bytes} bytes"))
            continue
        # Written even when a duplicate left it unchanged: that re-emits a changelog record a crash
        # may have lost (docs/exactly-once.md).
        states[key] = new_state
        outcome.writes[key] = (new_encoded, event)
        outcome.folded_ids.append((decoded.id, key))
    return outcome
