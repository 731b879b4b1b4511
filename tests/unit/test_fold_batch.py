"""The data plane's pure step: a batch of one partition's records folds to what the reference fold
gives, skips redeliveries by offset, and sets bad records aside with their reason."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projections.errors import EventRejected
from projections.rules import Rules, StoreDefaults
from projections.session import apply, ends_session, fold, rfc3339
from schemas.events import decode_event, event_from_object
from schemas.session import decode_state, encode_state
from streams.devkit.events import new_session_id, page_view, public_set, session_created
from streams.devkit.paths import sample_rules
from streams.fold.batch import Stored, fold_batch
from tests.support.strategies import event_sequences

pytestmark = pytest.mark.unit

RULES = sample_rules()
MAX = 256 * 1024


def records_of(events: list[dict], first_offset: int = 0) -> list[tuple[bytes, bytes, int]]:
    return [(e["subject"].encode(), orjson.dumps(e), first_offset + n) for n, e in enumerate(events)]


class DictStore:
    """What the loop's store and cache give the batch: (offset, state) per session, counting reads."""

    def __init__(self) -> None:
        self.stored: dict[bytes, Stored] = {}
        self.reads: list[bytes] = []

    def read(self, key: bytes) -> Stored | None:
        self.reads.append(key)
        return self.stored.get(key)

    def apply(self, outcome) -> None:
        for key, written in outcome.writes.items():
            # Through the bytes, as a real store would: nothing shared with the batch survives.
            self.stored[key] = Stored(written.offset, decode_state(written.encoded))
        for key in outcome.erased:
            self.stored.pop(key, None)  # as a store deletes: a session never stored is fine


def reference(events: list[dict]):
    return fold((event_from_object(orjson.loads(orjson.dumps(e))) for e in events), rules=RULES)


def rejected_ids(events: list[dict]) -> set[str]:
    """The events the fold refuses (dead-lettered; they do not move the session's offset)."""
    state, rejected = None, set()
    for event in (event_from_object(orjson.loads(orjson.dumps(e))) for e in events):
        if ends_session(event):
            state = None
            continue
        try:
            state = apply(state, event, RULES)
        except EventRejected:
            rejected.add(event.id)
    return rejected


@settings(max_examples=60, deadline=None)
@given(sequences=st.lists(event_sequences(), min_size=1, max_size=4), cut=st.integers(0, 60), seed=st.integers())
def test_batches_of_any_size_fold_to_the_reference(sequences, cut, seed):
    # Several sessions interleaved (each in its own order), split into two batches anywhere.
    queues = [list(events) for _, events in sequences]
    rng = random.Random(seed)
    stream = []
    while any(queues):
        stream.append(rng.choice([q for q in queues if q]).pop(0))
    records = records_of(stream)
    store = DictStore()
    for part in (records[:cut], records[cut:]):
        store.apply(fold_batch(part, store.read, RULES, MAX))
    for sid, events in sequences:
        expected = reference(events)
        if expected is None:  # it ended with its erasure: nothing is stored
            assert sid.encode() not in store.stored
            continue
        assert encode_state(store.stored[sid.encode()].state) == encode_state(expected)
        rejected = rejected_ids(events)
        folded = [o for k, v, o in records if k == sid.encode() and orjson.loads(v)["id"] not in rejected]
        assert store.stored[sid.encode()].offset == max(folded)


def test_each_touched_session_is_read_once_per_batch_and_written_once():
    a, b = new_session_id(), new_session_id()
    events = [page_view(a, f"https://s/?n={n}", n) if n % 3 else page_view(b, f"https://s/?m={n}", n) for n in range(9)]
    store = DictStore()
    outcome = fold_batch(records_of(events), store.read, RULES, MAX)
    assert sorted(store.reads) == sorted([a.encode(), b.encode()])
    assert set(outcome.writes) == {a.encode(), b.encode()}
    for sid in (a, b):  # each session's events in log order
        folded = [event_id for event_id, key in outcome.folded if key == sid.encode()]
        assert folded == [e["id"] for e in events if e["subject"] == sid]


def test_records_at_or_below_the_sessions_offset_are_redeliveries_and_skipped():
    sid = new_session_id()
    events = [page_view(sid, f"https://s/?n={n}", n) for n in range(6)]
    store = DictStore()
    store.apply(fold_batch(records_of(events[:4]), store.read, RULES, MAX))
    # A restart re-reads from an older offset: offsets 2 and 3 are folded already.
    outcome = fold_batch(records_of(events[2:], first_offset=2), store.read, RULES, MAX)
    store.apply(outcome)
    assert outcome.skipped == 2
    assert [event_id for event_id, _ in outcome.folded] == [events[4]["id"], events[5]["id"]]
    assert store.stored[sid.encode()].state.meta.event_count == 6
    assert encode_state(store.stored[sid.encode()].state) == encode_state(reference(events))


