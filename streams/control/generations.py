"""Table generations: which projection of the log the workers serve.

A rebuild folds the whole event log into a new *generation* of the table (its own changelog topic,
store folder and source offsets) while the current one keeps serving; a switch makes the workers
serve the new one. Generation 1 keeps the names of a deployment that never rebuilt, so nothing
needs migrating.

Which generation is current is recorded in a small compacted control topic, ``<app id>-generations``
(one partition): key ``current`` = the generation the workers serve, key ``next`` = a rebuild in
progress. Each value is JSON: the generation's number, the rules file (TOML text) it is folded with
and when it was recorded. No ``current`` record means generation 1 with the worker's own
``SESSIONS_RULES_FILE``. The rules in the record win over a worker's local file, so every worker
switches rules at once.

The pure part (folder names, the record codec) is above the I/O part (reading and writing the topic);
the topics' names are with every other topic's, in ``streams.config.topics``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, Producer, TopicPartition

from projections.rules import Rules
from streams.config.rules_file import parse_rules_text
from streams.kafka.clients import client_config, close_within, watermarks

log = logging.getLogger(__name__)

CURRENT: Final = b"current"
NEXT: Final = b"next"


class GenerationRecordError(ValueError):
    """A control record that cannot be read."""


# --- pure part ----------------------------------------------------------------------------------


def stores_dir(base: Path, generation: int) -> Path:
    """Generation 1 keeps today's store folder; N >= 2 lives in ``<stores dir>/g<N>``."""
    return base if generation <= 1 else base / f"g{generation}"


def scratch_dir(data_dir: Path, generation: int) -> Path:
    """Where ``sessionctl rebuild`` keeps the stores it folds generation N into (resumable)."""
    return data_dir / f"rebuild-g{generation}"


@dataclass(frozen=True)
class Generation:
    number: int
    rules: str = ""  # the rules file's TOML text ("" = no rules)
    at: str = ""  # RFC 3339, when the record was written

    def parsed_rules(self) -> Rules:
        """Raises RulesError when the text is not valid rules."""
        return parse_rules_text(self.rules, f"the rules of generation {self.number}")


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def encode_generation(generation: Generation) -> bytes:
    return orjson.dumps({"generation": generation.number, "rules": generation.rules, "at": generation.at})


def decode_generation(raw: bytes) -> Generation:
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise GenerationRecordError(f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise GenerationRecordError("not a JSON object")
    number, rules, at = document.get("generation"), document.get("rules", ""), document.get("at", "")
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        raise GenerationRecordError(f"generation must be an integer >= 1, got {number!r}")
    if not isinstance(rules, str) or not isinstance(at, str):
        raise GenerationRecordError("rules and at must be strings")
    return Generation(number, rules, at)


# --- I/O part -----------------------------------------------------------------------------------


def read_records(bootstrap: str, topic: str, timeout_s: float = 10.0) -> dict[bytes, Generation]:
    """The latest record of each key of the control topic (none when the topic is empty or absent)."""
    consumer = Consumer(
        {
            **client_config(bootstrap),
            "group.id": f"{topic}-reader",  # assign() only: never joined nor committed
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            return {}
        low, high = watermarks(consumer, TopicPartition(topic, 0), timeout_s)
        return _read_range(consumer, topic, low, high, timeout_s)
    finally:
        consumer.close()


def _read_range(consumer: Consumer, topic: str, low: int, high: int, timeout_s: float) -> dict[bytes, Generation]:
    records: dict[bytes, Generation] = {}
    if high <= low:
        return records
    consumer.assign([TopicPartition(topic, 0, low)])
    position = low
    while position < high:
        messages = consumer.consume(1000, timeout_s)
        if not messages:
            raise TimeoutError(f"reading {topic}: no record within {timeout_s:.0f}s at offset {position} of {high}")
        for message in messages:
            if message.error() is not None:
                continue
            position = max(position, (message.offset() or 0) + 1)
            key, value = message.key(), message.value()
            if key is None:
                continue
            if value is None:
                records.pop(key, None)
                continue
            try:
                records[key] = decode_generation(value)
            except GenerationRecordError as exc:
                log.warning("%s: record %r at offset %s ignored: %s", topic, key, message.offset(), exc)
    consumer.unassign()
    return records


def write_record(
    bootstrap: str, topic: str, key: bytes, generation: Generation | None, timeout_s: float = 30.0
) -> None:
    """Append a control record (None deletes the key) and wait for Kafka's acknowledgement."""
    producer = Producer({**client_config(bootstrap), "enable.idempotence": True, "acks": "all"})
    failures: list[str] = []

    def delivered(err: KafkaError | None, message: Message) -> None:
        if err is not None:
            failures.append(err.str())

    value = encode_generation(generation) if generation is not None else None
    producer.produce(topic, key=key, value=value, partition=0, on_delivery=delivered)
    if producer.flush(timeout_s) > 0:
        raise TimeoutError(f"{topic}: the record was not acknowledged within {timeout_s:.0f}s")
    if failures:
        raise RuntimeError(f"{topic}: {failures[0]}")


class GenerationWatcher:
    """Tails the control topic; :meth:`poll` returns the newest ``current`` record seen, if any.

    No I/O until the first poll. Polled from one thread at a time (the worker's executor)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self._consumer: Consumer | None = None

    def poll(self, timeout_s: float) -> Generation | None:
        if self._consumer is None:
            consumer = Consumer(
                {
                    **client_config(self.bootstrap),
                    "group.id": f"{self.topic}-watch",  # assign() only
                    "enable.auto.commit": False,
                    "enable.partition.eof": False,
                    "fetch.wait.max.ms": 500,
                }
            )
            consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
            self._consumer = consumer
        newest: Generation | None = None
        for message in self._consumer.consume(100, timeout_s):
            if message.error() is not None or message.key() != CURRENT or message.value() is None:
                continue
            try:
                newest = decode_generation(message.value() or b"")
            except GenerationRecordError as exc:
                log.warning("%s: record at offset %s ignored: %s", self.topic, message.offset(), exc)
        return newest

    def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        close_within([consumer], "the generation watcher")
