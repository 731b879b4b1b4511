"""What one fold loop folds and how: its topics, stores, batch sizes and policies, and the settings
of the Kafka consumers it reads with. Built by the worker (``streams.control.app.fold_config``) and by the
rebuild (``streams.tools.rebuild.generation_config``) from the settings; no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.fold.outgoing import Target
from streams.fold.store import StoreMemory
from streams.kafka.clients import client_config
from streams.kafka.producer import KAFKA_CLIENT_LOG


@dataclass(frozen=True)
class FoldConfig:
    bootstrap: str
    events_topic: str
    changelog_topic: str
    dlq_topic: str
    partitions: int
    stores_dir: Path
    group_id: str  # the fold's own group id, for offset commits only (it never joins a group)
    writer_id: str  # names this worker on the changelog markers
    batch_max: int = 5000
    batch_wait_s: float = 0.005
    fetch_wait_ms: int = 50
    cache_sessions: int = 20_000
    memory: StoreMemory = field(default_factory=lambda: StoreMemory(64 << 20, 4 << 20, 128 << 20))
    max_session_bytes: int = 256 * 1024
    commit_every_s: float = 1.0
    # Keep every folded record's bytes in a local history store beside the partition's store, so
    # a timeline reads them there instead of from Kafka (docs/history.md); a cache, never restored.
    history_store: bool = True
    # A session inactive for longer than this expires (0: never): reads answer as if it did not
    # exist, its next event starts it afresh, and a sweep deletes it from the store and writes its
    # changelog tombstone, keeping its locator (its timeline stays readable).
    lifetime_ms: int = 0
    sweep_every_s: float = 60.0
    sweep_scan: int = 5000  # sessions looked at per partition and sweep (between two batches)
    # Testing only: "<point>:<n>" kills the process with SIGKILL at that point of the n-th batch
    # (points: before_produce, before_flush, after_flush, after_write); "slow:<seconds>" makes every
    # batch wait that long before producing its changelog (a fold slower than any write's wait);
    # "hold:<seconds>" makes the first batch wait before producing until the group rebalances (at
    # most that long): a batch certainly in flight when the partitions are taken away.
    fault_point: str = ""
    # One transactional producer per partition, so a newer owner fences this one off the changelog
    # (streams.fold.checkpoint). Off only for brokers without transactions: then a paused owner's
    # last batch can reach the changelog after its partitions moved (docs/engine.md).
    transactional: bool = True
    # A record on another partition than its key's (a librdkafka producer's CRC32 default) is
    # re-appended to its key's partition in the batch's changelog transaction, so its session's
    # owner folds it and reads find it. False (a rebuild): skipped, its moved copy is in the log.
    move_misplaced: bool = True
    # An event stamped further ahead of its record's Kafka timestamp is dead-lettered (0: never),
    # as the API refuses one further ahead of its clock (streams.fold.batch.record_refusal).
    max_skew_ms: int = 0

    def target(self) -> Target:
        return Target(
            self.bootstrap, self.events_topic, self.changelog_topic, self.dlq_topic, self.writer_id, self.transactional
        )


def consumer_configs(c: FoldConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """The events consumer's configuration, and the changelog readers' (restore, standby tail)."""
    common = {
        **client_config(c.bootstrap),
        "group.id": c.group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
        "queued.max.messages.kbytes": 16384,  # prefetched records, for all partitions together
        # Only committed changelog transactions: an aborted batch (a fenced owner's) is never
        # restored nor tailed, and a moved record whose batch aborted is never folded. (librdkafka's
        # default too; said here because it is load-bearing.)
        "isolation.level": "read_committed",
        "logger": KAFKA_CLIENT_LOG,
    }
    # The changelog's readers see the end of a partition as an event: its last offset is a
    # transaction's commit marker, which no consumer returns, so "the last record read" never
    # reaches the end and a consume would wait out its timeout.
    changelog_readers = {**common, "fetch.wait.max.ms": 100, "enable.partition.eof": True}
    return {**common, "fetch.wait.max.ms": c.fetch_wait_ms}, changelog_readers
