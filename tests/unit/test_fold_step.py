"""One per-session fold policy (``projections.step``) and one lifetime rule (``projections.lifetime``):
the rule and the step alone, then the worker's batch fold, ``sessionctl export --sessions`` and the
replay agreeing on any sequence of events, erasures and expiries included (issue 20)."""

from __future__ import annotations

import random
from datetime import timedelta

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projections.history import replay, state_at
from projections.lifetime import epoch_ms, expired, lifetime_ms_of
from projections.rules import EMPTY_RULES, Rules, StoreDefaults
from projections.step import ENDED, FOLDED, NO_SESSION, continues, fold_session, step
from schemas.events import Event, event_from_object
from schemas.session import SessionState, decode_state, encode_state
from streams.devkit.events import (
    BASE_TIME,
    at,
    cart_item_added,
    new_session_id,
    page_view,
    public_set,
    session_erased,
)
from streams.devkit.paths import sample_rules
from streams.fold.batch import Stored, fold_batch
from streams.tools.export.sessions import MemoryStates, SessionFolder
from tests.support.strategies import event_sequences

pytestmark = pytest.mark.unit

RULES = sample_rules()
LIFETIME_MS = 60_000
MAX = 256 * 1024


def ev(event: dict) -> Event:
    return event_from_object(orjson.loads(orjson.dumps(event)))


# --- the lifetime rule ----------------------------------------------------------------------------


def test_a_session_expires_strictly_after_its_lifetime_from_its_latest_event():
    assert not expired(1_000, 1_000 + LIFETIME_MS, LIFETIME_MS)
    assert expired(1_000, 1_000 + LIFETIME_MS + 1, LIFETIME_MS)


def test_no_lifetime_and_an_unknown_activity_never_expire():
    assert not expired(1_000, 10**12, 0)  # forever
    assert not expired(0, 10**12, LIFETIME_MS)  # a value stored before its activity was kept


def test_lifetimes_and_times_in_whole_milliseconds():
    assert lifetime_ms_of(None) == 0 and lifetime_ms_of(timedelta(seconds=1.5)) == 1500
    assert epoch_ms(BASE_TIME + timedelta(milliseconds=1)) - epoch_ms(BASE_TIME) == 1


# --- the step ---------------------------------------------------------------------------------------


def test_an_event_within_the_lifetime_continues_the_session():
    sid = new_session_id()
    first = step(NO_SESSION, ev(page_view(sid, "https://s/?a=1", 0)), EMPTY_RULES, LIFETIME_MS)
    second_event = ev(page_view(sid, "https://s/?b=2", 60))  # exactly the lifetime later: alive
    assert continues(first, second_event, LIFETIME_MS)
    second = step(first, second_event, EMPTY_RULES, LIFETIME_MS)
    assert second.state is not None and second.state.meta.event_count == 2
    assert second.activity_ms == epoch_ms(BASE_TIME + timedelta(seconds=60))


def test_an_event_after_the_lifetime_starts_the_session_afresh():
    sid = new_session_id()
    first = step(NO_SESSION, ev(page_view(sid, "https://s/?a=1", 0)), EMPTY_RULES, LIFETIME_MS)
    late = ev(page_view(sid, "https://s/?b=2", 60.001))
    assert not continues(first, late, LIFETIME_MS)
    after = step(first, late, EMPTY_RULES, LIFETIME_MS)
    assert after.state is not None and after.state.meta.event_count == 1
    assert set(after.state.namespaces["public"]) == {"b"}
    # With no lifetime, the same event continues it.
    assert step(first, late, EMPTY_RULES, 0).state.meta.event_count == 2  # type: ignore[union-attr]


def test_an_erasure_ends_the_session_and_the_next_event_starts_a_new_one():
    sid = new_session_id()
    first = step(NO_SESSION, ev(page_view(sid, "https://s/?a=1", 0)), EMPTY_RULES, LIFETIME_MS)
    assert step(first, ev(session_erased(sid, 1)), EMPTY_RULES, LIFETIME_MS) == NO_SESSION
    again = step(NO_SESSION, ev(page_view(sid, "https://s/?b=2", 2)), EMPTY_RULES, LIFETIME_MS)
    assert again.state is not None and again.state.meta.event_count == 1


def test_a_skewed_event_does_not_make_the_session_look_older():
    sid = new_session_id()
    session = step(NO_SESSION, ev(page_view(sid, "https://s/", 100)), EMPTY_RULES, LIFETIME_MS)
    session = step(session, ev(page_view(sid, "https://s/?late=1", 50)), EMPTY_RULES, LIFETIME_MS)
    assert session.activity_ms == epoch_ms(BASE_TIME + timedelta(seconds=100))


def test_a_refused_event_raises_and_the_caller_keeps_the_session():
    sid = new_session_id()
    cart = step(NO_SESSION, ev(cart_item_added(sid, "a", 1, 2.5, "BRL", 0)), EMPTY_RULES, LIFETIME_MS)
    with pytest.raises(ValueError, match="currency"):
        step(cart, ev(cart_item_added(sid, "b", 1, 2.5, "USD", 1)), EMPTY_RULES, LIFETIME_MS)


# --- a session's events of one batch -----------------------------------------------------------------


