"""The test fault points (streams/fold/faults.py) decide when to act without sleeping for real where
a test can tell: "hold" waits for the group to move on (the fence), once; others pass."""

from __future__ import annotations

import pytest

from streams.fold.faults import FaultPoints

pytestmark = pytest.mark.unit


def test_hold_waits_until_the_fence_moves_then_never_again():
    generations = iter([3, 3, 3, None])  # the group rebalances on the fourth look
    looked: list[int | None] = []

    def fence() -> int | None:
        looked.append(value := next(generations, None))
        return value

    points = FaultPoints("hold:30", fence)
    points.reach("before_flush", 1, 3)  # not its point: no wait
    assert looked == []
    points.reach("before_produce", 1, 3)
    assert looked == [3, 3, 3, None]
    points.reach("before_produce", 2, 3)  # the first batch only
    assert looked == [3, 3, 3, None]


def test_no_spec_or_another_point_does_nothing():
    FaultPoints("", lambda: 1).reach("before_produce", 9, 1)
    FaultPoints("after_write:5", lambda: 1).reach("after_write", 4, 1)  # before the 5th batch: alive
