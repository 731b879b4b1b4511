"""streams.devkit.broker runs an ordinary Apache Kafka broker that any Kafka client can use."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from streams.devkit import broker

pytestmark = pytest.mark.integration


def test_start_is_idempotent_and_stop_stops(tmp_path):
    port = broker.free_port()
    bootstrap = broker.start(tmp_path, port, quiet=True)
    try:
        pid = broker.running_pid(broker.BrokerLayout(tmp_path))
        assert bootstrap == f"127.0.0.1:{port}"
        assert broker.start(tmp_path, port, quiet=True) == bootstrap  # a second start is a no-op
        assert broker.running_pid(broker.BrokerLayout(tmp_path)) == pid
        assert broker.status(tmp_path) == bootstrap
        # Its JVM maps the broker's classes shared by every broker JVM (made once per jar cache).
        maps = Path(f"/proc/{pid}/maps").read_text()
        assert re.search(r"/broker-classes-\w+\.jsa$", maps, re.MULTILINE), "no shared class archive mapped"
    finally:
        assert broker.stop(tmp_path, quiet=True) is True
    assert broker.status(tmp_path) is None
    assert broker.answers_metadata(bootstrap, timeout=1) is False
    assert broker.stop(tmp_path, quiet=True) is False


def test_confluent_kafka_and_aiokafka_both_talk_to_it(kafka_bootstrap):
    from aiokafka import AIOKafkaConsumer

    topic = f"interop-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(10)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "acks": "all", "enable.idempotence": True})
    for n in range(10):
        producer.produce(topic, key=str(n).encode(), value=f"v{n}".encode())
    assert producer.flush(10) == 0

    async def consume() -> list[bytes]:
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest", group_id=f"g-{topic}"
        )
        await consumer.start()
        try:
            seen: list[bytes] = []
            while len(seen) < 10:
                batch = await consumer.getmany(timeout_ms=5000)
                assert batch, "aiokafka got nothing within 5 s"
                seen.extend(record.value for records in batch.values() for record in records)
            return seen
        finally:
            await consumer.stop()

    assert sorted(asyncio.run(consume())) == sorted(f"v{n}".encode() for n in range(10))
