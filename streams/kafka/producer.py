"""The event appender: one confluent-kafka producer, awaited from asyncio.

Idempotent and ``acks=all``, so an acknowledged event is on every in-sync replica exactly once
even when librdkafka retries. The partitioner is ``murmur2_random``, the Java client's and
aiokafka's, so the partition a record lands on is the one faust routes the session's reads to.
Nothing touches the network until :meth:`start`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from schemas.events import Event, encode_event
from streams.kafka.clients import client_config


class ProduceFailed(RuntimeError):
    """Kafka did not acknowledge a record in time; the caller should answer 503."""


# Kafka (4.x topic default ``message.timestamp.after.max.ms``: one hour) refuses a record stamped
# too far in its future, and with it every record of the same batch. An event ``time`` further
# ahead of our clock than this is appended with now + this as its Kafka timestamp instead.
MAX_FUTURE_MS = 30 * 60 * 1000
# Where every librdkafka client of the worker logs (instead of writing to stderr itself).
KAFKA_CLIENT_LOG = logging.getLogger("librdkafka")


def time_ms(time: datetime) -> int:
    """An event's ``time`` (timezone-aware) as milliseconds since the epoch, as Kafka stamps records."""
    return int(time.timestamp() * 1000)


def kafka_timestamp(event_ms: int, now_ms: int | None = None) -> int:
    """The Kafka timestamp a record of an event at ``event_ms`` is appended with: the event's time,
    except at most ``MAX_FUTURE_MS`` ahead of now (see above) and not before the epoch (0 would
    tell librdkafka "now")."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    return max(1, min(event_ms, now_ms + MAX_FUTURE_MS))


@dataclass(frozen=True)
class Record:
    key: bytes
    value: bytes
    # The event's ``time`` (ms since the epoch): the record's Kafka timestamp, so Kafka's time index
    # finds it (``sessionctl export``). None: the producer's clock.
    timestamp_ms: int | None = None


def event_record(event: Event) -> Record:
    """The record of an event: keyed by its session, stamped with its time."""
    return Record(event.subject.encode(), encode_event(event), time_ms(event.time))


@dataclass(frozen=True)
class Delivered:
    partition: int
    offset: int


class EventProducer:
    def __init__(self, bootstrap: str, topic: str, timeout_s: float) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.timeout_s = timeout_s
        self._producer: Producer | None = None
        self._poller: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self) -> None:
        self._producer = Producer(
            {
                **client_config(self.bootstrap),
                "enable.idempotence": True,
                "acks": "all",
                "partitioner": "murmur2_random",
                "linger.ms": 2,
                "compression.type": "lz4",
                "message.timeout.ms": int(self.timeout_s * 1000),
                "client.id": "session-engine-api",
                # librdkafka's own log lines through Python logging (its format, JSON or text).
                "logger": KAFKA_CLIENT_LOG,
            }
        )
        self._stopping.clear()
        # Delivery callbacks run inside poll(); a thread keeps polling so asyncio never blocks.
        self._poller = threading.Thread(target=self._poll_forever, name="kafka-producer-poll", daemon=True)
        self._poller.start()

    def _poll_forever(self) -> None:
        assert self._producer is not None
        while not self._stopping.is_set():
            self._producer.poll(0.05)

    def stop(self, flush_timeout_s: float = 10.0) -> None:
        if self._producer is None:
            return
        self._stopping.set()
        if self._poller is not None:
            self._poller.join()
        self._producer.flush(flush_timeout_s)
        self._producer = None

    async def send(self, records: Sequence[Record]) -> list[Delivered]:
        """Append records and wait for Kafka's acknowledgement of every one of them."""
        if self._producer is None:
            raise ProduceFailed("the producer is not started")
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Delivered]] = []

        def deliver(future: asyncio.Future[Delivered]):  # type: ignore[no-untyped-def]
            def on_delivery(err: KafkaError | None, msg: Message) -> None:
                if err is not None:
                    outcome: Delivered | Exception = ProduceFailed(f"Kafka refused the record: {err.str()}")
                else:
                    outcome = Delivered(partition=msg.partition() or 0, offset=msg.offset() or 0)
                loop.call_soon_threadsafe(_settle, future, outcome)

            return on_delivery

        now_ms = int(time.time() * 1000)
        for record in records:
            future: asyncio.Future[Delivered] = loop.create_future()
            timestamp = 0 if record.timestamp_ms is None else kafka_timestamp(record.timestamp_ms, now_ms)
            try:
                self._producer.produce(
                    self.topic, value=record.value, key=record.key, timestamp=timestamp, on_delivery=deliver(future)
                )
            except BufferError:
                raise ProduceFailed("the producer queue is full") from None
            except KafkaException as exc:
                raise ProduceFailed(str(exc)) from None
            futures.append(future)
        try:
            return list(await asyncio.wait_for(asyncio.gather(*futures), timeout=self.timeout_s + 1.0))
        except TimeoutError:
            raise ProduceFailed(f"Kafka did not acknowledge within {self.timeout_s:.0f}s") from None


def _settle(future: asyncio.Future[Delivered], outcome: Delivered | Exception) -> None:
    if future.done():
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
