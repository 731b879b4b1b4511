"""One session's fold step: the per-session policy every fold of the log follows, in one place.

The worker's batch fold (``streams.fold.batch``, and so the rebuild, which runs the same loop),
``sessionctl export --sessions`` and the replays of ``projections.history`` all fold a session's
events with :func:`step`; the first two through :func:`fold_session`. For each event, in log order:

- ``session.erased`` ends the session: nothing is left of it, and the next event starts a new one;
- an event more than the lifetime after the session's latest event starts it afresh (the old one
  had expired: ``projections.lifetime``, measured in event time, so every fold meets the same
  expiries whenever it runs);
- any other event is applied (:func:`projections.session.apply`).

An event the fold refuses (``EventRejected``, or a failing rule) leaves the session as it was; so
does one that would grow its encoding over the size limit (the worker keeps states below Kafka's
message limit: a changelog write that fails would stop its loop, again on every restart).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, NamedTuple

from projections.lifetime import UNKNOWN, epoch_ms, expired
from projections.rules import Rules
from projections.session import apply, ends_session
from schemas.events import Event
from schemas.session import SessionState, encode_state


class Session(NamedTuple):
    """A session as the fold carries it from one event to the next."""

    state: SessionState | None = None  # None: no session (none yet, or it was erased)
    activity_ms: int = UNKNOWN  # the latest event time folded into it (``projections.lifetime``)


NO_SESSION: Final = Session()


def continues(session: Session, event: Event, lifetime_ms: int) -> bool:
    """The event folds into the session as it stands: there is one, and it had not expired by the
    event's time (otherwise the event starts a new one)."""
    return session.state is not None and not expired(session.activity_ms, epoch_ms(event.time), lifetime_ms)


def step(session: Session, event: Event, rules: Rules, lifetime_ms: int) -> Session:
    """The session after one more event (``lifetime_ms`` 0: forever). Raises what
    :func:`projections.session.apply` raises: the caller refuses the event, the session stays."""
    if ends_session(event):
        return NO_SESSION
    at_ms = epoch_ms(event.time)
    base = None if expired(session.activity_ms, at_ms, lifetime_ms) else session.state
    # The latest time, not the last: an event stamped earlier than one before it (a skewed clock)
    # does not make the session look older than it is.
    return Session(apply(base, event, rules), max(session.activity_ms, at_ms))


class Outcome(NamedTuple):
    """What one event did to its session."""

    ended: bool = False  # it ended the session (``session.erased``)
    refusal: str = ""  # why the session refused it, for a dead letter ("": it was folded)
    error: Exception | None = None  # what the fold raised, when that is why (for the caller's log)


FOLDED: Final = Outcome()
ENDED: Final = Outcome(ended=True)


class SessionFold(NamedTuple):
    session: Session  # after the events
    encoded: bytes  # its state, encoded once (b"": no session)
    outcomes: list[Outcome]  # one per event, in order


def fold_session(
    session: Session, events: Sequence[Event], rules: Rules, lifetime_ms: int, max_session_bytes: int
) -> SessionFold:
    """A session's events of one batch, in log order, its state encoded once at the end.

    When that encoding is over ``max_session_bytes`` (rare), the events are folded again encoding
    after each one, to refuse exactly those that overgrow the session."""
    current, outcomes = session, []
    for event in events:
        try:
            current = step(current, event, rules, lifetime_ms)
        except Exception as exc:  # noqa: BLE001 - a bug in one rule must not stop every session's stream
            outcomes.append(refused(exc))
            continue
        outcomes.append(ENDED if current.state is None else FOLDED)
    encoded = b"" if current.state is None else encode_state(current.state)
    if len(encoded) <= max_session_bytes:
        return SessionFold(current, encoded, outcomes)
    return _fold_within(session, events, rules, lifetime_ms, max_session_bytes)


def _fold_within(
    session: Session, events: Sequence[Event], rules: Rules, lifetime_ms: int, max_session_bytes: int
) -> SessionFold:
    """:func:`fold_session`'s second pass: each event's state encoded, refused when over the limit."""
    current, outcomes = session, []
    encoded = b"" if session.state is None else encode_state(session.state)
    over = Outcome(refusal=f"the session would grow over {max_session_bytes} bytes")
    for event in events:
        try:
            candidate = step(current, event, rules, lifetime_ms)
        except Exception as exc:  # noqa: BLE001 - as in fold_session
            outcomes.append(refused(exc))
            continue
        if candidate.state is None:
            current, encoded = candidate, b""
            outcomes.append(ENDED)
            continue
        candidate_encoded = encode_state(candidate.state)
        if len(candidate_encoded) > max_session_bytes:
            outcomes.append(over)
            continue
        current, encoded = candidate, candidate_encoded
        outcomes.append(FOLDED)
    return SessionFold(current, encoded, outcomes)


def refused(exc: Exception) -> Outcome:
    """An event the fold raised on: a rule's own refusal (``EventRejected``) as it words it,
    anything else as a failure."""
    if getattr(exc, "dead_letter_reason", False):
        return Outcome(refusal=str(exc), error=exc)
    return Outcome(refusal=f"fold failed: {exc!r}", error=exc)
