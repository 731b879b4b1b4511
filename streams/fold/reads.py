"""Reads of the fold's stores from any thread (the HTTP layer's, the timeline's): a served session,
its locator and local history, a standby copy with its staleness, and the lag. The fold loop's
thread owns the stores; these only read them, and a partition that is not served (moving,
restoring) answers :class:`StoreClosed`, which the HTTP layer turns into a 503."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from confluent_kafka import Consumer, TopicPartition

from projections.lifetime import expired
from streams.fold import locator
from streams.fold.codec import SessionCodec
from streams.fold.partition import OpenPartition
from streams.fold.standby import Standbys
from streams.fold.store import StoreClosed, StoredSession, history_key, stored_activity, stored_state, unpack_stored
from streams.kafka.partitioner import partition_of

# How often the loop copies the consumer's high watermarks for lag() (metrics, any thread).
HIGHS_EVERY_S = 0.5


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Reads:
    def __init__(
        self,
        partitions: Mapping[int, OpenPartition],
        serving: Callable[[], frozenset[int]],
        standbys: Standbys,
        codec: SessionCodec,
        partition_count: int,
        lifetime_ms: int,
    ) -> None:
        self._partitions = partitions  # the loop's own map (it changes; this never writes it)
        self._serving = serving
        self._standbys = standbys
        self._codec = codec
        self._partition_count = partition_count
        self._lifetime_ms = lifetime_ms
        self._highs: dict[int, int] = {}  # the event partitions' high watermarks, as last seen
        # The consumer's positions, as last seen: past a transaction's commit marker (which no
        # consumer returns) when the marker ends the partition, where the last record folded is not.
        self._positions: dict[int, int] = {}
        self._highs_at = 0.0

    def partition_of(self, key: bytes) -> int:
        return partition_of(key, self._partition_count)

    def expired(self, activity_ms: int, at_ms: int) -> bool:
        return expired(activity_ms, at_ms, self._lifetime_ms)  # the one lifetime rule

    def read(self, key: bytes) -> bytes | None:
        """The stored, encoded state of a session whose partition this worker serves (None: no
        such session, or it expired). Raises :class:`StoreClosed` when it does not serve it."""
        raw = self._served(key).store.get(key)
        if raw is None or self.expired(stored_activity(raw), now_ms()):
            return None
        return self._codec.opened(stored_state(raw))

    def read_stored(self, key: bytes) -> StoredSession | None:
        """All a session's stored value holds (state, locator, activity); raises :class:`StoreClosed`."""
        raw = self._served(key).store.get(key)
        return None if raw is None else unpack_stored(raw)

    def locate(self, key: bytes) -> list[int]:
        """The offsets of every event folded into a session (its sealed locators, then the one in
        its value), in log order; raises :class:`StoreClosed`."""
        state = self._served(key)
        found: list[int] = []
        for _, chunk in state.store.scan(locator.chunk_prefix(key)):
            found.extend(locator.offsets(chunk))
        raw = state.store.get(key)
        if raw is not None:
            found.extend(locator.offsets(unpack_stored(raw).locator))
        return found

    def history_get(self, key: bytes, offsets: list[int]) -> dict[int, bytes]:
        """The records of ``offsets`` that the local history store holds (none when it is off)."""
        history = self._served(key).history
        if history is None:
            return {}
        found = {}
        for offset in offsets:
            value = history.get(history_key(key, offset))
            if value is not None:
                found[offset] = value
        return found

    def history_put(self, key: bytes, records: dict[int, bytes]) -> None:
        """Keep records read from Kafka for the next reader of the same session (a cache fill)."""
        history = self._served(key).history
        if history is not None and records:
            history.put_many((history_key(key, offset), value) for offset, value in records.items())

    def read_standby(self, key: bytes) -> tuple[bytes | None, int]:
        """A session from this worker's standby copy, and how stale that copy may be (ms since it
        last had everything its owner had appended). Raises :class:`StoreClosed` when this worker
        keeps no standby of the session's partition, or the copy never caught up."""
        partition = self.partition_of(key)
        state = self._partitions.get(partition)
        caught_up = self._standbys.caught_up_at(partition)
        if state is None or caught_up is None:
            raise StoreClosed(f"no standby of partition {partition}")
        staleness_ms = max(0, int((time.time() - caught_up) * 1000))
        raw = state.store.get(key)
        if raw is None or self.expired(stored_activity(raw), now_ms()):
            return None, staleness_ms
        return self._codec.opened(stored_state(raw)), staleness_ms

    def _served(self, key: bytes) -> OpenPartition:
        partition = self.partition_of(key)
        state = self._partitions.get(partition)
        if partition not in self._serving() or state is None:
            raise StoreClosed(f"partition {partition}")
        return state

    def lag(self) -> dict[int, int]:
        """Events not folded yet, per served partition (from the consumer's cached high watermarks,
        which the loop's own thread copies every ``HIGHS_EVERY_S``: any thread may call this; a
        call into the consumer from another thread would wait for the loop's ``consume``)."""
        highs = self._highs
        lags = {}
        for partition, folded in self.positions().items():
            high = highs.get(partition, -1)
            if high >= 0:
                lags[partition] = max(0, high - folded)
        return lags

    def positions(self) -> dict[int, int]:
        """The next event offset to fold, per served partition (any thread)."""
        found = {}
        for partition in self._serving():
            state = self._partitions.get(partition)
            if state is not None:
                found[partition] = max(state.next_offset, self._positions.get(partition, -1))
        return found

    def refresh_highs(self, consumer: Consumer, topic: str) -> None:
        """The loop's thread: copy the consumer's cached high watermarks now and then."""
        now = time.monotonic()
        if now - self._highs_at < HIGHS_EVERY_S:
            return
        self._highs_at = now
        highs = {}
        serving = sorted(self._serving())
        for partition in serving:
            try:
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
            except Exception:  # noqa: BLE001 - no figure yet
                continue
            highs[partition] = high
        self._highs = highs
        # Called between batches: everything consumed is folded, so the position is the fold's
        # (a rewound batch sought back to the store's offset).
        try:
            at = consumer.position([TopicPartition(topic, p) for p in serving])
        except Exception:  # noqa: BLE001 - no figure yet
            return
        self._positions = {tp.partition: tp.offset for tp in at if tp.offset >= 0}