def test_fold_session_says_what_each_event_did_and_encodes_once():
    sid = new_session_id()
    events = [
        ev(cart_item_added(sid, "a", 1, 2.5, "BRL", 0)),
        ev(cart_item_added(sid, "b", 1, 2.5, "USD", 1)),  # another currency: refused
        ev(session_erased(sid, 2)),
        ev(page_view(sid, "https://s/?c=3", 3)),
    ]
    result = fold_session(NO_SESSION, events, EMPTY_RULES, LIFETIME_MS, MAX)
    assert result.outcomes[0] == FOLDED and result.outcomes[2] == ENDED and result.outcomes[3] == FOLDED
    refusal = result.outcomes[1]
    assert refusal.refusal == "the item's currency USD is not the cart's currency BRL" and refusal.error is not None
    assert result.session.state is not None and result.encoded == encode_state(result.session.state)
    assert result.session.state.meta.event_count == 1 and "cart" not in result.session.state.namespaces


def test_fold_session_refuses_exactly_the_events_that_overgrow_the_session():
    sid = new_session_id()
    events = [
        ev(public_set(sid, {"a": "x"}, 0)),
        ev(public_set(sid, {"b": "y" * 5000}, 1)),
        ev(public_set(sid, {"c": "z"}, 2)),
    ]
    result = fold_session(NO_SESSION, events, EMPTY_RULES, LIFETIME_MS, 2000)
    assert [o.refusal for o in result.outcomes] == ["", "the session would grow over 2000 bytes", ""]
    assert result.session.state is not None and set(result.session.state.namespaces["public"]) == {"a", "c"}
    assert result.encoded == encode_state(result.session.state) and len(result.encoded) <= 2000


class FailingRules(Rules):
    """Rules one of whose rules raises (a bug in it): looking up any account's store. (A rule, not a
    monkeypatched function: the compiled fold calls its own functions directly.)"""

    def store_for(self, account: str | None) -> StoreDefaults:
        raise RuntimeError("a rule failed")


def test_a_failing_rule_is_refused_as_a_failure():
    result = fold_session(NO_SESSION, [ev(page_view(new_session_id(), "https://s/"))], FailingRules(), 0, MAX)
    assert result.outcomes[0].refusal == "fold failed: RuntimeError('a rule failed')"
    assert result.session == NO_SESSION and result.encoded == b""


# --- every fold of the log agrees -----------------------------------------------------------------


class ActivityStore:
    """What the loop's store gives the batch: offset, state and activity per session."""

    def __init__(self) -> None:
        self.stored: dict[bytes, Stored] = {}

    def read(self, key: bytes) -> Stored | None:
        return self.stored.get(key)

    def apply(self, outcome) -> None:
        for key, written in outcome.writes.items():
            self.stored[key] = Stored(written.offset, decode_state(written.encoded), b"", written.activity_ms)
        for key in outcome.erased:
            self.stored.pop(key, None)


def by_worker(events: list[dict], cut: int) -> SessionState | None:
    store = ActivityStore()
    records = [(e["subject"].encode(), orjson.dumps(e), n) for n, e in enumerate(events)]
    for part in (records[:cut], records[cut:]):
        store.apply(fold_batch(part, store.read, RULES, MAX, LIFETIME_MS))
    stored = store.stored.get(events[0]["subject"].encode())
    return stored.state if stored is not None else None


def by_export(events: list[dict], cut: int) -> SessionState | None:
    start, end = BASE_TIME - timedelta(days=1), BASE_TIME + timedelta(days=1)
    folder = SessionFolder(start, end, RULES, MemoryStates(), lifetime_ms=LIFETIME_MS)
    records = [(e["subject"].encode(), orjson.dumps(e)) for e in events]
    for part in (records[:cut], records[cut:]):
        folder.take(part)
    return next(iter(folder.documents()), None)


def by_replay(events: list[dict]) -> SessionState | None:
    steps = list(replay([ev(e) for e in events], RULES, timedelta(milliseconds=LIFETIME_MS)))
    return steps[-1].state  # a refused event's step holds the session as it stayed


def encoded(state: SessionState | None) -> bytes | None:
    return None if state is None else encode_state(state)


def test_the_worker_the_export_and_the_replay_agree_across_an_erasure_and_an_expiry():
    sid = new_session_id()
    events = [
        page_view(sid, "https://s/?utm_source=mail", 0),
        cart_item_added(sid, "a", 1, 2.5, "BRL", 10),
        cart_item_added(sid, "b", 1, 2.5, "USD", 20),  # refused everywhere
        session_erased(sid, 30),
        page_view(sid, "https://s/?c=3", 40),  # after the erasure: a new session
        page_view(sid, "https://s/?d=4", 200),  # 160 s after its latest: expired, a new session again
        page_view(sid, "https://s/?e=5", 210),
    ]
    for cut in range(len(events) + 1):
        worker = by_worker(events, cut)
        assert worker is not None and worker.meta.event_count == 2
        assert set(worker.namespaces["public"]) == {"d", "e"}
        assert encoded(by_export(events, cut)) == encoded(worker)
    assert encoded(by_replay(events)) == encoded(worker)
    last = BASE_TIME + timedelta(seconds=210)
    assert encoded(state_at([ev(e) for e in events], last, RULES, timedelta(milliseconds=LIFETIME_MS))) == encoded(
        worker
    )


@settings(max_examples=60, deadline=None)
@given(sequence=event_sequences(), gaps=st.lists(st.sampled_from([1, 30, 61, 3600]), min_size=12, max_size=12))
def test_any_sequence_folds_the_same_in_the_worker_the_export_and_the_replay(sequence, gaps):
    _, drawn = sequence
    seconds, events = 0, []
    for event, gap in zip(drawn, gaps, strict=False):  # gaps over the lifetime now and then
        seconds += gap
        events.append(event | {"time": at(seconds)})
    cut = random.Random(len(events) * 7 + sum(gaps)).randint(0, len(events))
    worker = by_worker(events, cut)
    assert encoded(by_export(events, cut)) == encoded(worker)
    assert encoded(by_replay(events)) == encoded(worker)
