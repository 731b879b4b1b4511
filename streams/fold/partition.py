"""One partition as the fold loop holds it: its open stores, its cache of hot sessions and where its
fold stands. The loop, the checkpoint and the reads share it; only the loop's thread writes it."""

from __future__ import annotations

from dataclasses import dataclass, field

from streams.fold.store import PartitionStore


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
