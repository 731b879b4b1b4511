"""What a consumed record says about itself, read the same way by every reader of the events topic."""

from __future__ import annotations

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Message


def record_timestamp(message: Message) -> int:
    """The record's Kafka timestamp (epoch ms; the event's time for what the API appends, the
    producer's or the broker's clock otherwise); 0 when it has none."""
    kind, stamp = message.timestamp()
    return stamp if kind != TIMESTAMP_NOT_AVAILABLE and stamp > 0 else 0
