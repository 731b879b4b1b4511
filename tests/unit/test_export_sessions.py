"""The pure part of ``sessionctl export --sessions``: folding records as they come, batch after
batch, into packed states; which sessions are active; the rows and the files."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest

from projections.rules import EMPTY_RULES
from projections.session import fold
from schemas.events import decode_event
from schemas.session import decode_state, encode_state, encode_view
from streams.devkit.events import (
    BASE_TIME,
    campaign_click,
    cart_item_added,
    new_session_id,
    page_view,
    public_set,
)
from streams.tools.export.session_files import SESSION_COLUMNS, JsonlSessionWriter, ParquetSessionWriter, session_row
from streams.tools.export.sessions import FoldCounts, MemoryStates, SessionFolder, pack, unpack

pytestmark = pytest.mark.unit

START, END = BASE_TIME + timedelta(seconds=600), BASE_TIME + timedelta(seconds=2400)


def record(event: dict, key: str | None = None) -> tuple[bytes, bytes]:
    return (key or event["subject"]).encode(), orjson.dumps(event)


def folder(**kwargs) -> SessionFolder:
    return SessionFolder(START, END, EMPTY_RULES, MemoryStates(), **kwargs)


def test_pack_keeps_the_active_flag_the_bytes_and_the_activity():
    assert unpack(pack(True, b'{"id":"x"}', 1_700_000_000_123)) == (True, b'{"id":"x"}', 1_700_000_000_123)
    assert unpack(pack(False, b"")) == (False, b"", 0)


def test_only_sessions_with_an_event_in_the_range_come_out_folded_up_to_the_end():
    before, inside, after, edge = (new_session_id() for _ in range(4))
    events = [
        page_view(before, "https://s/?a=1", 0),
        page_view(inside, "https://s/?a=1", 10),
        page_view(inside, "https://s/?b=2", 600),  # at the start: in the range
        campaign_click(inside, 2400, utm_source="late"),  # at the end: not folded
        page_view(after, "https://s/", 2400),
        page_view(edge, "https://s/", 599.999),
        page_view(edge, "https://s/?c=3", 2399.999),
    ]
    f = folder()
    for i in range(0, len(events), 3):  # batch boundaries change nothing
        f.take(record(e) for e in events[i : i + 3])
    documents = {state.id: state for state in f.documents()}
    assert set(documents) == {inside, edge}
    for subject, state in documents.items():
        decoded = [decode_event(orjson.dumps(e)) for e in events if e["subject"] == subject]
        kept = [event for event in decoded if event.time < END]
        assert encode_state(state) == encode_state(fold(kept))
    assert "utm_source" not in documents[inside].namespaces["public"]
    assert f.counts.later == 2 and f.counts.folded == 5


def test_the_states_wait_encoded_and_sorted_by_session():
    a, b = sorted(new_session_id() for _ in range(2))
    f = folder()
    f.take([record(page_view(b, "https://s/", 700)), record(page_view(a, "https://s/", 800))])
    stored = dict(f.states.items())
    assert list(stored) == [a.encode(), b.encode()]
    active, encoded, _ = unpack(stored[a.encode()])
    assert active and decode_state(encoded).id == a
    assert [state.id for state in f.documents()] == [a, b]


def test_records_the_worker_would_not_fold_are_skipped_and_counted():
    sid, other = new_session_id(), new_session_id()
    f = folder()
    folded = f.take(
        [
            (sid.encode(), None),
            (sid.encode(), b"not json"),
            record(page_view(other, "https://s/", 700), key=sid),  # keyed by another session
            record(cart_item_added(sid, "a", 1, 2.5, "BRL", 700)),
            record(cart_item_added(sid, "b", 1, 2.5, "USD", 701)),  # refused: another currency
        ]
    )
    assert folded == 1
    assert f.counts == FoldCounts(skipped=2, mismatched=1, later=0, folded=1, refused=1)
    (state,) = f.documents()
    assert state.id == sid and state.namespaces["cart"]["cartItems"] == {"value": 1}


def test_a_redelivered_event_is_applied_once():
    sid = new_session_id()
    click = campaign_click(sid, 700, utm_source="g")
    f = folder()
    f.take([record(click)])
    f.take([record(click)])
    (state,) = f.documents()
    assert state.meta.event_count == 1


def test_the_session_filter_folds_only_the_chosen_sessions():
    a, b = new_session_id(), new_session_id()
    f = folder(sessions=frozenset({a}))
    f.take([record(page_view(a, "https://s/", 700)), record(page_view(b, "https://s/", 700))])
    assert [state.id for state in f.documents()] == [a]
    assert len(dict(f.states.items())) == 1


def test_an_event_that_would_overgrow_the_session_is_refused_as_the_worker_refuses_it():
    sid = new_session_id()
    events = [
        public_set(sid, {"a": "x"}, 700),
        public_set(sid, {"b": "y" * 5000}, 701),
        public_set(sid, {"c": "z"}, 702),
    ]
    f = folder(max_session_bytes=2000)
    f.take(record(e) for e in events)
    (state,) = f.documents()
    assert len(encode_state(state)) <= 2000 and set(state.namespaces["public"]) == {"a", "c"}
    assert f.counts.folded == 2 and f.counts.refused == 1
    f = folder(max_session_bytes=1_000_000)
    f.take(record(e) for e in events)
    (state,) = f.documents()
    assert set(state.namespaces["public"]) == {"a", "b", "c"}


def test_rows_and_files(tmp_path):
    import duckdb

    sid = new_session_id()
    f = folder()
    f.take(
        [
            record(page_view(sid, "https://s/?utm_source=g&utm_campaign=bf", 700)),
            record(page_view(sid, "https://s/", 800)),
        ]
    )
    (state,) = f.documents()
    row = session_row(state)
    assert tuple(row) == SESSION_COLUMNS
    assert row["first_event_time"] == BASE_TIME + timedelta(seconds=700)
    assert row["last_event_time"] == BASE_TIME + timedelta(seconds=800)
    assert row["event_count"] == 2 and row["utm_source"] == "g" and row["channel"] is None
    assert row["document"].encode() == encode_view(state)

    jsonl = JsonlSessionWriter(tmp_path / "s.jsonl")
    jsonl.write(state)
    jsonl.close()
    assert (tmp_path / "s.jsonl").read_bytes() == encode_view(state) + b"\n"

    parquet = ParquetSessionWriter(tmp_path / "s.parquet", batch_rows=1)
    parquet.write(state)
    parquet.write(state)
    parquet.close()
    path = str(tmp_path / "s.parquet")
    assert duckdb.sql(f"select count(*), max(event_count), any_value(utm_campaign) from '{path}'").fetchall() == [
        (2, 2, "bf")
    ]


@pytest.mark.agent
def test_the_temporary_store_folds_the_same_and_leaves_nothing_behind(tmp_path):
    from streams.tools.export.sessions import DiskStates

    sids = [new_session_id() for _ in range(5)]
    records = [record(page_view(sids[i % 5], f"https://s/?i={i}", 500 + i * 10)) for i in range(40)]
    on_disk, in_memory = DiskStates(str(tmp_path)), MemoryStates()
    try:
        for states in (on_disk, in_memory):
            f = SessionFolder(START, END, EMPTY_RULES, states)
            for i in range(0, len(records), 7):
                f.take(records[i : i + 7])
        assert list(on_disk.items()) == list(in_memory.items())
        assert len(list(on_disk.items())) == 5
    finally:
        on_disk.close()
    assert list(tmp_path.iterdir()) == []
