"""The dead-letter topic, read by people: list what is there, re-drive it after a fix.

Re-driving appends each letter's original key and value to the event topic again, stamped with
the event's ``time`` when the value decodes as an event (else with the letter's own timestamp), so
Kafka's time index finds it where an export of its time looks; a letter that still cannot be
folded comes back to the dead-letter topic with its reason. A consumer group per
app remembers how far re-driving got, so a letter is re-driven once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from schemas.events import EventDecodeError, decode_event
from streams.kafka.clients import client_config
from streams.kafka.producer import kafka_timestamp, time_ms

POLL_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]
    timestamp_ms: int = 0  # the dead-letter record's own Kafka timestamp

    @property
    def redrive_timestamp_ms(self) -> int:
        """The Kafka timestamp to re-append with: the event's ``time`` if the value is an event."""
        if self.value is not None:
            try:
                return kafka_timestamp(time_ms(decode_event(self.value).time))
            except EventDecodeError:
                pass
        return self.timestamp_ms

    @property
    def reason(self) -> str:
        return self.headers.get("dlq.reason", "?")

    @property
    def origin(self) -> str:
        h = self.headers
        return f"{h.get('dlq.topic', '?')}[{h.get('dlq.partition', '?')}]@{h.get('dlq.offset', '?')}"


def _letter(message: Message) -> DeadLetter:
    raw_headers: list[tuple[str, bytes | None]] = list(message.headers() or [])  # type: ignore[arg-type]
    headers = {name: (value or b"").decode(errors="replace") for name, value in raw_headers}
    _, timestamp = message.timestamp()
    return DeadLetter(
        message.partition() or 0, message.offset() or 0, message.key(), message.value(), headers, max(timestamp, 0)
    )


# The fold loop writes dead letters in its partitions' changelog transactions (streams/fold/checkpoint.py):
# read only committed ones (a fenced worker's aborted batch left none), and take the end of a partition
# from the consumer's end-of-partition event, since a transaction's commit marker holds the last offset
# below the high watermark and is never returned as a record.
READER = {"enable.auto.commit": False, "isolation.level": "read_committed", "enable.partition.eof": True}


def _read_until_end(consumer: Consumer, ends: dict[int, int], starts: dict[int, int]) -> Iterator[Message]:
    """Messages from ``starts`` to the high watermarks ``ends`` seen when reading began."""
    remaining = {p for p in ends if starts.get(p, 0) < ends[p]}
    while remaining:
        message = consumer.poll(POLL_TIMEOUT_S)
        if message is None:
            raise TimeoutError(f"no record within {POLL_TIMEOUT_S:.0f}s while partitions {sorted(remaining)} have more")
        error = message.error()
        if error is not None and error.code() == KafkaError._PARTITION_EOF:
            remaining.discard(message.partition() or 0)
            continue
        if error is not None:
            raise KafkaException(error)
        partition, offset = message.partition() or 0, message.offset() or 0
        if partition in remaining and offset < ends[partition]:
            yield message
        if offset + 1 >= ends.get(partition, 0):
            remaining.discard(partition)


def _partitions(consumer: Consumer, topic: str) -> list[int]:
    metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
    if metadata is None or metadata.error is not None:
        raise KafkaException(f"topic {topic} does not exist")
    return sorted(metadata.partitions)


def list_letters(bootstrap: str, dlq_topic: str, limit: int = 100) -> list[DeadLetter]:
    """The first ``limit`` dead letters, oldest first per partition."""
    consumer = Consumer({**client_config(bootstrap), "group.id": "dlq-reader", **READER})
    try:
        partitions = _partitions(consumer, dlq_topic)
        starts, ends = {}, {}
        for p in partitions:
            starts[p], ends[p] = consumer.get_watermark_offsets(TopicPartition(dlq_topic, p), timeout=10)
        consumer.assign([TopicPartition(dlq_topic, p, starts[p]) for p in partitions])
        letters = []
        for message in _read_until_end(consumer, ends, starts):
            letters.append(_letter(message))
            if len(letters) >= limit:
                break
        return letters
    finally:
        consumer.close()


def redrive(
    bootstrap: str,
    dlq_topic: str,
    events_topic: str,
    group: str,
    dry_run: bool = False,
    progress: Callable[[int, int, int], None] | None = None,
) -> list[DeadLetter]:
    """Append every not yet re-driven letter to ``events_topic``; returns the letters re-driven.
    ``progress(read, appended, planned)`` is called as letters are read and appended (a
    ``streams.tools.export.events`` progress reporter)."""
    report = progress or (lambda read, written, planned: None)
    consumer = Consumer(
        {
            **client_config(bootstrap),
            "group.id": group,
            **READER,
            "auto.offset.reset": "earliest",
        }
    )
    producer = Producer(
        {**client_config(bootstrap), "enable.idempotence": True, "acks": "all", "partitioner": "murmur2_random"}
    )
    try:
        partitions = _partitions(consumer, dlq_topic)
        committed = consumer.committed([TopicPartition(dlq_topic, p) for p in partitions], timeout=10)
        starts, ends = {}, {}
        for tp in committed:
            low, high = consumer.get_watermark_offsets(TopicPartition(dlq_topic, tp.partition), timeout=10)
            starts[tp.partition] = tp.offset if tp.offset >= 0 else low
            ends[tp.partition] = high
        consumer.assign([TopicPartition(dlq_topic, p, starts[p]) for p in partitions])
        planned = sum(max(0, ends[p] - starts[p]) for p in partitions)
        letters = []
        for message in _read_until_end(consumer, ends, starts):
            letters.append(_letter(message))
            if len(letters) % 500 == 0:
                report(len(letters), 0, planned)
        # Offsets overcount the letters by the transactions' commit markers: once read, the count is known.
        planned = len(letters)
        report(len(letters), 0, planned)
        if dry_run or not letters:
            return letters
        for appended, letter in enumerate(letters, 1):
            headers: list[tuple[str, str | bytes | None]] = [
                ("dlq.redriven-from", f"{dlq_topic}[{letter.partition}]@{letter.offset}")
            ]
            producer.produce(
                events_topic,
                key=letter.key,
                value=letter.value,
                headers=headers,
                timestamp=letter.redrive_timestamp_ms,  # 0 (no timestamp known): now
            )
            if appended % 500 == 0:
                producer.poll(0)
                report(len(letters), appended, planned)
        if producer.flush(30) != 0:
            raise KafkaException("the event topic did not acknowledge every re-driven letter; nothing committed")
        report(len(letters), len(letters), planned)
        # Only after every letter is acknowledged: a crash before this re-drives them again, never loses one.
        consumer.commit(offsets=[TopicPartition(dlq_topic, p, ends[p]) for p in partitions], asynchronous=False)
        return letters
    finally:
        consumer.close()
