"""Reading a topic the way an outsider would: a plain consumer, from the beginning to its end."""

from __future__ import annotations

import time
import uuid
from typing import NamedTuple

from confluent_kafka import Consumer, KafkaError, TopicPartition


class Logged(NamedTuple):
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]


def read_topic(bootstrap: str, topic: str, timeout: float = 30.0) -> list[Logged]:
    """Every record of every partition of ``topic`` up to its end as it is now, partition by
    partition in log order. No worker code: a consumer with no group, no key, no decoding."""
    # read_committed (librdkafka's default, said here): what a changelog's transactions committed.
    # The end of a partition comes as an event: a transactional topic's last offset is a commit
    # marker, which no consumer returns.
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"outsider-{uuid.uuid4()}",
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    records: list[Logged] = []
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        for partition in sorted(partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            if high <= low:
                continue
            consumer.assign([TopicPartition(topic, partition, low)])
            position, deadline = low, time.monotonic() + timeout
            while position < high:
                assert time.monotonic() < deadline, f"{topic}[{partition}] not read to {high}"
                # A short wait per call: consume() waits out its timeout unless it fills the batch.
                for message in consumer.consume(1000, 0.2):
                    error = message.error()
                    if error is not None and error.code() == KafkaError._PARTITION_EOF:
                        position = high
                        break
                    assert error is None, error
                    position = (message.offset() or 0) + 1
                    records.append(
                        Logged(partition, position - 1, message.key(), message.value(), list(message.headers() or []))
                    )
    finally:
        consumer.close()
    return records
