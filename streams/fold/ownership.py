"""The partitions one worker serves and keeps warm: their open stores, and moving them in and out.

An assignment first takes each new partition's transactional id (fencing any earlier owner off its
changelog, ``streams.fold.checkpoint``), then restores it from the changelog (``streams.fold.restore``)
and assigns its events to the fold's consumer from the store's source offset; a revocation commits
and lets go; a partition lost to a newer owner is let go of without a commit; a switch serves
another table generation. Standby partitions are tailed into their stores (``streams.fold.standby``).

The fold loop's thread only; the reads (``streams.fold.reads``) see ``partitions`` and ``serving``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from streams.fold.checkpoint import Checkpoint, Fence
from streams.fold.config import FoldConfig, consumer_configs
from streams.fold.partition import OpenPartition
from streams.fold.restore import restore_partition
from streams.fold.standby import Standbys
from streams.fold.store import PartitionStore
from streams.kafka.clients import close_within
from streams.privacy.keyring import KeyRing, KeysUnavailable

log = logging.getLogger(__name__)

Interrupted = Callable[[], bool]


class Ownership:
    """No I/O until :meth:`start`."""

    def __init__(
        self,
        config: FoldConfig,
        fence: Fence,
        fault: Callable[[str], None],
        stopping: Interrupted,
        commands_waiting: Interrupted,
        keys: KeyRing | None = None,
        on_lost: Callable[[frozenset[int]], None] | None = None,
    ) -> None:
        self.config = config
        self.partitions: dict[int, OpenPartition] = {}  # open stores, serving or not
        self.serving: frozenset[int] = frozenset()  # restored and folded by this worker now
        self.assigned: frozenset[int] = frozenset()  # what the control plane gave us (serving or not)
        self.generation: int | None = None  # the group generation of the last assignment
        self.restoring: frozenset[int] = frozenset()  # being restored from the changelog now
        self.restored_by_partition: dict[int, int] = {}  # changelog records restored, since start
        self.standbys = Standbys(config.changelog_topic, lambda partition: self.open(partition).store)
        self.consumer: Consumer | None = None  # the events, of the served partitions
        self._restorer: Consumer | None = None
        self._fence, self._fault = fence, fault
        self._stopping, self._commands_waiting = stopping, commands_waiting
        self._keys = keys
        self._keys_read = False  # the key ring read to its end once (``_read_keys``)
        # Called with partitions a newer owner fenced this worker off: the control plane rejoins the
        # group, so that an assignment says who serves them now.
        self._on_lost = on_lost
        self._options: Any = None
        self._last_commit = 0.0
        self.checkpoint = self._new_checkpoint()

    def start(self) -> None:
        c = self.config
        self._options = c.memory.options()
        events, changelog_readers = consumer_configs(c)
        self.consumer = Consumer({**events, "client.id": f"{c.writer_id}-fold"})
        self._restorer = Consumer({**changelog_readers, "client.id": f"{c.writer_id}-restore"})
        self.standbys.consumer = Consumer({**changelog_readers, "client.id": f"{c.writer_id}-standby"})
        self.checkpoint.start()

    def _new_checkpoint(self) -> Checkpoint:
        def give_up(waited_s: float) -> bool:
            return self._stopping() or (self._commands_waiting() and waited_s >= 5)

        return Checkpoint(self.config.target(), self._fence, give_up, self._fault)

    def open(self, partition: int) -> OpenPartition:
        state = self.partitions.get(partition)
        if state is None:
            c = self.config
            store = PartitionStore(c.stores_dir / f"sessions-{partition}", self._options)
            store.open()
            history = None
            if c.history_store:
                history = PartitionStore(c.stores_dir / f"history-{partition}", self._options, write_ahead_log=False)
                history.open()
            state = self.partitions[partition] = OpenPartition(store, history)
        return state

    def _read_keys(self) -> None:
        """Once, before the first partition is served: the key ring has read every data key that
        existed, so the reads of restored states (on the web's event loop) never wait for one."""
        if self._keys is None or self._keys_read:
            return
        try:
            self._keys.catch_up(30.0)
            self._keys_read = True
        except KeysUnavailable as exc:  # a later read or fold looks for its key itself
            log.warning("the session keys were not all read before serving: %s", exc)

    def assign(self, partitions: frozenset[int], generation: int | None, standbys: frozenset[int]) -> None:
        assert self.consumer is not None and self._restorer is not None
        self._read_keys()
        self.revoke(self.serving - partitions)
        # First: a standby promoted to active stops being tailed (nothing tailed lands after this).
        self.standbys.keep_warm(standbys - partitions)
        c = self.config
        self.generation = generation
        self.assigned = partitions
        adding = sorted(partitions - self.serving)
        assigned = []
        serving = set(self.serving & partitions)

        def interrupted() -> bool:
            return self._stopping() or self._commands_waiting()

        # First the fence: from here on no earlier owner can append to these partitions'
        # changelogs, and what one left open is aborted, so each restore reads its final state.
        fenced_off = self.checkpoint.open_many(adding, interrupted)
        for partition in adding:
            state = self.open(partition)
            if partition not in fenced_off:
                log.info("partition %d: not served for now (a command is waiting)", partition)
                break
            self.restoring = frozenset({partition})
            self.restored_by_partition.setdefault(partition, 0)

            def progress(records: int, partition: int = partition) -> None:
                self.restored_by_partition[partition] += records

            # A rebalance during a long restore must not wait for it (the group would time us out):
            # a pending command cuts it short.
            try:
                complete = restore_partition(self._restorer, c.changelog_topic, partition, state, interrupted, progress)
            finally:
                self.restoring = frozenset()
            if not complete:
                break
            serving.add(partition)
            source_offset = state.store.source_offset
            state.next_offset = source_offset if source_offset is not None else 0
            state.committed = -1
            start = source_offset if source_offset is not None else OFFSET_BEGINNING
            assigned.append(TopicPartition(c.events_topic, partition, start))
        if assigned:
            self.consumer.incremental_assign(assigned)
        self.serving = frozenset(serving)
        for partition in fenced_off - serving:  # cut short: the next assignment takes it over anew
            self.checkpoint.close(partition)
        # Partitions kept open but neither ours nor standbys: close them (their files stay).
        for partition in set(self.partitions) - partitions - self.standbys.partitions:
            self.partitions.pop(partition).close()

    def revoke(self, partitions: frozenset[int]) -> None:
        """Called between batches: everything folded so far is flushed and written already."""
        leaving = partitions & self.serving
        if leaving:
            # Not waited for: a commit waits for the group's coordinator, which a broker fault may
            # have taken away, and the rebalance waits for this revocation.
            self.commit(force=True)
            self._let_go(leaving)

    def lose(self, partitions: set[int]) -> None:
        """Partitions a newer owner fenced us off: stop folding them now, without a commit (the
        group's rebalance says the rest; a later assignment restores them from the changelog)."""
        leaving = frozenset(partitions) & self.serving
        if not leaving:
            return
        self._let_go(leaving)
        log.warning("partitions %s: another worker owns them now; no longer folding them", sorted(leaving))
        if self._on_lost is not None:
            self._on_lost(leaving)

    def _let_go(self, leaving: frozenset[int]) -> None:
        assert self.consumer is not None
        self.serving = self.serving - leaving
        self.consumer.incremental_unassign([TopicPartition(self.config.events_topic, p) for p in sorted(leaving)])
        for partition in leaving:
            # The store stays open in case the partition comes back; the cache may not survive it.
            self.partitions[partition].cache.clear()
            self.checkpoint.close(partition)

    def reopen(self) -> None:
        """Close every store and serve the same partitions again, restored past the stores' offsets
        from the changelog (after a write the disk refused: RocksDB takes no write until reopened)."""
        assigned, standbys = self.assigned, self.standbys.partitions
        self.revoke(self.serving)
        self.standbys.keep_warm(frozenset())
        for partition in list(self.partitions):
            self.partitions.pop(partition).close()
        self.assign(assigned, self.generation, standbys)

    def switch(self, changelog_topic: str, stores_dir: Path) -> None:
        """Between batches: what was folded is flushed and written; close the old generation's
        stores and restore the assigned partitions from the new one."""
        assigned, standbys = self.assigned, self.standbys.partitions
        self.revoke(self.serving)
        self.standbys.keep_warm(frozenset())  # no longer tailing the old changelog
        for state in self.partitions.values():
            state.close()
        self.partitions.clear()
        self.restored_by_partition.clear()
        self.checkpoint.close_all()
        self.config = replace(self.config, changelog_topic=changelog_topic, stores_dir=stores_dir)
        self.checkpoint = self._new_checkpoint()
        self.checkpoint.start()
        self.standbys.topic = changelog_topic
        log.warning("switching to changelog %s, stores in %s", changelog_topic, stores_dir)
        self.assign(assigned, self.generation, standbys)

    def rewind(self, partitions: set[int] | dict[int, Any]) -> None:
        """Read these partitions again from their stores' offsets (a batch that was not written)."""
        assert self.consumer is not None
        for partition in partitions:
            if partition in self.serving:
                offset = self.partitions[partition].next_offset
                self.consumer.seek(TopicPartition(self.config.events_topic, partition, offset))

    def commit(self, force: bool, wait: bool = False) -> None:
        """The served partitions' positions under the fold's group id, now and then (lag tools);
        ``force``: now; ``wait``: until the coordinator answered (at shutdown only)."""
        now = time.monotonic()
        if self.consumer is None or (not force and now - self._last_commit < self.config.commit_every_s):
            return
        self._last_commit = now
        commit_positions(self.consumer, self.config.events_topic, self.partitions, self.serving, wait)

    def close(self) -> None:
        try:
            self.commit(force=True, wait=True)
        except Exception:
            log.debug("final commit failed", exc_info=True)
        self.serving = frozenset()
        self.checkpoint.close_all()
        close_within((self.consumer, self._restorer, self.standbys.consumer), "the fold loop")
        for state in self.partitions.values():
            state.close()
        self.partitions.clear()


def commit_positions(
    consumer: Consumer, topic: str, partitions: Mapping[int, OpenPartition], serving: Iterable[int], wait: bool
) -> None:
    """Commit the served partitions' next offsets under the fold's group id: for lag tools only
    (the store, not this, says where a partition's fold stands)."""
    offsets = [
        TopicPartition(topic, p, partitions[p].next_offset)
        for p in sorted(serving)
        if partitions[p].next_offset != partitions[p].committed
    ]
    if not offsets:
        return
    try:
        if wait:
            consumer.commit(offsets=offsets, asynchronous=False)
        else:
            consumer.commit(offsets=offsets, asynchronous=True)
    except Exception as exc:  # noqa: BLE001 - lag figures only; the store is the truth
        log.info("offset commit for lag tools failed: %s", exc)
        return
    for tp in offsets:
        partitions[tp.partition].committed = tp.offset
