"""A consume call sorted for the fold (streams/fold/intake.py), with messages built in the test: what
is folded where, where each partition's batch ends, and which records move to their key's partition.
The real broker's side is in tests/integration/test_misplaced_records.py."""

from __future__ import annotations

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_NOT_AVAILABLE

from streams.fold.intake import moves, split
from streams.kafka.partitioner import MOVED_FROM_HEADER, partition_of

pytestmark = pytest.mark.unit

PARTITIONS = 4


class FakeMessage:
    def __init__(self, partition: int, offset: int, key: bytes | None, stamp: int = 0, headers=None, error=None):
        self._partition, self._offset, self._key, self._stamp = partition, offset, key, stamp
        self._headers, self._error = headers, error

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes:
        return b'{"v": %d}' % self._offset

    def timestamp(self) -> tuple[int, int]:
        return (TIMESTAMP_CREATE_TIME, self._stamp) if self._stamp else (TIMESTAMP_NOT_AVAILABLE, 0)

    def headers(self):
        return self._headers

    def error(self):
        return self._error


def key_on(partition: int) -> bytes:
    """A key whose murmur2 partition is ``partition``."""
    n = 0
    while True:
        key = f"session-{n}".encode()
        if partition_of(key, PARTITIONS) == partition:
            return key
        n += 1


def test_records_on_their_keys_partition_are_folded_the_others_set_apart_and_the_ends_cover_both():
    home, other = key_on(1), key_on(2)
    messages = [
        FakeMessage(1, 10, home, stamp=1000),
        FakeMessage(1, 11, other, stamp=1001),  # CRC32 put it on 1; murmur2 says 2
        FakeMessage(1, 12, None, stamp=1002),  # no key: folded here (dead-lettered by the fold)
        FakeMessage(2, 5, other, stamp=0),
        FakeMessage(3, 7, home),  # partition 3 is not served (revoked since the fetch)
    ]
    intake = split(messages, {1, 2}, PARTITIONS)
    assert intake.records == {1: [(home, b'{"v": 10}', 10), (None, b'{"v": 12}', 12)], 2: [(other, b'{"v": 5}', 5)]}
    assert intake.stamps == {1: [1000, 1002], 2: [0]}
    assert intake.ends == {1: 13, 2: 6}  # past the moved record too: the marker goes past it
    assert [m.offset() for m in intake.elsewhere[1]] == [11] and set(intake.elsewhere) == {1}
    assert intake.timestamp(1, 11) == 1001 and intake.timestamp(1, 99) == 0


def test_a_partition_whose_records_all_belong_elsewhere_still_has_its_batch_and_end():
    other = key_on(0)
    intake = split([FakeMessage(3, 40, other), FakeMessage(3, 41, other)], {3}, PARTITIONS)
    assert intake.records == {3: []} and intake.ends == {3: 42}
    moved = moves(intake.elsewhere[3], 3, PARTITIONS)
    assert [(to, key) for to, key, _, _, _ in moved] == [(0, other), (0, other)]


def test_a_moved_record_keeps_its_value_headers_and_timestamp_and_says_where_it_was_read():
    key = key_on(2)
    message = FakeMessage(0, 17, key, stamp=1_700_000_000_123, headers=[("trace", b"abc")])
    [(to, moved_key, value, headers, stamp)] = moves([message], 0, PARTITIONS)
    assert (to, moved_key, value, stamp) == (2, key, b'{"v": 17}', 1_700_000_000_123)
    assert headers == [("trace", b"abc"), (MOVED_FROM_HEADER, b"0@17")]


def test_a_fatal_consumer_error_stops_the_fold_and_others_are_skipped():
    class Error:
        def __init__(self, fatal: bool) -> None:
            self._fatal = fatal

        def fatal(self) -> bool:
            return self._fatal

        def str(self) -> str:
            return "broker gone"

    skipped = split([FakeMessage(0, 0, None, error=Error(False)), FakeMessage(0, 1, key_on(0))], {0}, PARTITIONS)
    assert skipped.records == {0: [(key_on(0), b'{"v": 1}', 1)]}
    with pytest.raises(RuntimeError, match="broker gone"):
        split([FakeMessage(0, 0, None, error=Error(True))], {0}, PARTITIONS)
