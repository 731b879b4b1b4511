"""Calls on a confluent-kafka producer that the checkpoint's transactions need: a produce that waits
for room in the queue, and flushes and transaction calls whose Kafka error (a fenced producer's
included) comes back as one ``KafkaException`` wherever librdkafka raised it."""

from __future__ import annotations

from collections.abc import Callable

from confluent_kafka import KafkaError, KafkaException, Message, Producer

Header = tuple[str, str | bytes | None]  # a record header as confluent-kafka takes it


def send(
    producer: Producer,
    topic: str,
    key: bytes | None,
    value: bytes | None,
    partition: int,
    headers: list[Header],
    on_delivery: Callable[[KafkaError | None, Message], None] | None,
    timestamp: int = 0,
) -> None:
    while True:
        try:
            producer.produce(
                topic, value=value, key=key, partition=partition, headers=headers, on_delivery=on_delivery,
                timestamp=timestamp,
            )  # fmt: skip
            return
        except BufferError:
            producer.poll(0.1)


def flushed(producer: Producer) -> int:
    """``flush(1.0)``; a fatal error (a fenced producer) as a KafkaException. confluent-kafka raises
    it from inside the delivery callbacks it serves, as a SystemError whose cause is the
    KafkaException: the cause is what counts."""
    try:
        left: int = producer.flush(1.0)
        return left
    except KafkaException:
        raise
    except Exception as exc:
        error = kafka_error(exc)
        if error is None:
            raise
        raise KafkaException(error) from exc


def attempt(call: Callable[[], object]) -> KafkaException | None:
    """``call()``; the Kafka error it raised, as a KafkaException, None when it returned (a fatal
    error may surface from inside a delivery callback: see :func:`flushed`)."""
    try:
        call()
    except Exception as exc:
        error = kafka_error(exc)
        if error is None:
            raise
        return exc if isinstance(exc, KafkaException) else KafkaException(error)
    return None


def kafka_error(exc: BaseException | None) -> KafkaError | None:
    while exc is not None:
        if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
            return exc.args[0]
        exc = exc.__cause__ or exc.__context__
    return None
