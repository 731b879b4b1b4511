"""The checkpoint: how a folded batch leaves the loop. Per partition, the changelog records (one per
changed session), the batch's marker and its dead letters go to Kafka; once Kafka acknowledged them
and nobody else can have taken the partition, the store gets the batch in one ``WriteBatch``.

**The fence.** The changelog is shared: whatever it holds is what every restore, standby copy and
rebuilt store serves. So a worker that lost a partition without knowing it yet (paused past the
group's session timeout, it wakes up in the middle of a batch) must not be able to append to it.
Each served partition has its own *transactional* producer, ``transactional.id`` =
``<changelog topic>.<partition>`` (the changelog's name holds the app id and the table
generation), as Kafka Streams' exactly-once v1 does:

- a new owner calls ``init_transactions`` before it restores the partition: the broker bumps the
  id's epoch, aborts whatever transaction the old owner left open, and from then on refuses the old
  producer (``_FENCED`` / ``PRODUCER_FENCED`` / ``INVALID_PRODUCER_EPOCH``);
- each batch's records for a partition (states, marker, dead letters) are one transaction,
  committed only after the local fence (the group generation) still holds;
- every reader of the changelog reads ``read_committed``: an aborted batch is never restored,
  tailed or rebuilt from, so a late batch of a fenced owner is invisible, not merely overwritten.

A fenced commit means the partition is someone else's: its batch is dropped (nothing reaches the
store, nobody is answered) and the loop lets go of the partition. A transaction commits *before* the
store write, so the store is never ahead of the changelog, as before.

With ``transactional`` off (brokers without transactions) the partitions share one idempotent
producer and the local fence alone guards the changelog: a paused owner's last batch can then reach
it (issue 22). ``docs/engine.md`` has the measured cost of both.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from streams.fold.changelog import marker
from streams.fold.outgoing import Outgoing, Published, Target
from streams.kafka.clients import BROKER_GOING_OR_COMING, client_config
from streams.kafka.producer import KAFKA_CLIENT_LOG
from streams.kafka.producer_calls import attempt, flushed, send
from streams.kafka.reaper import discard

log = logging.getLogger(__name__)

Fence = Callable[[], int | None]  # the control plane's group generation; None while it must rejoin
T = TypeVar("T")
# The errors that say another producer took the transactional id over: the partition moved.
FENCED_CODES = frozenset({KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH})
# How long an open transaction may last before the broker aborts it (and fences its producer): past
# a broker outage a batch waits out (message.timeout.ms is infinite), within Kafka's default
# ceiling (transaction.max.timeout.ms, 15 min). A silent owner's open transaction holds the
# partition's read_committed readers back until then, or until a new owner's init_transactions
# aborts it, which happens at once on every takeover.
TRANSACTION_TIMEOUT_MS = 300_000
INIT_TIMEOUT_S = 10.0
# A partition's producer whose batch Kafka has not acknowledged, or whose commit has not gone
# through, for this long is replaced by a new one of the same transactional id (which aborts what the
# old one left open), and the batch is folded again. A soak saw two workers' producers stay so for
# minutes after a broker restart, every broker up again: a flush that never ended on one, commits
# timing out every 5 s on another. The loop folded nothing meanwhile.
STUCK_AFTER_S = 30.0
# A producer that raised a fatal error other than a fence (librdkafka's word: the instance is of no
# more use) is replaced the same way, as Kafka's client documentation says to; a soak saw
# INVALID_TXN_STATE end a commit after all three brokers restarted, and the worker exit. So many such
# replacements in a row, with no commit between, and the error is taken as lasting: the loop stops
# (the worker exits, its partitions move).
FATAL_REPLACEMENTS = 3


class Checkpoint:
    """The producers of one table generation's changelog; the loop's thread only.

    ``give_up(waited_s)`` says when to stop waiting for Kafka (stopping, or a command has waited);
    ``fault(point)`` is the loop's fault injection (testing only)."""

    def __init__(
        self,
        target: Target,
        fence: Fence,
        give_up: Callable[[float], bool],
        fault: Callable[[str], None],
        make_producer: Callable[[dict[str, object]], Producer] = Producer,  # a fake one in unit tests
    ) -> None:
        self.target = target
        self._make_producer = make_producer
        self.fence = fence
        self._give_up = give_up
        self._fault = fault
        self._producers: dict[int, Producer] = {}  # transactional: one per served partition
        self._shared: Producer | None = None  # not transactional: one for all
        self._in_transaction: set[int] = set()  # begun, neither committed nor aborted yet
        self._stuck: set[int] = set()  # partitions whose producer this batch found stuck: replaced after it
        self._fatal_in_a_row: dict[int, int] = {}  # fatal errors since the partition's last commit
        self._pool: ThreadPoolExecutor | None = None  # for the partitions' blocking calls at once

    def _config(self, client_id: str) -> dict[str, object]:
        return {
            **client_config(self.target.bootstrap),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 2,
            "compression.type": "lz4",
            # Infinite: a record waits out a broker outage instead of failing the batch (with a
            # transaction, the broker's transaction timeout bounds it: the batch is then folded again).
            "message.timeout.ms": 0,
            "queue.buffering.max.messages": 1_000_000,
            "client.id": client_id,
            "logger": KAFKA_CLIENT_LOG,
        }

    def start(self) -> None:
        """Not transactional: the shared producer, and the changelog's metadata now (the first
        event folded is not slower than the rest)."""
        if self.target.transactional or self._shared is not None:
            return
        self._shared = self._make_producer(self._config(f"{self.target.writer_id}-changelog"))
        try:
            self._shared.list_topics(self.target.changelog_topic, timeout=5)
        except Exception as exc:  # noqa: BLE001 - the loop waits for the broker anyway
            log.info("changelog metadata not available yet: %s", exc)

    def open_many(self, partitions: Iterable[int], should_stop: Callable[[], bool]) -> set[int]:
        """:meth:`open` for several partitions at once (each waits on the broker's transaction
        coordinator, 0.05 to 0.6 s when it aborts what an earlier owner left open: a failover
        would otherwise pay that per partition). The partitions opened."""
        wanted = [p for p in partitions if p not in self._producers]
        if not self.target.transactional or len(wanted) < 2:
            return {p for p in partitions if self.open(p, should_stop)}
        producers = dict(zip(wanted, self._on_each(wanted, lambda p: self._init(p, should_stop)), strict=True))
        self._producers.update({p: producer for p, producer in producers.items() if producer is not None})
        return {p for p in partitions if p in self._producers}

    def open(self, partition: int, should_stop: Callable[[], bool]) -> bool:
        """Become the partition's only writer, before restoring it: a new producer epoch for its
        transactional id fences every earlier owner and aborts what it left open. False when
        ``should_stop`` cut the wait for the broker short (the partition is not served then)."""
        if not self.target.transactional or partition in self._producers:
            return True
        producer = self._init(partition, should_stop)
        if producer is None:
            return False
        self._producers[partition] = producer
        return True

    def _init(self, partition: int, should_stop: Callable[[], bool]) -> Producer | None:
        """A producer of the partition's transactional id, its epoch taken (any thread)."""
        transactional_id = f"{self.target.changelog_topic}.{partition}"
        producer = self._make_producer(
            {
                **self._config(f"{self.target.writer_id}-changelog-{partition}"),
                "transactional.id": transactional_id,
                "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS,
            }
        )
        started = time.monotonic()
        while True:
            try:
                producer.init_transactions(INIT_TIMEOUT_S)
                break
            except KafkaException as exc:
                error = exc.args[0]
                waiting = error.retriable() or error.code() in BROKER_GOING_OR_COMING  # a broker's death
                if error.fatal() or not waiting or should_stop():
                    log.warning("partition %d: the changelog's producer did not start: %s", partition, error.str())
                    discard(producer, f"the changelog producer of partition {partition}")
                    return None
                log.info("partition %d: waiting for the transaction coordinator: %s", partition, error.str())
        log.info("partition %d: %s taken over in %.2fs", partition, transactional_id, time.monotonic() - started)
        return producer

    def close(self, partition: int) -> None:
        """Let go of a partition's producer (revoked, fenced or switched away)."""
        producer = self._producers.pop(partition, None)
        if producer is not None:
            _quietly(lambda: producer.flush(1.0))
            discard(producer, f"the changelog producer of partition {partition}")

    def close_all(self) -> None:
        for partition in list(self._producers):
            self.close(partition)
        if self._shared is not None:
            _quietly(lambda: self._shared.flush(5.0) if self._shared is not None else 0)
            discard(self._shared, "the shared changelog producer")
            self._shared = None
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    def fence_holds(self, generation: int | None) -> bool:
        """The local fence: False once the group moved on without us (a session timeout)."""
        current = self.fence()
        if current is not None and current == generation:
            return True
        log.warning("group generation %s, assigned under %s: not writing this batch", current, generation)
        return False

    def publish(self, outgoing: Mapping[int, Outgoing], generation: int | None) -> Published:
        """Produce each partition's records, wait for Kafka, check the fence, commit."""
        if self.target.transactional:
            return self._publish_transactions(outgoing, generation)
        return self._publish_shared(outgoing, generation)

    # -- transactional: one transaction per partition ----------------------------------------------

    def _publish_transactions(self, outgoing: Mapping[int, Outgoing], generation: int | None) -> Published:
        result = Published()
        markers: dict[int, int] = {}
        failures: dict[int, list[str]] = {}
        open_: list[int] = []
        for partition, out in outgoing.items():
            producer = self._producers.get(partition)
            if producer is None and self._reopen(partition, generation):  # its replacement did not start
                producer = self._producers[partition]
            if producer is None:
                result.failed.add(partition)
                continue
            if partition in self._in_transaction:  # left open by a batch that gave up: abort it first
                self._abort(partition, result)
                if partition in result.fenced:
                    continue
                if partition in self._stuck:  # the abort did not go through either
                    self._stuck.discard(partition)
                    self._replace(partition, generation)
                    producer = self._producers.get(partition)
                    if producer is None:
                        result.failed.add(partition)
                        continue
            try:
                producer.begin_transaction()
                self._in_transaction.add(partition)
                open_.append(partition)
                self._send_all(producer, partition, out, generation, markers, failures.setdefault(partition, []))
            except KafkaException as exc:
                self._classify(partition, exc, result)
        self._fault("before_flush")  # some records may be on their way, none acknowledged for sure
        for partition in open_:
            if partition in result.fenced or partition in result.failed:
                continue
            try:
                if not self._flush(self._producers[partition], partition):
                    result.failed.add(partition)
            except KafkaException as exc:
                self._classify(partition, exc, result)
        open_ = [p for p in open_ if p not in result.fenced]
        refused = [p for p in open_ if failures[p] or (outgoing[p].next_source_offset is not None and p not in markers)]
        if refused:
            log.warning(
                "Kafka refused changelog records (%s): folding the batch again",
                "; ".join(m for p in refused for m in failures[p][:1]) or "no marker acknowledged",
            )
            result.failed.update(refused)
            time.sleep(1.0)  # a pause before the retry, not a wait for a condition
        if not self.fence_holds(generation):
            result.moved = True
            result.failed.update(open_)
        for partition in open_:
            if partition in result.failed and partition not in self._stuck:
                self._abort(partition, result)
        committing = [p for p in open_ if p not in result.failed]
        # All at once: each commit is a round trip to the coordinator and its markers' writes.
        first_tries = self._on_each(committing, lambda p: attempt(lambda: self._producers[p].commit_transaction(5.0)))
        for partition, error in zip(committing, first_tries, strict=True):
            self._commit(partition, result, markers.get(partition), error)
        for partition in sorted(self._stuck):
            self._replace(partition, generation)
        self._stuck.clear()
        return result

    def _replace(self, partition: int, generation: int | None) -> None:
        """A new producer for a partition whose producer is stuck: its ``init_transactions`` aborts
        what the old one left open (the batch is folded again). Not while the group has moved on:
        a new epoch from this worker would fence the partition's next owner."""
        self._in_transaction.discard(partition)
        discard(self._producers.pop(partition, None), f"the stuck changelog producer of partition {partition}")
        self._reopen(partition, generation)

    def _reopen(self, partition: int, generation: int | None) -> bool:
        """Take the partition's transactional id over again, if the fence still holds."""
        if not self.fence_holds(generation):
            return False
        return self.open(partition, lambda: self._give_up(float("inf")))

    def _on_each(self, partitions: list[int], call: Callable[[int], T]) -> list[T]:
        """``call`` for each partition, on the pool when there are several (blocking calls into
        librdkafka release the GIL)."""
        if len(partitions) < 2:
            return [call(p) for p in partitions]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(8, thread_name_prefix="changelog")
        return list(self._pool.map(call, partitions))

    def _send_all(
        self,
        producer: Producer,
        partition: int,
        out: Outgoing,
        generation: int | None,
        markers: dict[int, int],
        failures: list[str],
    ) -> None:
        target = self.target

        def on_delivery(err: KafkaError | None, message: Message) -> None:
            if err is not None:
                failures.append(err.str())

        def on_marker(err: KafkaError | None, message: Message) -> None:
            if err is not None:
                failures.append(err.str())
            else:
                markers[partition] = message.offset() or 0

        for key, value, headers in out.changelog:
            send(producer, target.changelog_topic, key, value, partition, headers, on_delivery)
        for key_, value, headers, stamp in out.dead:
            send(producer, target.dlq_topic, key_, value, partition, headers, on_delivery, stamp)
        for to, key, value, headers, stamp in out.moved:
            send(producer, target.events_topic, key, value, to, headers, on_delivery, stamp)
        if out.next_source_offset is not None:
            key, value = marker(out.next_source_offset)
            headers = [("writer", target.writer_id.encode()), ("generation", str(generation).encode())]
            send(producer, target.changelog_topic, key, value, partition, headers, on_marker)

    def _flush(self, producer: Producer, partition: int | None = None) -> bool:
        """Wait until Kafka acknowledged everything produced; False when giving up (or, with a
        ``partition``, when its producer is stuck: replaced after the batch)."""
        waited = 0.0
        while flushed(producer) > 0:
            waited += 1.0
            if self._give_up(waited):
                log.warning("the changelog is not acknowledged after %.0fs: not writing the store", waited)
                return False
            if partition is not None and waited >= STUCK_AFTER_S:
                log.warning(
                    "partition %d: the changelog is not acknowledged after %.0fs: a new producer, the batch again",
                    partition, waited,
                )  # fmt: skip
                self._stuck.add(partition)
                return False
            if waited % 10 == 0:
                log.warning("waiting %.0fs for Kafka to acknowledge the changelog", waited)
        return True

    def _commit(
        self, partition: int, result: Published, marker_offset: int | None, error: KafkaException | None
    ) -> None:
        """Settle a partition's commit, tried once already (``error``: how it failed; None: it
        committed). A timeout is tried again; fenced, fatal or abortable are final."""
        producer = self._producers[partition]
        waited = 0.0
        while error is not None:
            code = error.args[0]
            if code.code() in FENCED_CODES or code.fatal() or code.txn_requires_abort():
                self._classify(partition, error, result)
                if partition in result.failed and partition not in self._stuck:
                    log.warning(
                        "partition %d: the changelog transaction cannot commit (%s): aborting, folding the batch again",
                        partition, code.str(),
                    )  # fmt: skip
                    self._abort(partition, result)
                return
            waited += 5.0
            if self._give_up(waited):
                result.failed.add(partition)
                self._abort(partition, result)
                return
            if waited >= STUCK_AFTER_S:
                log.warning(
                    "partition %d: the changelog commit has not gone through in %.0fs (%s): a new producer, "
                    "the batch again", partition, waited, code.str(),
                )  # fmt: skip
                result.failed.add(partition)
                self._stuck.add(partition)
                return
            log.warning("partition %d: committing the changelog: %s; retrying", partition, code.str())
            error = attempt(lambda: producer.commit_transaction(5.0))
        self._in_transaction.discard(partition)
        self._fatal_in_a_row.pop(partition, None)
        result.committed[partition] = marker_offset

    def _abort(self, partition: int, result: Published) -> None:
        producer = self._producers.get(partition)
        if producer is None or partition in self._stuck:  # a stuck one is replaced, not asked
            return
        waited = 0.0
        while (exc := attempt(lambda: producer.abort_transaction(5.0))) is not None:
            error = exc.args[0]
            if error.code() in FENCED_CODES or error.fatal():
                self._classify(partition, exc, result)
                return
            waited += 5.0
            if self._give_up(waited):
                return  # the next batch aborts it first; the broker's transaction timeout bounds it
            if waited >= STUCK_AFTER_S:
                log.warning(
                    "partition %d: the changelog transaction has not aborted in %.0fs (%s): a new producer",
                    partition, waited, error.str(),
                )  # fmt: skip
                self._stuck.add(partition)
                return
            log.warning("partition %d: aborting a changelog transaction: %s; retrying", partition, error.str())
        self._in_transaction.discard(partition)

    def _classify(self, partition: int, exc: KafkaException, result: Published) -> None:
        """Fenced: the partition moved (drop it). Another fatal error: the producer is replaced after
        the batch, and the batch folded again; the loop stops only when that keeps happening."""
        error = exc.args[0]
        result.failed.discard(partition)
        if error.code() in FENCED_CODES:
            log.warning(
                "partition %d: fenced by a newer owner (%s): this batch is not written, letting go of it",
                partition, error.name(),
            )  # fmt: skip
            result.fenced.add(partition)
            # A fenced producer is of no use any more.
            discard(self._producers.pop(partition, None), f"the fenced changelog producer of partition {partition}")
            self._in_transaction.discard(partition)
            return
        result.failed.add(partition)
        if error.fatal() and partition not in self._stuck:
            in_a_row = self._fatal_in_a_row[partition] = self._fatal_in_a_row.get(partition, 0) + 1
            if in_a_row > FATAL_REPLACEMENTS:
                raise RuntimeError(
                    f"the changelog's producer of partition {partition} failed {in_a_row} times in a row, "
                    f"the last: {error.str()}"
                ) from exc
            log.warning(
                "partition %d: the changelog's producer failed (%s): a new producer, the batch again",
                partition, error.str(),
            )  # fmt: skip
            self._stuck.add(partition)

    # -- not transactional: one shared producer, the local fence only ------------------------------

    def _publish_shared(self, outgoing: Mapping[int, Outgoing], generation: int | None) -> Published:
        assert self._shared is not None
        result = Published()
        markers: dict[int, int] = {}
        failures: list[str] = []
        for partition, out in outgoing.items():
            self._send_all(self._shared, partition, out, generation, markers, failures)
        self._fault("before_flush")
        with_marker = {p for p, out in outgoing.items() if out.next_source_offset is not None}
        if not self._flush(self._shared):
            result.failed.update(outgoing)
        elif failures or not with_marker <= set(markers):
            log.warning("Kafka refused changelog records (%s): folding the batch again", "; ".join(failures[:3]))
            time.sleep(1.0)  # a pause before the retry, not a wait for a condition
            result.failed.update(outgoing)
        elif not self.fence_holds(generation):
            result.moved = True
            result.failed.update(outgoing)
        else:
            result.committed = {p: markers.get(p) for p in outgoing}
        return result


def _quietly(action: Callable[[], object]) -> None:
    try:
        action()
    except Exception:
        log.debug("closing a changelog producer", exc_info=True)
