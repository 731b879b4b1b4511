"""Topic setup: the app creates its topics with explicit partition counts, replication and
retention, and refuses to run on topics that disagree with what it needs."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ClusterMetadata,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from streams.kafka.clients import client_config

log = logging.getLogger(__name__)

MIN_INSYNC = "min.insync.replicas"
# Kafka's own topics the worker depends on, and the broker setting each is created with: the
# consumer group's membership and offsets (faust's group, the fold loop's lag commits), and the
# changelog's transactions. Replicated less than the worker's own topics, a broker's death loses
# the group or the fence all the same.
INTERNAL_TOPICS = {
    "__consumer_offsets": "offsets.topic.replication.factor",
    "__transaction_state": "transaction.state.log.replication.factor",
}


class TopicMismatch(RuntimeError):
    """An existing topic disagrees with what the app needs (partitions, replicas, min.insync.replicas)."""


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int = 1
    config: dict[str, str] = field(default_factory=dict)

    @property
    def min_insync(self) -> int:
        return int(self.config.get(MIN_INSYNC, "1"))


def ensure_topics(bootstrap: str, specs: list[TopicSpec], timeout: float = 30.0) -> None:
    """Create missing topics; refuse to go on (:class:`TopicMismatch`) when an existing one has
    another partition count, fewer replicas or a lower ``min.insync.replicas`` than asked, or when
    Kafka's own topics are replicated less than the most asked of ours.

    Keys are routed to partitions by hash, so a session folded on partition 3 of a 12-partition
    topic would be looked for elsewhere after a silent change of count. A topic with fewer replicas
    than asked would silently keep acknowledged events on fewer disks than the operator believes.
    """
    admin = AdminClient(client_config(bootstrap))
    metadata = admin.list_topics(timeout=timeout)
    missing = [spec for spec in specs if spec.name not in metadata.topics]
    _check_existing(admin, bootstrap, metadata, [spec for spec in specs if spec.name in metadata.topics], timeout)
    short = [spec for spec in missing if spec.replication_factor > len(metadata.brokers)]
    if short:
        raise TopicMismatch(
            f"topic {short[0].name!r} needs {short[0].replication_factor} replicas (SESSIONS_REPLICATION_FACTOR) "
            f"but {bootstrap} lists {len(metadata.brokers)} live broker(s)"
        )
    asked = max((spec.replication_factor for spec in specs), default=1)
    if asked > 1:
        _check_internal_topics(admin, metadata, asked, timeout)
    if not missing:
        return
    new = [NewTopic(s.name, num_partitions=s.partitions, replication_factor=s.replication_factor, config=s.config)
           for s in missing]  # fmt: skip
    raced = []
    for name, future in admin.create_topics(new, operation_timeout=timeout).items():
        try:
            future.result(timeout=timeout)
            log.info("created topic %s", name)
        except KafkaException as exc:
            if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                raise
            # Someone else made it between our metadata and our request (another worker, or an
            # operator by hand: a broker's metadata lags a creation on another broker by a moment),
            # so it was made with their settings: checked like any topic found existing.
            raced.append(next(spec for spec in missing if spec.name == name))
    if raced:
        _check_existing(admin, bootstrap, _metadata_naming(admin, raced, timeout), raced, timeout)


def _metadata_naming(admin: AdminClient, specs: list[TopicSpec], timeout: float) -> ClusterMetadata:
    """Metadata once it lists every one of ``specs`` with its partitions (a broker learns of a topic
    made elsewhere a moment later)."""
    deadline = time.monotonic() + timeout
    while True:
        metadata = admin.list_topics(timeout=timeout)
        if all(spec.name in metadata.topics and metadata.topics[spec.name].partitions for spec in specs):
            return metadata
        if time.monotonic() > deadline:
            raise TopicMismatch(f"topic {specs[0].name!r} exists, the broker says, but its metadata never came")
        time.sleep(0.2)  # the brokers' metadata propagation has no event to wait on from a client


def _check_existing(
    admin: AdminClient, bootstrap: str, metadata: ClusterMetadata, specs: list[TopicSpec], timeout: float
) -> None:
    for spec in specs:
        topic = metadata.topics[spec.name]
        if len(topic.partitions) != spec.partitions:
            raise TopicMismatch(
                f"topic {spec.name!r} has {len(topic.partitions)} partitions but SESSIONS_PARTITIONS is "
                f"{spec.partitions}; keep them equal (a key's partition depends on the count)"
            )
        replicas = min(len(partition.replicas) for partition in topic.partitions.values())
        if replicas < spec.replication_factor:
            raise TopicMismatch(
                f"topic {spec.name!r} has {replicas} replica(s) per partition but SESSIONS_REPLICATION_FACTOR is "
                f"{spec.replication_factor}: add replicas (kafka-reassign-partitions.sh) or lower the setting"
            )
    _check_min_insync(admin, bootstrap, [s for s in specs if s.min_insync > 1], timeout)


def _check_min_insync(admin: AdminClient, bootstrap: str, specs: list[TopicSpec], timeout: float) -> None:
    """Existing topics must ask at least as many in-sync replicas as the settings do."""
    asked = {spec.name: spec.min_insync for spec in specs}
    for name, entries in _topic_configs(admin, list(asked), timeout).items():
        entry = entries.get(MIN_INSYNC)
        effective = int(entry.value) if entry is not None and entry.value is not None else 1
        if effective < asked[name]:
            raise TopicMismatch(
                f"topic {name!r} has {MIN_INSYNC}={effective} but SESSIONS_MIN_INSYNC_REPLICAS asks "
                f"{asked[name]}: raise it (kafka-configs.sh --bootstrap-server {bootstrap} --alter --entity-type "
                f"topics --entity-name {name} --add-config {MIN_INSYNC}={asked[name]}) or lower the setting"
            )


def _topic_configs(admin: AdminClient, names: list[str], timeout: float) -> dict[str, dict[str, ConfigEntry]]:
    """Each topic's configuration, asked again while the answering broker does not know the topic
    yet: the metadata that listed it may have come from another broker, and a topic made a moment
    ago (by a worker starting beside this one) reaches every broker's metadata a little later. Seen
    with three workers starting at once on a three-node cluster."""
    configs: dict[str, dict[str, ConfigEntry]] = {}
    pending = list(names)
    deadline = time.monotonic() + timeout
    while pending:
        resources = [ConfigResource(ResourceType.TOPIC, name) for name in pending]
        unknown: list[str] = []
        for resource, future in admin.describe_configs(resources, request_timeout=timeout).items():
            try:
                configs[resource.name] = future.result(timeout=timeout)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART or time.monotonic() > deadline:
                    raise
                unknown.append(resource.name)
        pending = unknown
        if pending:
            time.sleep(0.2)  # the brokers' metadata propagation has no event to wait on from a client
    return configs


def _check_internal_topics(admin: AdminClient, metadata: ClusterMetadata, asked: int, timeout: float) -> None:
    """Kafka's own topics the worker depends on hold at least ``asked`` replicas: counted when they
    exist, else what the brokers will create them with (Kafka makes them on first use)."""
    topics, brokers = metadata.topics, sorted(metadata.brokers)
    configured: dict[str, str] | None = None
    for name, setting in INTERNAL_TOPICS.items():
        topic = topics.get(name)
        if topic is not None and topic.partitions:
            replicas = min(len(partition.replicas) for partition in topic.partitions.values())
            where = f"Kafka's topic {name!r} has {replicas} replica(s) per partition"
        else:
            if configured is None:
                resource = ConfigResource(ResourceType.BROKER, str(brokers[0]))
                entries = admin.describe_configs([resource], request_timeout=timeout)[resource].result(timeout=timeout)
                configured = {key: entry.value for key, entry in entries.items()}
            replicas = int(configured.get(setting) or 1)
            where = f"the brokers create Kafka's topic {name!r} with {setting}={replicas}"
        if replicas < asked:
            raise TopicMismatch(
                f"{where} but SESSIONS_REPLICATION_FACTOR is {asked}: the consumer group and the changelog's "
                f"transactions would not survive a broker the worker's own topics survive; set {setting} to "
                f"{asked} on the brokers (an existing topic needs kafka-reassign-partitions.sh), or lower the setting"
            )
