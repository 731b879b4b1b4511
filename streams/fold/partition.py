"""One partition as the fold loop holds it: its open stores, its cache of hot sessions and where its
fold stands. The loop, the checkpoint and the reads share it; only the loop's thread writes it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from schemas.session import decode_state
from streams.fold.batch import Stored
from streams.fold.store import PartitionStore, history_key, unpack_stored

# A batch's source records of one partition: (key, value, offset).
SourceRecords = list[tuple[bytes | None, bytes | None, int]]


@dataclass
class OpenPartition:
    store: PartitionStore
    history: PartitionStore | None = None
    cache: dict[bytes, bytes] = field(default_factory=dict)  # session key -> its stored bytes
    next_offset: int = 0
    committed: int = -1
    sweep_from: bytes = b""  # where the next sweep of this partition's sessions goes on

    def close(self) -> None:
        self.store.close()
        if self.history is not None:
            self.history.close()

    def write(
        self,
        records: SourceRecords,
        sessions: Mapping[bytes, bytes | None],
        next_source_offset: int,
        next_changelog_offset: int,
    ) -> None:
        """A batch into the stores, after its changelog is committed (``streams.fold.checkpoint``)."""
        if self.history is not None:
            # Before the states: a crash in between leaves records no locator names yet (the replay
            # puts them again), never a located record missing (only a slower read).
            self.history.put_many((history_key(k, o), v) for k, v, o in records if k is not None and v is not None)
        self.store.write_batch(sessions, next_source_offset, next_changelog_offset)  # None deletes (erased)
        self.next_offset = next_source_offset

    def reader(self, opened: Callable[[bytes], bytes]) -> Callable[[bytes], Stored | None]:
        """The fold's read of a session: the cache, else the store; ``opened`` opens its sealed values."""
        cache, store = self.cache, self.store

        def read(key: bytes) -> Stored | None:
            raw = cache.get(key)
            if raw is None:
                raw = store.get(key)
                if raw is None:
                    return None
            stored = unpack_stored(raw)
            return Stored(stored.offset, decode_state(opened(stored.encoded)), stored.locator, stored.activity_ms)

        return read

    def remember(self, packed: Mapping[bytes, bytes | None], bound: int) -> None:
        """Keep a batch's sessions for the next batches (at most ``bound``), as the stored bytes:
        decoded states would be millions of objects for the garbage collector to walk, and its full
        passes (250 ms at 20,000 sessions) cost more than decoding (docs/engine.md)."""
        cache = self.cache
        for key, value in packed.items():
            cache.pop(key, None)
            if value is not None:
                cache[key] = value
        if len(cache) > bound:
            for key in list(cache)[: len(cache) - bound // 2]:  # the least recently written half goes
                del cache[key]
