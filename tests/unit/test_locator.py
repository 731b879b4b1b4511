"""A session's locator (the offsets of its events) and the stored value that carries it."""

from __future__ import annotations

from datetime import datetime

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.session import decode_state
from streams.devkit.events import new_session_id, page_view
from streams.devkit.paths import sample_rules
from streams.fold import locator
from streams.fold.batch import Stored, fold_batch
from streams.fold.store import pack_offset, pack_session, stored_activity, stored_state, unpack_stored

pytestmark = pytest.mark.unit

ascending = st.lists(st.integers(min_value=0, max_value=2**40), unique=True).map(sorted)


@given(ascending, st.integers(min_value=0, max_value=40))
def test_appending_in_parts_gives_back_every_offset(offsets: list[int], cut: int) -> None:
    head, tail = offsets[:cut], offsets[cut:]
    packed = locator.append(b"", -1, head)
    packed = locator.append(packed, head[-1] if head else -1, tail)
    assert locator.offsets(packed) == offsets


def test_neighbouring_offsets_take_a_byte_each() -> None:
    packed = locator.append(b"", -1, range(1_000_000, 1_000_100))
    assert len(packed) == 3 + 99  # the first offset as it is, then gaps of 1


def test_a_truncated_locator_is_refused() -> None:
    packed = locator.append(b"", -1, [300])
    with pytest.raises(ValueError, match="ends inside"):
        locator.offsets(packed[:-1])


def test_offsets_must_grow() -> None:
    with pytest.raises(ValueError, match="must grow"):
        locator.append(locator.append(b"", -1, [10]), 10, [9])


def test_stored_value_round_trip_and_older_values() -> None:
    raw = pack_session(41, b'{"id":"x"}', locator.append(b"", -1, [3, 41]), 1_700_000_000_000)
    stored = unpack_stored(raw)
    assert (stored.offset, stored.activity_ms, locator.offsets(stored.locator), stored.encoded) == (
        41, 1_700_000_000_000, [3, 41], b'{"id":"x"}',
    )  # fmt: skip
    assert stored_state(raw) == b'{"id":"x"}'
    assert stored_activity(raw) == 1_700_000_000_000
    older = pack_offset(7) + b'{"id":"y"}'  # written before the locator existed
    assert unpack_stored(older) == (7, 0, b"", b'{"id":"y"}')
    assert stored_state(older) == b'{"id":"y"}'
    assert stored_activity(older) == 0


def test_fold_batch_appends_the_folded_offsets_and_seals_a_long_locator(monkeypatch: pytest.MonkeyPatch) -> None:
    sid = new_session_id()
    key = sid.encode()
    events = [page_view(sid, url=f"https://shop.example/p/{n}") for n in range(40)]
    records = [(key, orjson.dumps(e), 1000 + 7 * n) for n, e in enumerate(events)]
    stores: dict[bytes, bytes] = {}
    chunks: dict[bytes, bytes] = {}

    def read(k: bytes) -> Stored | None:
        raw = stores.get(k)
        if raw is None:
            return None
        value = unpack_stored(raw)
        return Stored(value.offset, decode_state(value.encoded), value.locator)

    monkeypatch.setattr(locator, "LOCATOR_MAX_BYTES", 20)  # ~18 offsets: a seal within 40 events
    for start in range(0, 40, 6):
        outcome = fold_batch(records[start : start + 6], read, sample_rules(), 256 * 1024)
        written = outcome.writes[key]
        stores[key] = pack_session(written.offset, written.encoded, written.locator, written.activity_ms)
        chunks.update(outcome.sealed)
    assert chunks, "the locator was never sealed"
    assert all(k.startswith(locator.chunk_prefix(key)) for k in chunks)
    found = [o for k in sorted(chunks) for o in locator.offsets(chunks[k])]
    found += locator.offsets(unpack_stored(stores[key]).locator)
    assert found == [offset for _, _, offset in records]
    last_time = datetime.fromisoformat(events[-1]["time"].replace("Z", "+00:00"))
    assert unpack_stored(stores[key]).activity_ms == int(last_time.timestamp() * 1000)
