"""Topic setup: the app creates its topics with explicit partition counts and retention."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from streams.kafka.clients import client_config

log = logging.getLogger(__name__)


class TopicMismatch(RuntimeError):
    """An existing topic disagrees with what the app needs (partition count)."""


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int = 1
    config: dict[str, str] = field(default_factory=dict)


def ensure_topics(bootstrap: str, specs: list[TopicSpec], timeout: float = 30.0) -> None:
    """Create missing topics; refuse to go on if an existing one has another partition count.

    Keys are routed to partitions by hash, so a session folded on partition 3 of a 12-partition
    topic would be looked for elsewhere after a silent change of count.
    """
    admin = AdminClient(client_config(bootstrap))
    existing = admin.list_topics(timeout=timeout).topics
    missing = []
    for spec in specs:
        topic = existing.get(spec.name)
        if topic is None:
            missing.append(
                NewTopic(
                    spec.name,
                    num_partitions=spec.partitions,
                    replication_factor=spec.replication_factor,
                    config=spec.config,
                )
            )
        elif len(topic.partitions) != spec.partitions:
            raise TopicMismatch(
                f"topic {spec.name!r} has {len(topic.partitions)} partitions but SESSIONS_PARTITIONS is "
                f"{spec.partitions}; keep them equal (a key's partition depends on the count)"
            )
    if not missing:
        return
    for name, future in admin.create_topics(missing, operation_timeout=timeout).items():
        try:
            future.result(timeout=timeout)
            log.info("created topic %s", name)
        except KafkaException as exc:
            if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":  # another worker won the race
                raise
