"""The partition store on real rocksdict files: one atomic write per batch, raw restores, reopen."""

from __future__ import annotations

import orjson
import pytest

from schemas.session import decode_state
from streams.devkit.events import new_session_id, page_view
from streams.devkit.paths import sample_rules
from streams.fold.batch import Stored, fold_batch
from streams.fold.store import (
    CHANGELOG_OFFSET,
    SOURCE_OFFSET,
    PartitionStore,
    StoreClosed,
    StoreMemory,
    pack_offset,
    pack_session,
    unpack_session,
)

pytestmark = pytest.mark.agent

MEMORY = StoreMemory(block_cache_bytes=1 << 20, write_buffer_bytes=1 << 20, memtables_bytes=4 << 20)


@pytest.fixture
def store(tmp_path):
    store = PartitionStore(tmp_path / "sessions-0", MEMORY.options())
    store.open()
    yield store
    store.close()


def test_a_folded_batch_and_its_offsets_survive_a_reopen(store):
    sid = new_session_id()
    events = [page_view(sid, f"https://s/?n={n}", n) for n in range(3)]
    records = [(sid.encode(), orjson.dumps(e), 10 + n) for n, e in enumerate(events)]

    def read(key):
        raw = store.get(key)
        if raw is None:
            return None
        offset, encoded = unpack_session(raw)
        return Stored(offset, decode_state(encoded))

    outcome = fold_batch(records, read, sample_rules(), 256 * 1024)
    store.write_batch({k: pack_session(w.offset, w.encoded) for k, w in outcome.writes.items()}, 13, 7)
    store.close()
    with pytest.raises(StoreClosed):
        store.get(sid.encode())
    store.open()
    assert store.source_offset == 13 and store.changelog_offset == 7
    offset, encoded = unpack_session(store.get(sid.encode()))
    assert offset == 12
    assert decode_state(encoded).meta.event_count == 3


def test_a_restore_copies_raw_records_and_deletes_tombstones(store):
    store.write_batch({b"gone": pack_session(1, b"{}")}, 2, 1)
    store.restore([(b"kept", pack_session(5, b'{"x":1}')), (b"gone", None), (SOURCE_OFFSET, pack_offset(9))], 40)
    assert store.get(b"gone") is None
    assert unpack_session(store.get(b"kept")) == (5, b'{"x":1}')
    assert store.source_offset == 9
    assert store.changelog_offset == 40
    assert store.get(CHANGELOG_OFFSET) == pack_offset(40)


def test_a_fresh_store_stands_nowhere(store):
    assert store.source_offset is None and store.changelog_offset is None


def test_wipe_empties_the_store(store):
    store.write_batch({b"k": pack_session(0, b"{}")}, 1, 1)
    store.wipe()
    assert store.get(b"k") is None and store.source_offset is None
