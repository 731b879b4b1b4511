"""The checkpoint's fence decisions (streams/fold/checkpoint.py) with fake producers: a broker's
transaction coordinator reduced to an epoch per transactional id and a log of committed records.
The real broker's side is in tests/integration/test_paused_owner.py."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from streams.fold.checkpoint import Checkpoint
from streams.fold.outgoing import Outgoing, Target

pytestmark = pytest.mark.unit


class FakeBroker:
    def __init__(self) -> None:
        self.epochs: dict[str, int] = {}
        self.committed: list[tuple[str, int, bytes | None]] = []  # (transactional id, partition, key)
        self.offsets = 0

    def take_over(self, transactional_id: str) -> int:
        """init_transactions: a new epoch; older producers of the id are fenced."""
        self.epochs[transactional_id] = self.epochs.get(transactional_id, 0) + 1
        return self.epochs[transactional_id]


class FakeMessage:
    def __init__(self, partition: int, offset: int) -> None:
        self._partition, self._offset = partition, offset

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


def fenced() -> KafkaException:
    return KafkaException(KafkaError(KafkaError._FENCED, "fenced by a newer instance", fatal=True))


class FakeProducer:
    def __init__(self, broker: FakeBroker, config: dict[str, Any]) -> None:
        self.broker, self.id = broker, str(config["transactional.id"])
        self.epoch = 0
        self.pending: list[tuple[int, bytes | None, Any]] = []
        self.aborted = 0

    def _check(self) -> None:
        if self.broker.epochs.get(self.id) != self.epoch:
            raise fenced()

    def init_transactions(self, timeout: float) -> None:
        self.epoch = self.broker.take_over(self.id)

    def begin_transaction(self) -> None:
        self._check()

    def produce(self, topic: str, value: bytes | None, key: bytes | None, partition: int, **kwargs: Any) -> None:
        self.pending.append((partition, key, kwargs.get("on_delivery")))

    def flush(self, timeout: float) -> int:
        self._check()  # AddPartitionsToTxn: refused to a fenced producer
        for partition, _, on_delivery in self.pending:
            self.broker.offsets += 1
            if on_delivery is not None:
                on_delivery(None, FakeMessage(partition, self.broker.offsets))
        return 0

    def commit_transaction(self, timeout: float) -> None:
        self._check()
        self.broker.committed.extend((self.id, p, key) for p, key, _ in self.pending)
        self.pending = []

    def abort_transaction(self, timeout: float) -> None:
        self._check()
        self.pending, self.aborted = [], self.aborted + 1


TARGET = Target("fake:9092", "events", "app-sessions-state-changelog", "events.dlq", "w1")


def checkpoint(broker: FakeBroker, generation: list[int | None], writer: str = "w1") -> Checkpoint:
    return Checkpoint(
        Target(TARGET.bootstrap, TARGET.events_topic, TARGET.changelog_topic, TARGET.dlq_topic, writer),
        fence=lambda: generation[0],
        give_up=lambda waited: True,
        fault=lambda point: None,
        make_producer=lambda config: FakeProducer(broker, config),  # type: ignore[arg-type,return-value]
    )


def batch(*keys: bytes, next_offset: int = 10) -> Outgoing:
    return Outgoing(changelog=[(key, b"state", []) for key in keys], next_source_offset=next_offset)


def test_a_new_owner_taking_the_id_over_fences_the_old_one_off_the_changelog():
    broker = FakeBroker()
    old, new = checkpoint(broker, [3]), checkpoint(broker, [4], "w2")
    assert old.open_many([0, 1], lambda: False) == {0, 1}
    assert new.open(0, lambda: False)  # partition 0 moved while the old owner was paused

    late = old.publish({0: batch(b"s1"), 1: batch(b"s2")}, 3)
    assert late.fenced == {0}  # refused: not committed, not to be written to the store
    assert set(late.committed) == {1}  # still its own: written as usual
    assert ("app-sessions-state-changelog.0", 0, b"s1") not in broker.committed

    on = new.publish({0: batch(b"s1", next_offset=20)}, 4)
    assert set(on.committed) == {0} and not on.fenced
    assert on.committed[0] is not None  # the marker's changelog offset, for the store


def test_a_batch_committed_before_the_takeover_is_the_new_owners_starting_point():
    broker = FakeBroker()
    old = checkpoint(broker, [3])
    old.open(0, lambda: False)
    assert set(old.publish({0: batch(b"s1")}, 3).committed) == {0}
    new = checkpoint(broker, [4], "w2")
    new.open(0, lambda: False)
    assert [key for _, _, key in broker.committed] == [b"s1", b"\x00source-offset"]
    assert old.publish({0: batch(b"s2")}, 3).fenced == {0}


def test_a_group_that_moved_on_aborts_every_transaction_of_the_batch():
    broker = FakeBroker()
    generation: list[int | None] = [3]
    worker = checkpoint(broker, generation)
    worker.open_many([0, 1], lambda: False)
    generation[0] = None  # the consumer noticed: a rejoin is pending
    result = worker.publish({0: batch(b"s1"), 1: batch(b"s2")}, 3)
    assert result.moved and result.failed == {0, 1} and not result.committed
    assert broker.committed == []
    generation[0] = 3
    assert set(worker.publish({0: batch(b"s1"), 1: batch(b"s2")}, 3).committed) == {0, 1}


def test_without_transactions_only_the_local_fence_speaks():
    # The fallback for brokers without transactions (issue 22's window stays open there).
    produced: list[bytes | None] = []

    class Shared(FakeProducer):
        def __init__(self, config: dict[str, Any]) -> None:
            super().__init__(FakeBroker(), {"transactional.id": "-"})

        def list_topics(self, topic: str, timeout: float) -> None:
            return None

        def flush(self, timeout: float) -> int:
            for partition, key, on_delivery in self.pending:
                produced.append(key)
                if on_delivery is not None:
                    on_delivery(None, FakeMessage(partition, len(produced)))
            self.pending = []
            return 0

    generation: list[int | None] = [3]
    worker = Checkpoint(
        Target("fake:9092", "events", "changelog", "dlq", "w1", transactional=False),
        fence=lambda: generation[0], give_up=lambda waited: True, fault=lambda point: None,
        make_producer=Shared,  # type: ignore[arg-type]
    )  # fmt: skip
    worker.start()
    generation[0] = None
    result = worker.publish({0: batch(b"s1")}, 3)
    assert result.moved and not result.committed
    assert produced == [b"s1", b"\x00source-offset"]  # flushed before the fence spoke: the hole


def stuck_worker(
    broker: FakeBroker, stuck: type[FakeProducer], then: type[FakeProducer] = FakeProducer
) -> tuple[Checkpoint, list[FakeProducer]]:
    """A checkpoint whose first producer is ``stuck`` and later ones ``then``; the loop never asks
    it to give up (no command waiting)."""
    made: list[FakeProducer] = []

    def make(config: dict[str, Any]) -> FakeProducer:
        made.append((stuck if not made else then)(broker, config))
        return made[-1]

    worker = Checkpoint(
        TARGET, fence=lambda: 3, give_up=lambda waited: False, fault=lambda point: None,
        make_producer=make,  # type: ignore[arg-type]
    )  # fmt: skip
    assert worker.open(0, lambda: False)
    return worker, made


class NeverAcknowledged(FakeProducer):
    def flush(self, timeout: float) -> int:
        return len(self.pending)  # a broker restart later, still nothing acknowledged


class CommitTimesOut(FakeProducer):
    def commit_transaction(self, timeout: float) -> None:
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "Timed out waiting for operation to finish"))


@pytest.mark.parametrize("stuck", [NeverAcknowledged, CommitTimesOut])
def test_a_stuck_producer_is_replaced_and_the_batch_goes_through_with_the_new_one(stuck: type[FakeProducer]):
    broker = FakeBroker()
    worker, made = stuck_worker(broker, stuck)
    first = worker.publish({0: batch(b"s1")}, 3)
    assert first.failed == {0} and not first.committed and not first.fenced  # folded again by the loop
    # A new producer of the same transactional id: its epoch fences the stuck one, whose records never
    # reach a reader (the broker aborts its open transaction).
    assert len(made) == 2 and made[1].id == made[0].id and made[1].epoch == made[0].epoch + 1
    assert broker.committed == []
    again = worker.publish({0: batch(b"s1")}, 3)
    assert set(again.committed) == {0}
    assert [key for _, _, key in broker.committed] == [b"s1", b"\x00source-offset"]


def test_a_stuck_producer_is_not_replaced_once_the_group_moved_on():
    broker = FakeBroker()
    generation: list[int | None] = [3]
    made: list[FakeProducer] = []

    class StuckAsTheGroupMovesOn(NeverAcknowledged):
        def flush(self, timeout: float) -> int:
            generation[0] = None  # the consumer noticed a rebalance while the batch waited
            return super().flush(timeout)

    def make(config: dict[str, Any]) -> FakeProducer:
        made.append(StuckAsTheGroupMovesOn(broker, config))
        return made[-1]

    worker = Checkpoint(
        TARGET, fence=lambda: generation[0], give_up=lambda waited: False, fault=lambda point: None,
        make_producer=make,  # type: ignore[arg-type]
    )  # fmt: skip
    assert worker.open(0, lambda: False)
    result = worker.publish({0: batch(b"s1")}, 3)
    assert 0 in result.failed and not result.committed
    # No new epoch from this worker: it would fence the partition's next owner.
    assert len(made) == 1 and broker.epochs[made[0].id] == 1


def invalid_state() -> KafkaException:
    # What a soak's commit got after all three brokers restarted: fatal, and not a fence.
    return KafkaException(
        KafkaError(KafkaError.INVALID_TXN_STATE, "Failed to end transaction: invalid state", fatal=True)
    )


class CommitFailsFatally(FakeProducer):
    def commit_transaction(self, timeout: float) -> None:
        raise invalid_state()

    def abort_transaction(self, timeout: float) -> None:
        raise invalid_state()  # a producer in a fatal state refuses everything


class RefusedThenAbortTimesOut(FakeProducer):
    """Its records refused (an abortable error), then its abort never goes through."""

    def flush(self, timeout: float) -> int:
        for partition, _, on_delivery in self.pending:
            if on_delivery is not None:
                on_delivery(KafkaError(KafkaError._PURGE_QUEUE, "Purged in queue"), FakeMessage(partition, -1))
        return 0

    def abort_transaction(self, timeout: float) -> None:
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "Timed out waiting for operation to finish"))


@pytest.mark.parametrize("failing", [CommitFailsFatally, RefusedThenAbortTimesOut])
def test_a_producer_that_failed_is_replaced_and_the_batch_goes_through_with_the_new_one(
    failing: type[FakeProducer], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr("streams.fold.checkpoint.time.sleep", lambda s: None)  # the retry's pause
    broker = FakeBroker()
    worker, made = stuck_worker(broker, failing)
    first = worker.publish({0: batch(b"s1")}, 3)
    assert first.failed == {0} and not first.committed and not first.fenced  # folded again by the loop
    assert len(made) == 2 and made[1].id == made[0].id and made[1].epoch == made[0].epoch + 1
    assert made[0].aborted == 0 and broker.committed == []
    again = worker.publish({0: batch(b"s1")}, 3)
    assert set(again.committed) == {0}
    assert [key for _, _, key in broker.committed] == [b"s1", b"\x00source-offset"]


def test_a_fatal_error_that_every_new_producer_meets_stops_the_loop():
    broker = FakeBroker()
    worker, made = stuck_worker(broker, CommitFailsFatally, then=CommitFailsFatally)
    for _ in range(3):  # each batch: refused, a new producer
        assert worker.publish({0: batch(b"s1")}, 3).failed == {0}
    with pytest.raises(RuntimeError, match="failed 4 times in a row"):
        worker.publish({0: batch(b"s1")}, 3)
    assert len(made) == 4 and broker.committed == []
