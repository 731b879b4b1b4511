"""A session's past folded again: what each event changed, the state at an instant, the state
right after an event; the property the history issue asks for over random event sequences."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projections.errors import EventRejected
from projections.history import UnknownEvent, changed_paths, replay, state_after, state_at
from projections.session import apply, ends_session, fold
from schemas.events import event_from_object
from streams.devkit.events import at, page_view, public_set
from streams.devkit.paths import sample_rules
from tests.support.strategies import event_sequences

pytestmark = pytest.mark.unit

RULES = sample_rules()


@st.composite
def timed_sequences(draw):
    """A session's events with non-decreasing times (several may share one, as one request's do)."""
    sid, raw = draw(event_sequences())
    steps = draw(st.lists(st.sampled_from([0, 0, 1, 2, 3600]), min_size=len(raw), max_size=len(raw)))
    seconds = 0
    for event, step in zip(raw, steps, strict=True):
        seconds += step
        event["time"] = at(seconds)
    return sid, [event_from_object(e) for e in raw]


@settings(max_examples=200, deadline=None)
@given(timed_sequences(), st.data())
def test_the_state_at_an_instant_is_the_fold_of_the_events_up_to_it(sequence, data):
    _, events = sequence
    current = fold(events, rules=RULES)
    assert state_at(events, events[-1].time, RULES) == current
    assert state_at(events, events[0].time - timedelta(microseconds=1), RULES) is None
    instant = data.draw(st.sampled_from([e.time for e in events])) + data.draw(
        st.sampled_from([timedelta(0), timedelta(milliseconds=500), -timedelta(milliseconds=1)])
    )
    assert state_at(events, instant, RULES) == fold([e for e in events if e.time <= instant], rules=RULES)


@settings(max_examples=200, deadline=None)
@given(timed_sequences())
def test_replay_gives_each_events_state_and_exactly_what_it_changed(sequence):
    _, events = sequence
    steps = list(replay(events, RULES))
    assert [s.event for s in steps] == events
    previous = None
    for n, step in enumerate(steps):
        assert step.state == fold(events[: n + 1], rules=RULES)
        assert step.rejected == _refused(previous, step.event)
        if step.rejected:
            assert step.state is previous and step.changes == []
        before = previous.namespaces if previous is not None else {}
        after = step.state.namespaces if step.state is not None else {}
        changed = {
            f"{ns}.{key}"
            for ns in before.keys() | after.keys()
            for key in before.get(ns, {}).keys() | after.get(ns, {}).keys()
            if before.get(ns, {}).get(key) != after.get(ns, {}).get(key)
        }
        assert set(step.changes) == changed
        assert state_after(events, step.event.id, RULES) == step.state
        previous = step.state


def _refused(state, event) -> bool:
    if ends_session(event):  # an erasure is never refused
        return False
    try:
        apply(state, event, RULES)
    except EventRejected:
        return True
    return False


def test_changes_name_what_a_transformer_derived():
    sid = "00000000-0000-4000-8000-000000000001"
    events = [
        event_from_object(page_view(sid, "https://shop.example/", 0)),
        event_from_object(page_view(sid, "https://shop.example/?utm_source=Google&utm_campaign=bf", 1)),
        event_from_object(public_set(sid, {"color": "blue"}, 2)),
    ]
    steps = list(replay(events, RULES))
    assert "public.utm_source" in steps[1].changes and "public.utm_campaign" in steps[1].changes
    assert steps[2].changes == ["public.color"]


def test_state_after_an_unknown_event_id_is_refused():
    sid = "00000000-0000-4000-8000-000000000002"
    with pytest.raises(UnknownEvent):
        state_after([event_from_object(page_view(sid, "https://shop.example/"))], "no-such-id", RULES)


def test_changed_paths_sees_set_changed_and_removed_keys():
    before = {"public": {"a": {"value": 1}, "b": {"value": 2}}, "cart": {"x": {"value": 1}}}
    after = {"public": {"a": {"value": 1}, "b": {"value": 3}, "c": {"value": 0}}}
    assert changed_paths(before, after) == ["cart.x", "public.b", "public.c"]
