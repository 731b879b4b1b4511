"""The expiry sweep (streams/fold/expiry.py) on a real partition store, with a checkpoint that records
what it was asked to publish: expired sessions' tombstones (and sealed locators) go out first, the
store drops them only once published, a slice at a time, and a fenced partition is reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.fold import expiry, locator
from streams.fold.outgoing import Published
from streams.fold.partition import OpenPartition
from streams.fold.store import PartitionStore, StoreMemory, pack_session

pytestmark = pytest.mark.agent

MEMORY = StoreMemory(block_cache_bytes=1 << 20, write_buffer_bytes=1 << 20, memtables_bytes=4 << 20)
LIFETIME_MS = 60_000
NOW_MS = 1_800_000_000_000


class RecordingCheckpoint:
    def __init__(self, fenced: set[int] = frozenset()) -> None:
        self.published: list[dict] = []
        self.fenced = set(fenced)

    def publish(self, outgoing, generation):
        self.published.append(dict(outgoing))
        result = Published(fenced=self.fenced & set(outgoing))
        result.committed = {p: None for p in outgoing if p not in self.fenced}
        return result


def partition_with(path: Path, sessions: dict[bytes, int]) -> OpenPartition:
    store = PartitionStore(path, MEMORY.options())
    store.open()
    store.write_batch(
        {key: pack_session(5, b"{}", locator.append(b"", -1, [3, 5]), at) for key, at in sessions.items()}, 6, 1
    )
    return OpenPartition(store)


def test_expired_sessions_are_published_then_dropped_a_slice_at_a_time(tmp_path):
    old = {f"{n:036d}".encode(): NOW_MS - LIFETIME_MS - 1 for n in range(5)}
    fresh = {f"{n + 100:036d}".encode(): NOW_MS - 1 for n in range(3)}
    state = partition_with(tmp_path / "sessions-0", old | fresh)
    state.cache.update(dict.fromkeys(old, b"cached"))
    checkpoint = RecordingCheckpoint()
    try:
        fenced = expiry.sweep({0: state}, {0}, checkpoint, 1, LIFETIME_MS, scan=4, now_ms=NOW_MS)  # type: ignore[arg-type]
        assert fenced == set()
        [first] = checkpoint.published
        tombstones = [key for key, value, _ in first[0].changelog if value is None]
        assert tombstones == sorted(old)[:4]  # one slice of 4 sessions: all four expired
        sealed = [key for key, value, _ in first[0].changelog if value is not None]
        assert len(sealed) == 4 and first[0].next_source_offset is None  # locators kept, no marker
        assert [state.store.get(key) for key in sorted(old)[:4]] == [None] * 4 and not set(state.cache) & set(
            tombstones
        )
        expiry.sweep({0: state}, {0}, checkpoint, 1, LIFETIME_MS, scan=4, now_ms=NOW_MS)  # type: ignore[arg-type]
        assert [key for key, value, _ in checkpoint.published[1][0].changelog if value is None] == sorted(old)[4:]
        assert all(state.store.get(key) is not None for key in fresh)
    finally:
        state.close()


def test_a_fenced_partition_is_reported_and_keeps_its_sessions(tmp_path):
    old = {f"{n:036d}".encode(): NOW_MS - LIFETIME_MS - 1 for n in range(2)}
    state = partition_with(tmp_path / "sessions-1", old)
    try:
        fenced = expiry.sweep({1: state}, {1}, RecordingCheckpoint({1}), 1, LIFETIME_MS, scan=10, now_ms=NOW_MS)  # type: ignore[arg-type]
        assert fenced == {1}
        assert all(state.store.get(key) is not None for key in old)  # another owner decides now
    finally:
        state.close()
