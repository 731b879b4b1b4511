"""The per-record fold step outside the worker: decode, read the stored state, ``apply``, encode.

The bench's peers run it inside Quix Streams and a plain faust agent, and the bench's micro phase
times it; it imports nothing but ``schemas`` and ``projections`` (the Quix venv has no faust).
"""

from __future__ import annotations

from collections.abc import Callable

from projections.rules import Rules
from projections.session import apply
from schemas.events import EventDecodeError, decode_event
from schemas.session import decode_state, encode_state

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
