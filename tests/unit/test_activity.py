"""The explorer's in-memory activity record (``streams.observability.activity``) and how the operations answers of
several workers are merged (``streams.web.explorer``)."""

from __future__ import annotations

import pytest

from streams.observability.activity import Activity
from streams.web.explorer import _merge_operations

pytestmark = pytest.mark.unit


def test_recent_sessions_are_bounded_and_most_recent_first():
    activity = Activity(recent=3)
    activity.written(0, [b"a", b"b"])
    activity.written(1, [b"c"])
    activity.written(0, [b"a"])  # written again: moves to the front
    assert [s["id"] for s in activity.recent()] == ["a", "c", "b"]
    activity.written(1, [b"d", b"e", b"f", b"g"])  # a big batch: only its last three can stay
    assert [s["id"] for s in activity.recent()] == ["g", "f", "e"]
    assert {s["partition"] for s in activity.recent()} == {1}
    assert [s["id"] for s in activity.recent(limit=1)] == ["g"]


def test_the_series_counts_events_and_dead_letters_per_second():
    activity = Activity(seconds=10)
    activity.batch({"navigation.page_viewed": 3, "cart.item_added": 2}, {"": 1}, 6, 0, 0.01)
    activity.batch({"navigation.page_viewed": 4}, {}, 4, 0, 0.01)
    series = activity.series(5)
    assert len(series["folded"]) == len(series["deadLetters"]) == 5
    assert sum(series["folded"]) == 9 and sum(series["deadLetters"]) == 1
    assert series["totals"] == {"folded": 9, "deadLetters": 1}
    later = activity.series(5, now=series["start"] + 60)
    assert sum(later["folded"]) == 0 and later["totals"]["folded"] == 9


def test_merging_adds_the_series_by_second_and_keeps_every_worker():
    one = {"url": "http://a:1", "partitions": [0, 1], "lag": {"0": 2}, "start": 100, "folded": [1, 2, 3],
           "deadLetters": [0, 0, 1], "totals": {"folded": 6, "deadLetters": 1}}  # fmt: skip
    two = {"url": "http://b:1", "partitions": [2], "lag": {"2": 5}, "start": 101, "folded": [10, 20, 30],
           "deadLetters": [0, 0, 0], "totals": {"folded": 60, "deadLetters": 0}}  # fmt: skip
    merged = _merge_operations([one, two], ["http://c:1"], 3)
    assert merged["start"] == 101
    assert merged["folded"] == [2 + 10, 3 + 20, 30]
    assert merged["deadLetters"] == [0, 1, 0]
    assert merged["lag"] == {"0": 2, "2": 5}
    assert merged["totals"] == {"folded": 66, "deadLetters": 1}
    assert [(w["url"], w["reachable"]) for w in merged["workers"]] == [
        ("http://a:1", True), ("http://b:1", True), ("http://c:1", False)
    ]  # fmt: skip
