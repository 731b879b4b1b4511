"""Reading a worker's dead-letter topic (``<events topic>.dlq``) from the beginning."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, Message


def reason(message: Message) -> str:
    return dict(message.headers() or [])["dlq.reason"].decode()


def headers(message: Message) -> dict[str, str]:
    return {key: value.decode() for key, value in message.headers() or []}


def read_dead_letters(
    kafka_bootstrap: str, events_topic: str, until: Callable[[list[Message]], bool], timeout: float = 60.0
) -> list[Message]:
    """The letters of ``events_topic``'s dead-letter topic, read until ``until(letters)`` holds."""
    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": f"dlq-probe-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([f"{events_topic}.dlq"])
    letters: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while not until(letters):
            assert time.monotonic() < deadline, f"dead letters not as awaited within {timeout}s: {describe(letters)}"
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                letters.append(message)
    finally:
        consumer.close()
    return letters


def describe(letters: list[Message]) -> list[tuple[Any, str]]:
    return [(message.key(), reason(message)) for message in letters]
