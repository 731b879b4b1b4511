"""The fold's any-thread figures (streams/fold/reads.py) with a fake consumer: the lag and the
positions never stand before a commit marker that ends a partition (the consumer's position is past
it, the last record folded is not), and only served partitions count."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.fold.codec import SessionCodec
from streams.fold.partition import OpenPartition
from streams.fold.reads import Reads
from streams.fold.standby import Standbys
from streams.fold.store import PartitionStore

pytestmark = pytest.mark.unit


class FakeConsumer:
    def __init__(self, highs: dict[int, int], positions: dict[int, int]) -> None:
        self.highs, self.at = highs, positions

    def get_watermark_offsets(self, tp, cached: bool) -> tuple[int, int]:
        return 0, self.highs[tp.partition]

    def position(self, tps):
        for tp in tps:
            tp.offset = self.at.get(tp.partition, -1001)  # OFFSET_INVALID: nothing consumed yet
        return tps


def partition(next_offset: int) -> OpenPartition:
    state = OpenPartition(PartitionStore(Path("/nonexistent"), None))  # never opened: no I/O
    state.next_offset = next_offset
    return state


def test_the_lag_counts_from_the_consumers_position_past_a_final_commit_marker():
    partitions = {0: partition(10), 1: partition(7), 2: partition(3)}
    serving = frozenset({0, 1})
    reads = Reads(partitions, lambda: serving, Standbys("changelog", lambda p: None), SessionCodec(None), 4, 0)
    assert reads.lag() == {}  # no high watermark seen yet: no figure rather than a wrong one
    # Partition 0: the last record folded is 9, offset 10 a transaction's commit marker, high 11.
    reads.refresh_highs(FakeConsumer({0: 11, 1: 9, 2: 50}, {0: 11}), "events")
    assert reads.positions() == {0: 11, 1: 7}
    assert reads.lag() == {0: 0, 1: 2}  # partition 2 is not served: not counted
