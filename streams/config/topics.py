"""The topics the worker owns, in one place: names, partitions, retention or compaction, and the
replication every one of them gets from the settings (``SESSIONS_REPLICATION_FACTOR`` replicas,
``min.insync.replicas`` from ``SESSIONS_MIN_INSYNC_REPLICAS``). ``sessionctl worker`` creates or
checks them before it starts (``streams.kafka.admin.ensure_topics``), ``sessionctl rebuild`` those
of a new table generation.
"""

from __future__ import annotations

from collections.abc import Mapping

from streams.config.settings import Settings
from streams.control.faust_private import leader_topic
from streams.kafka.admin import TopicSpec

# The event log and its dead letters are kept forever (history is the log itself).
FOREVER = {"retention.ms": "-1", "retention.bytes": "-1"}
# Only each session's latest state (and the latest marker) matter; a minute before compaction may
# drop a record, so a restore that started reading does not miss the newer one.
CHANGELOG_CONFIG = {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"}
COMPACTED = {"cleanup.policy": "compact"}


# The topics of the table generations (streams.control.generations): which generation the workers
# serve, and each generation's changelog.
def control_topic(app_id: str) -> str:
    """Which table generation the workers serve: one compacted partition."""
    return f"{app_id}-generations"


def changelog_topic(base: str, generation: int) -> str:
    """Generation 1 keeps today's changelog name (``settings.changelog_topic``); N >= 2 gets ``-g<N>``."""
    return base if generation <= 1 else f"{base}-g{generation}"


def owned(settings: Settings, name: str, partitions: int, config: Mapping[str, str] | None = None) -> TopicSpec:
    """A topic of the worker's, replicated as the settings say."""
    replicated = {**(config or {}), "min.insync.replicas": str(settings.min_insync)}
    return TopicSpec(name, partitions, settings.replication_factor, replicated)


def worker_topics(settings: Settings) -> list[TopicSpec]:
    """Every topic a worker writes or reads, faust's own included."""
    return [
        owned(settings, settings.events_topic, settings.partitions, FOREVER),
        owned(settings, settings.dlq_topic, settings.partitions, FOREVER),
        # Partition for partition with the event topic: the fold loop writes partition p of both.
        owned(settings, settings.changelog_topic, settings.partitions, CHANGELOG_CONFIG),
        # The sessions' data keys and the people index (streams.privacy.keyring): one partition,
        # compacted; a tombstone is an erasure, kept a day for lagging readers.
        owned(settings, settings.keys_topic, 1, COMPACTED),
        # Which table generation the workers serve (sessionctl rebuild --switch writes it).
        owned(settings, control_topic(settings.app_id), 1, COMPACTED),
        # faust's leader assignor's topic: faust would create it with the replication factor but
        # Kafka's default min.insync.replicas; made here first, it is replicated like the rest.
        owned(settings, leader_topic(settings.app_id), 1),
    ]


def generation_topics(settings: Settings, generation: int) -> list[TopicSpec]:
    """What ``sessionctl rebuild`` writes for table generation ``generation``."""
    return [
        owned(settings, control_topic(settings.app_id), 1, COMPACTED),
        owned(settings, changelog_topic(settings.changelog_topic, generation), settings.partitions, CHANGELOG_CONFIG),
        owned(settings, f"{settings.dlq_topic}.rebuild-g{generation}", settings.partitions),
    ]
