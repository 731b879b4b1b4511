"""Master key rotation: every data key record wrapped again with the newest master key.

``SESSIONS_MASTER_KEY="<new>,<old>"`` makes new data keys use ``<new>`` at once; ``sessionctl keys
rewrap`` then rewrites the records wrapped with an older key, so that key can be dropped from the
setting once the topic has compacted. An erasure that lands while it runs is not undone: a second
read after the writes puts the tombstone back on top of any record rewrapped after it.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from streams.kafka.clients import client_config
from streams.kafka.producer import KAFKA_CLIENT_LOG
from streams.privacy.cipher import MasterKeys, Unreadable
from streams.privacy.keyring import PARTITION, KeysUnavailable, produce_acknowledged

Records = list[tuple[int, bytes, bytes | None]]  # (offset, key, value) in log order


@dataclass
class RewrapSummary:
    keys: int = 0  # data keys alive in the topic
    rewrapped: int = 0
    unreadable: int = 0  # wrapped with no configured master key (left as they are)
    erased_meanwhile: int = 0  # tombstones written again over a rewrapped record


def read_records(bootstrap: str, topic: str, start: int = 0, timeout_s: float = 30.0) -> tuple[Records, int]:
    """The topic's records from ``start`` to its end as it is now, and that end."""
    consumer = Consumer(
        client_config(
            bootstrap, {"group.id": f"rewrap-{uuid.uuid4()}", "enable.auto.commit": False, "logger": KAFKA_CLIENT_LOG}
        )
    )
    records: Records = []
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, PARTITION), timeout_s)
        if high > start:
            consumer.assign([TopicPartition(topic, PARTITION, start)])
            position = start
            deadline = time.monotonic() + timeout_s
            while position < high:
                if time.monotonic() > deadline:
                    raise KeysUnavailable(f"{topic}: not read to offset {high} in {timeout_s}s")
                # A short wait per call: consume() waits out its timeout unless it fills the batch.
                for message in consumer.consume(1000, 0.2):
                    error = message.error()
                    if error is not None and error.code() != KafkaError._PARTITION_EOF:
                        raise KeysUnavailable(f"{topic}: {error.str()}")
                    if error is None:
                        position = (message.offset() or 0) + 1
                        records.append((position - 1, message.key() or b"", message.value()))
    finally:
        consumer.close()
    return records, high


def rewrap(bootstrap: str, topic: str, master: MasterKeys, timeout_s: float = 30.0) -> RewrapSummary:
    records, end = read_records(bootstrap, topic, 0, timeout_s)
    latest: dict[bytes, bytes | None] = {}
    for _, key, value in records:
        latest[key] = value
    summary = RewrapSummary()
    rewritten: dict[bytes, bytes] = {}
    for key, value in latest.items():
        if not key.startswith(b"k:") or value is None:
            continue
        summary.keys += 1
        session_id, _, kid = key[2:].decode().rpartition(":")
        try:
            fresh = master.rewrap(session_id, kid, value)
        except Unreadable:
            summary.unreadable += 1
            continue
        if fresh is not None:
            rewritten[key] = fresh
    producer = Producer(
        client_config(bootstrap, {"acks": "all", "enable.idempotence": True, "logger": KAFKA_CLIENT_LOG})
    )
    produce_acknowledged(producer, topic, rewritten.items(), timeout_s)
    summary.rewrapped = len(rewritten)
    # Erased while this ran (a tombstone after the first read): the tombstone goes on top again.
    later, _ = read_records(bootstrap, topic, end, timeout_s)
    erased = {key for _, key, value in later if key in rewritten and value is None}
    produce_acknowledged(producer, topic, ((key, None) for key in erased), timeout_s)
    summary.erased_meanwhile = len(erased)
    return summary