def test_a_batch_of_redeliveries_only_writes_nothing():
    sid = new_session_id()
    events = [page_view(sid, f"https://s/?n={n}", n) for n in range(3)]
    store = DictStore()
    store.apply(fold_batch(records_of(events), store.read, RULES, MAX))
    outcome = fold_batch(records_of(events), store.read, RULES, MAX)
    assert outcome.writes == {} and outcome.skipped == 3


def test_bad_records_are_set_aside_with_their_reason_and_the_rest_folds():
    sid = new_session_id()
    good = page_view(sid, "https://s/?ok=1")
    records = [
        (sid.encode(), b"not json", 0),
        (sid.encode(), orjson.dumps(good), 1),
        (b"someone-else", orjson.dumps(page_view(sid, "https://s/?mismatch=1")), 2),
        (sid.encode(), None, 3),
    ]
    store = DictStore()
    outcome = fold_batch(records, store.read, RULES, MAX)
    assert [(d.offset, d.key) for d in outcome.dead] == [(0, sid.encode()), (2, b"someone-else"), (3, sid.encode())]
    assert outcome.dead[0].reason.startswith("$")
    assert "subject" in outcome.dead[1].reason
    assert outcome.writes[sid.encode()].state.namespaces["public"] == {"ok": {"value": "1"}}
    assert outcome.writes[sid.encode()].offset == 1


def test_an_event_further_ahead_of_its_records_timestamp_than_the_skew_is_set_aside():
    sid = new_session_id()
    at = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    stamp_ms = int(at.timestamp() * 1000)
    events = [
        page_view(sid, "https://s/?ahead=301") | {"time": rfc3339(at + timedelta(seconds=301))},
        page_view(sid, "https://s/?ahead=300") | {"time": rfc3339(at + timedelta(seconds=300))},
        page_view(sid, "https://s/?ahead=unknown") | {"time": rfc3339(at + timedelta(days=1))},
    ]
    stamps = [stamp_ms, stamp_ms, 0]  # 0: the record has no timestamp, nothing to measure against
    outcome = fold_batch(records_of(events), DictStore().read, RULES, MAX, 0, stamps, 300_000)
    assert [d.offset for d in outcome.dead] == [0]
    assert outcome.dead[0].reason == "$.time: the time is 301s ahead of its record's Kafka timestamp (at most 300s)"
    assert outcome.writes[sid.encode()].state.namespaces["public"]["ahead"] == {"value": "unknown"}
    # Without a limit (0), the same records all fold.
    assert not fold_batch(records_of(events), DictStore().read, RULES, MAX, 0, stamps, 0).dead


def test_the_event_that_would_overgrow_the_session_is_dead_lettered_alone():
    sid = new_session_id()
    small = public_set(sid, {"a": "x" * 100}, 0)
    big = public_set(sid, {"b": "y" * 3000}, 1)
    after = public_set(sid, {"c": "z"}, 2)
    limit = len(encode_state(reference([small, after]))) + 200
    outcome = fold_batch(records_of([small, big, after]), DictStore().read, RULES, limit)
    assert [d.offset for d in outcome.dead] == [1]
    assert "would grow over" in outcome.dead[0].reason
    written = outcome.writes[sid.encode()]
    assert written.offset == 2
    assert written.encoded == encode_state(reference([small, after]))
    assert [event_id for event_id, _ in outcome.folded] == [small["id"], after["id"]]


class FailingRules(Rules):
    """The sample rules, but looking up the store of account "boom" raises (a bug in a rule). (A rule,
    not a monkeypatched function: the compiled fold calls its own functions directly.)"""

    def store_for(self, account: str | None) -> StoreDefaults:
        if account == "boom":
            raise RuntimeError("a rule failed")
        return super().store_for(account)


def test_a_failing_rule_dead_letters_the_event_and_keeps_the_session():
    sid = new_session_id()
    events = [page_view(sid, "https://s/?a=1", 0), session_created(sid, "boom", 1)]
    rules = FailingRules(**vars(RULES))
    outcome = fold_batch(records_of(events), DictStore().read, rules, MAX)
    assert [d.offset for d in outcome.dead] == [1]
    assert outcome.dead[0].reason == "fold failed: RuntimeError('a rule failed')"
    assert outcome.writes[sid.encode()].offset == 0
    assert decode_event(orjson.dumps(events[0])).id == outcome.folded[0][0]
