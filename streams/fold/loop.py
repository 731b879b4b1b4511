"""The fold loop: the data plane, on its own thread, for exactly the partitions the control plane assigns.

Per call it takes thousands of records (confluent-kafka ``consume``), folds each partition's share
with :func:`streams.fold.batch.fold_batch`, and then, in this order:

1. the checkpoint (:mod:`streams.fold.checkpoint`): per partition one changelog transaction (a
   record per changed session, the dead letters, the marker), flushed; the fence (the group
   generation is still the one it assigned under, and no newer owner took the partition's
   transactional id) before the commit; then one ``WriteBatch`` per partition into the store;
2. answers the HTTP writes waiting for their events, and now and then commits the source offsets
   under the fold's own group id, for lag tools only (the store is the truth).

A crash between any two steps loses nothing: before the store write the store still stands at the last batch and
catching up from the changelog (records past the store's changelog offset) moves it forward; any
event folded twice is recognised by its offset, which every stored session keeps. ``docs/engine.md``
walks through each case.

Commands from the control plane (assign, revoke, stop) run between batches, so a revocation
returns only once the last batch of those partitions is flushed and written.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    Message,
    TopicPartition,
)

from projections.lifetime import expired
from projections.rules import Rules
from schemas.personal import is_personal_state, public_keys
from schemas.session import decode_state
from streams.fold import locator
from streams.fold.batch import BatchOutcome, SourceRecord, Stored, fold_batch
from streams.fold.checkpoint import (
    Checkpoint,
    Fence,
    Outgoing,
    Target,
    batch_records,
    commit_positions,
    expiry_records,
    write_store,
)
from streams.fold.partition import OpenPartition
from streams.fold.restore import restore_partition
from streams.fold.standby import Standbys
from streams.fold.store import (
    DataFolderFull,
    PartitionStore,
    StoreClosed,
    StoredSession,
    StoreMemory,
    history_key,
    pack_session,
    stored_activity,
    stored_state,
    unpack_stored,
)
from streams.fold_waiters import FoldWaiters
from streams.kafka.clients import client_config
from streams.kafka.partitioner import MOVED_FROM_HEADER, misplaced, partition_of
from streams.kafka.producer import KAFKA_CLIENT_LOG
from streams.kafka.records import record_timestamp
from streams.memory import trim
from streams.privacy.keyring import KeyRing, KeysUnavailable
from streams.privacy.sealing import is_sealed, open_json, seal_state

log = logging.getLogger(__name__)

SPACE_RETRY_S = 2.0  # how often a full data folder is tried again
IDLE_BEFORE_TRIM_S = 0.5  # how long without records before freed memory goes back to the system
# Called once per written batch: (events folded by type, dead letters by type ("" = did not decode),
# records in the batch, records skipped as redeliveries, seconds to fold, flush and write). The metrics.
BatchObserver = Callable[[dict[str, int], dict[str, int], int, int, float], None]
# Called per partition of a written batch with the keys of the sessions it wrote (the explorer's
# recently active sessions, ``streams.activity``); it must be quick and must not raise.
WrittenObserver = Callable[[int, Collection[bytes]], None]
# How often the loop copies the consumer's high watermarks for lag() (metrics, any thread).
HIGHS_EVERY_S = 0.5


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


@dataclass
class _Command:
    kind: str  # "assign", "revoke", "switch", "stop"
    partitions: frozenset[int]
    generation: int | None
    done: concurrent.futures.Future[None]
    standbys: frozenset[int] = frozenset()  # with "assign": the partitions to keep warm
    switch_to: _Switch | None = None


@dataclass(frozen=True)
class _Switch:
    changelog_topic: str
    stores_dir: Path
    rules: Rules


class FoldLoop:
    """No network or disk I/O until :meth:`start`."""

    def __init__(
        self,
        config: FoldConfig,
        rules: Rules,
        waiters: FoldWaiters,
        fence: Fence,
        on_batch: BatchObserver | None = None,
        on_lost: Callable[[frozenset[int]], None] | None = None,
        on_written: WrittenObserver | None = None,
        keys: KeyRing | None = None,
    ) -> None:
        self.config = config
        # Personal values are sealed in the store and the changelog under the sessions' data keys,
        # opened for the fold and for reads (streams.privacy). None: no key ring (kept in clear).
        self.keys = keys
        self.rules = rules
        self.waiters = waiters
        self.fence = fence
        self.on_batch = on_batch
        # Called with partitions a newer owner fenced this worker off (its thread): the control
        # plane rejoins the group, so that an assignment says who serves them now.
        self.on_lost = on_lost
        self.on_written = on_written
        self._restoring: frozenset[int] = frozenset()  # being restored from the changelog now
        self._restored_by_partition: dict[int, int] = {}  # changelog records restored, since start
        self._highs: dict[int, int] = {}  # the event partitions' high watermarks, as last seen
        self._highs_at = 0.0
        self._commands: queue.SimpleQueue[_Command] = queue.SimpleQueue()
        self._partitions: dict[int, OpenPartition] = {}  # open stores, serving or not
        self._serving: frozenset[int] = frozenset()  # restored and folded by this worker now
        self._assigned: frozenset[int] = frozenset()  # what the control plane gave us (serving or not)
        self._generation: int | None = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._consumer: Consumer | None = None
        self._restorer: Consumer | None = None
        self._standbys = Standbys(config.changelog_topic, lambda partition: self._open(partition).store)
        self._checkpoint = self._new_checkpoint()
        self._options: Any = None
        self._stopping = False
        self._batches_seen = 0
        self._held = False  # the "hold" fault point's one batch has waited
        self._last_fold = 0.0  # when the last batch was folded; 0 once trimmed after it
        self._batch_messages: list[Message] = []
        self._batch_ends: dict[int, int] = {}  # per partition: the offset after the batch's last record
        self._batch_stamps: dict[int, list[int]] = {}  # per partition: the folded records' timestamps
        self._misplaced: dict[int, list[Message]] = {}  # per partition: the batch's records of other keys
        self._moved_records = 0  # misplaced records re-appended to their key's partition, since start
        self._full_since: float | None = None  # the data folder is full: folding paused since then
        self._full_retry_at = 0.0
        self._full_incidents = 0  # times the data folder filled up, since start
        self._last_commit = 0.0
        self._last_sweep = time.monotonic()  # the first sweep comes a period after the start
        self._failed: Exception | None = None
        self._keys_read = False  # the key ring read to its end once (``_read_keys``)

    # -- the control plane's side (any thread) ---------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        c = self.config
        self._loop = loop
        self._options = c.memory.options()
        common = {
            **client_config(c.bootstrap),
            "group.id": c.group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
            "queued.max.messages.kbytes": 16384,  # prefetched records, for all partitions together
            # Only committed changelog transactions: an aborted batch (a fenced owner's) is never
            # restored nor tailed. (librdkafka's default too; said here because it is load-bearing.)
            "isolation.level": "read_committed",
            "logger": KAFKA_CLIENT_LOG,
        }
        # The changelog's readers see the end of a partition as an event: its last offset is a
        # transaction's commit marker, which no consumer returns, so "the last record read" never
        # reaches the end and a consume would wait out its timeout.
        changelog_readers = {**common, "fetch.wait.max.ms": 100, "enable.partition.eof": True}
        self._consumer = Consumer({**common, "fetch.wait.max.ms": c.fetch_wait_ms, "client.id": f"{c.writer_id}-fold"})
        self._restorer = Consumer({**changelog_readers, "client.id": f"{c.writer_id}-restore"})
        self._standbys.consumer = Consumer({**changelog_readers, "client.id": f"{c.writer_id}-standby"})
        self._checkpoint.start()
        self._thread = threading.Thread(target=self._run, name="fold-loop", daemon=True)
        self._thread.start()

    def assign(
        self, partitions: Iterable[int], generation: int | None, standbys: Iterable[int] = ()
    ) -> concurrent.futures.Future[None]:
        """Serve ``partitions`` (restore, then fold) and keep ``standbys`` warm (tail their changelog)."""
        return self._command("assign", partitions, generation, frozenset(standbys))

    def revoke(self, partitions: Iterable[int]) -> concurrent.futures.Future[None]:
        return self._command("revoke", partitions, None)

    def switch(self, changelog_topic: str, stores_dir: Path, rules: Rules) -> concurrent.futures.Future[None]:
        """Serve another table generation (``streams.fold.generations``): between two batches, let
        go of every partition, then restore the assigned ones from ``changelog_topic`` into stores
        under ``stores_dir`` and fold on from their source offsets with ``rules``. Not ready meanwhile."""
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._ready.clear()
        switch_to = _Switch(changelog_topic, stores_dir, rules)
        self._commands.put(_Command("switch", frozenset(), None, done, switch_to=switch_to))
        return done

    def positions(self) -> dict[int, int]:
        """The next event offset to fold, per served partition (any thread; for progress)."""
        partitions = self._partitions
        return {p: partitions[p].next_offset for p in self._serving if p in partitions}

    @property
    def failure(self) -> Exception | None:
        """Why the loop stopped, when it failed."""
        return self._failed

    def stop(self, timeout_s: float = 30.0) -> None:
        if self._thread is None:
            return
        self._command("stop", (), None)
        self._thread.join(timeout_s)
        self._thread = None

    def _new_checkpoint(self) -> Checkpoint:
        def give_up(waited_s: float) -> bool:
            return self._stopping or (not self._commands.empty() and waited_s >= 5)

        return Checkpoint(self.config.target(), self.fence, give_up, self._fault)

    def _command(
        self, kind: str, partitions: Iterable[int], generation: int | None, standbys: frozenset[int] = frozenset()
    ) -> concurrent.futures.Future[None]:
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        if kind != "stop":
            self._ready.clear()
        self._commands.put(_Command(kind, frozenset(partitions), generation, done, standbys))
        return done

    @property
    def ready(self) -> bool:
        """Every partition assigned to this worker is restored and the loop runs."""
        return self._ready.is_set() and self._failed is None and self._thread is not None and self._full_since is None

    @property
    def out_of_space(self) -> bool:
        """The data folder is full: folding waits for room (reads serve what was folded before)."""
        return self._full_since is not None

    @property
    def full_incidents(self) -> int:
        """Times the data folder filled up and folding paused, since start."""
        return self._full_incidents

    @property
    def serving(self) -> frozenset[int]:
        return self._serving

    @property
    def restoring(self) -> frozenset[int]:
        return self._restoring

    @property
    def restored_by_partition(self) -> dict[int, int]:
        return dict(self._restored_by_partition)

    def partition_of(self, key: bytes) -> int:
        return partition_of(key, self.config.partitions)

    @property
    def moved_records(self) -> int:
        """Records re-appended to their key's partition (produced elsewhere), since start."""
        return self._moved_records

    def read(self, key: bytes) -> bytes | None:
        """The stored, encoded state of a session whose partition this worker serves.

        Raises :class:`StoreClosed` when it does not serve that partition (moving or restoring)."""
        raw = self._served(key).store.get(key)
        if raw is None or self._expired(stored_activity(raw), _now_ms()):
            return None
        return self._opened(stored_state(raw))

    def _opened(self, encoded: bytes) -> bytes:
        """A stored state with its personal values in clear (a destroyed key's read as erased)."""
        return encoded if self.keys is None else open_json(encoded, self.keys.find)  # only sealed ones are parsed

    def _expired(self, activity_ms: int, now_ms: int) -> bool:
        return expired(activity_ms, now_ms, self.config.lifetime_ms)  # the one lifetime rule

    def read_stored(self, key: bytes) -> StoredSession | None:
        """All a session's stored value holds (state, locator, activity); raises :class:`StoreClosed`."""
        raw = self._served(key).store.get(key)
        return None if raw is None else unpack_stored(raw)

    def locate(self, key: bytes) -> list[int]:
        """The offsets of every event folded into a session (its sealed locators, then the one in
        its value), in log order; raises :class:`StoreClosed`."""
        state = self._served(key)
        found: list[int] = []
        for _, chunk in state.store.scan(locator.chunk_prefix(key)):
            found.extend(locator.offsets(chunk))
        raw = state.store.get(key)
        if raw is not None:
            found.extend(locator.offsets(unpack_stored(raw).locator))
        return found

    def history_get(self, key: bytes, offsets: list[int]) -> dict[int, bytes]:
        """The records of ``offsets`` that the local history store holds (none when it is off)."""
        history = self._served(key).history
        if history is None:
            return {}
        found = {}
        for offset in offsets:
            value = history.get(history_key(key, offset))
            if value is not None:
                found[offset] = value
        return found

    def history_put(self, key: bytes, records: dict[int, bytes]) -> None:
        """Keep records read from Kafka for the next reader of the same session (a cache fill)."""
        history = self._served(key).history
        if history is not None and records:
            history.put_many((history_key(key, offset), value) for offset, value in records.items())

    def _served(self, key: bytes) -> OpenPartition:
        partition = self.partition_of(key)
        state = self._partitions.get(partition)
        if partition not in self._serving or state is None:
            raise StoreClosed(f"partition {partition}")
        return state

    def lag(self) -> dict[int, int]:
        """Events not folded yet, per served partition (from the consumer's cached high watermarks,
        which the loop's own thread copies every ``HIGHS_EVERY_S``: any thread may call this; a
        call into the consumer from another thread would wait for the loop's ``consume``)."""
        highs = self._highs
        lags = {}
        for partition in self._serving:
            state = self._partitions.get(partition)
            high = highs.get(partition, -1)
            if state is not None and high >= 0:
                lags[partition] = max(0, high - state.next_offset)
        return lags

    def _refresh_highs(self) -> None:
        consumer = self._consumer
        now = time.monotonic()
        if consumer is None or now - self._highs_at < HIGHS_EVERY_S:
            return
        self._highs_at = now
        highs = {}
        for partition in self._serving:
            try:
                _, high = consumer.get_watermark_offsets(
                    TopicPartition(self.config.events_topic, partition), cached=True
                )
            except Exception:  # noqa: BLE001 - no figure yet
                continue
            highs[partition] = high
        self._highs = highs

    # -- the loop's own thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopping:
                try:
                    if self._full_since is not None:
                        self._wait_for_space()
                        continue
                    self._run_commands(block=not self._serving and not self._standbys.partitions)
                    if self._serving and not self._stopping:
                        self._fold_once()
                    if self._standbys.partitions and not self._stopping:
                        self._standbys.tail(0 if self._serving else 0.1)
                except DataFolderFull as exc:
                    self._out_of_space(exc)
        except Exception as exc:  # the worker reports not ready; the log says why
            log.exception("the fold loop stopped")
            self._failed = exc
        finally:
            self._shutdown()

    def _run_commands(self, block: bool) -> None:
        while True:
            try:
                command = self._commands.get(timeout=0.2) if block else self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                if command.kind == "assign":
                    self._assign(command.partitions, command.generation, command.standbys)
                elif command.kind == "revoke":
                    self._revoke(command.partitions)
                    self._assigned = self._assigned - command.partitions
                elif command.kind == "switch" and command.switch_to is not None:
                    self._switch(command.switch_to)
                else:
                    self._stopping = True
                command.done.set_result(None)
            except Exception as exc:
                command.done.set_exception(exc)
                raise
            if self._stopping:
                return
            block = False
            if self._commands.empty() and command.kind in ("assign", "switch") and self._full_since is None:
                self._ready.set()

    def _open(self, partition: int) -> OpenPartition:
        state = self._partitions.get(partition)
        if state is None:
            c = self.config
            store = PartitionStore(c.stores_dir / f"sessions-{partition}", self._options)
            store.open()
            history = None
            if c.history_store:
                history = PartitionStore(c.stores_dir / f"history-{partition}", self._options, write_ahead_log=False)
                history.open()
            state = self._partitions[partition] = OpenPartition(store, history)
        return state

    def _read_keys(self) -> None:
        """Once, before the first partition is served: the key ring has read every data key that
        existed, so the reads of restored states (on the web's event loop) never wait for one."""
        if self.keys is None or self._keys_read:
            return
        try:
            self.keys.catch_up(30.0)
            self._keys_read = True
        except KeysUnavailable as exc:  # a later read or fold looks for its key itself
            log.warning("the session keys were not all read before serving: %s", exc)

    def _assign(self, partitions: frozenset[int], generation: int | None, standbys: frozenset[int]) -> None:
        assert self._consumer is not None and self._restorer is not None
        self._read_keys()
        self._revoke(self._serving - partitions)
        # First: a standby promoted to active stops being tailed (nothing tailed lands after this).
        self._standbys.keep_warm(standbys - partitions)
        c = self.config
        self._generation = generation
        self._assigned = partitions
        adding = sorted(partitions - self._serving)
        assigned = []
        serving = set(self._serving & partitions)
        # First the fence: from here on no earlier owner can append to these partitions'
        # changelogs, and what one left open is aborted, so each restore reads its final state.
        fenced_off = self._checkpoint.open_many(adding, lambda: self._stopping or not self._commands.empty())
        for partition in adding:
            state = self._open(partition)
            if partition not in fenced_off:
                log.info("partition %d: not served for now (a command is waiting)", partition)
                break
            self._restoring = frozenset({partition})
            self._restored_by_partition.setdefault(partition, 0)

            def progress(records: int, partition: int = partition) -> None:
                self._restored_by_partition[partition] += records

            # A rebalance during a long restore must not wait for it (the group would time us out):
            # a pending command cuts it short.
            try:
                complete = restore_partition(
                    self._restorer, c.changelog_topic, partition, state,
                    lambda: self._stopping or not self._commands.empty(), progress,
                )  # fmt: skip
            finally:
                self._restoring = frozenset()
            if not complete:
                break
            serving.add(partition)
            source_offset = state.store.source_offset
            state.next_offset = source_offset if source_offset is not None else 0
            state.committed = -1
            start = source_offset if source_offset is not None else OFFSET_BEGINNING
            assigned.append(TopicPartition(c.events_topic, partition, start))
        if assigned:
            self._consumer.incremental_assign(assigned)
        self._serving = frozenset(serving)
        for partition in fenced_off - serving:  # cut short: the next assignment takes it over anew
            self._checkpoint.close(partition)
        # Partitions kept open but neither ours nor standbys: close them (their files stay).
        for partition in set(self._partitions) - partitions - self._standbys.partitions:
            self._partitions.pop(partition).close()

    # -- a full data folder ------------------------------------------------------------------------

    def _out_of_space(self, full: DataFolderFull) -> None:
        """A store write found no room: nothing of that write is in the store, and RocksDB refuses
        the store's later writes. The batch is in the changelog already (committed before the store
        write), so nothing is lost: folding pauses, and resumes from the changelog once there is room."""
        now = time.monotonic()
        self._full_retry_at = now + SPACE_RETRY_S
        if self._full_since is not None:
            log.info("the data folder is still full: %s", full)
            return
        self._full_since = now
        self._full_incidents += 1
        self._ready.clear()
        log.error(
            "the data folder %s is full (%s): folding is paused and /readyz answers 503 until there is room; "
            "reads serve what was folded before, writes that wait for their fold answer 503",
            self.config.stores_dir, full,
        )  # fmt: skip

    def _wait_for_space(self) -> None:
        """Between tries, the control plane's commands (a revocation must not wait for the disk);
        each try opens the stores again and catches them up from the changelog."""
        self._run_commands(block=True)
        if self._stopping or time.monotonic() < self._full_retry_at:
            return
        self._full_retry_at = time.monotonic() + SPACE_RETRY_S
        assigned, standbys = self._assigned, self._standbys.partitions
        self._revoke(self._serving)  # offsets as written; the caches go
        self._standbys.keep_warm(frozenset())
        for partition in list(self._partitions):
            self._partitions.pop(partition).close()
        self._assign(assigned, self._generation, standbys)  # restores past the store's offsets
        assert self._full_since is not None
        log.warning("the data folder has room again: folding resumed after %.0fs", time.monotonic() - self._full_since)
        self._full_since = None
        if self._commands.empty() and self._serving == assigned:
            self._ready.set()

    # -- standby replicas (streams.fold.standby) ------------------------------------------------

    @property
    def standby(self) -> frozenset[int]:
        return self._standbys.partitions

    def standby_lag(self) -> dict[int, int]:
        """Changelog records not yet copied, per standby partition (as last seen)."""
        return self._standbys.lag()

    def read_standby(self, key: bytes) -> tuple[bytes | None, int]:
        """A session from this worker's standby copy, and how stale that copy may be (ms since it
        last had everything its owner had appended). Raises :class:`StoreClosed` when this worker
        keeps no standby of the session's partition, or the copy never caught up."""
        partition = self.partition_of(key)
        state = self._partitions.get(partition)
        caught_up = self._standbys.caught_up_at(partition)
        if state is None or caught_up is None:
            raise StoreClosed(f"no standby of partition {partition}")
        staleness_ms = max(0, int((time.time() - caught_up) * 1000))
        raw = state.store.get(key)
        if raw is None or self._expired(stored_activity(raw), _now_ms()):
            return None, staleness_ms
        return self._opened(stored_state(raw)), staleness_ms

    def _switch(self, to: _Switch) -> None:
        """Between batches: what was folded is flushed and written; close the old generation's
        stores and restore the assigned partitions from the new one."""
        assigned, standbys = self._assigned, self._standbys.partitions
        self._revoke(self._serving)
        self._standbys.keep_warm(frozenset())  # no longer tailing the old changelog
        for state in self._partitions.values():
            state.close()
        self._partitions.clear()
        self._restored_by_partition.clear()
        self._checkpoint.close_all()
        self.config = replace(self.config, changelog_topic=to.changelog_topic, stores_dir=to.stores_dir)
        self._checkpoint = self._new_checkpoint()
        self._checkpoint.start()
        self._standbys.topic = to.changelog_topic
        self.rules = to.rules
        log.warning("switching to changelog %s, stores in %s", to.changelog_topic, to.stores_dir)
        self._assign(assigned, self._generation, standbys)

    def _revoke(self, partitions: frozenset[int]) -> None:
        """Called between batches: everything folded so far is flushed and written already."""
        assert self._consumer is not None
        leaving = partitions & self._serving
        if not leaving:
            return
        self._serving = self._serving - leaving
        self._commit(force=True)
        self._consumer.incremental_unassign([TopicPartition(self.config.events_topic, p) for p in sorted(leaving)])
        for partition in leaving:
            # The store stays open in case the partition comes back; the cache may not survive it.
            self._partitions[partition].cache.clear()
            self._checkpoint.close(partition)

    def _lose(self, partitions: set[int]) -> None:
        """Partitions a newer owner fenced us off: stop folding them now, without a commit (the
        group's rebalance says the rest; a later assignment restores them from the changelog)."""
        assert self._consumer is not None
        leaving = partitions & self._serving
        if not leaving:
            return
        self._serving = self._serving - leaving
        self._consumer.incremental_unassign([TopicPartition(self.config.events_topic, p) for p in sorted(leaving)])
        for partition in leaving:
            self._partitions[partition].cache.clear()
            self._checkpoint.close(partition)
        log.warning("partitions %s: another worker owns them now; no longer folding them", sorted(leaving))
        if self.on_lost is not None:
            self.on_lost(frozenset(leaving))

    def _fold_once(self) -> None:
        assert self._consumer is not None
        c = self.config
        messages = self._consumer.consume(c.batch_max, c.batch_wait_s)
        if messages:
            by_partition = self._split(messages)
            if by_partition:
                self._fold(by_partition)
                self._last_fold = time.monotonic()
        elif self._last_fold and time.monotonic() - self._last_fold > IDLE_BEFORE_TRIM_S:
            # Idle after a burst: what its batches freed goes back to the system (glibc would keep
            # it; after folding 1,000,000 sessions that was 250 MB of RSS). Not between the batches
            # of a steady stream: a trim walks the heap and holds malloc's lock meanwhile.
            self._last_fold = 0.0
            trim()
        self._commit(force=False)
        self._refresh_highs()
        self._sweep()

    def _split(self, messages: list[Message]) -> dict[int, list[tuple[bytes | None, bytes | None, int]]]:
        """The batch's records to fold, per partition (a partition whose records all belong
        elsewhere has an empty list: its marker still moves past them)."""
        by_partition: dict[int, list[tuple[bytes | None, bytes | None, int]]] = {}
        ends: dict[int, int] = {}
        elsewhere: dict[int, list[Message]] = {}
        stamps: dict[int, list[int]] = {}
        partitions = self.config.partitions
        for message in messages:
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise RuntimeError(f"consumer: {error.str()}")
                log.warning("consumer: %s", error.str())
                continue
            partition = message.partition() or 0
            if partition not in self._serving:
                continue  # fetched just before a revocation
            records = by_partition.get(partition)
            if records is None:
                records = by_partition[partition] = []
                stamps[partition] = []
            key, offset = message.key(), message.offset() or 0
            ends[partition] = offset + 1
            if misplaced(key, partition, partitions):
                elsewhere.setdefault(partition, []).append(message)  # its key's owner folds it
                continue
            records.append((key, message.value(), offset))
            stamps[partition].append(record_timestamp(message))
        self._batch_messages = messages
        self._batch_stamps = stamps
        self._batch_ends = ends
        self._misplaced = elsewhere
        return by_partition

    def _source_timestamp(self, partition: int, offset: int) -> int:
        """The Kafka timestamp of a record of the current batch (the event's time): a dead letter
        keeps it. 0 (librdkafka: now) when not found. Dead letters are rare: a scan is fine."""
        for message in self._batch_messages:
            if message.partition() == partition and message.offset() == offset:
                return record_timestamp(message)
        return 0

    def _fold(self, by_partition: dict[int, list[tuple[bytes | None, bytes | None, int]]]) -> None:
        c = self.config
        started = time.perf_counter()
        self._batches_seen += 1
        outcomes: dict[int, BatchOutcome] = {}
        sealed_records: dict[tuple[int, int], bytes] = {}  # (partition, offset) -> the record as logged
        try:
            for partition, records in by_partition.items():
                state = self._partitions[partition]
                outcomes[partition] = fold_batch(
                    self._open_records(partition, records, sealed_records),
                    self._reader(state),
                    self.rules,
                    c.max_session_bytes,
                    c.lifetime_ms,
                    self._batch_stamps[partition],
                    c.max_skew_ms,
                )
            packed = self._pack(outcomes)
        except KeysUnavailable as exc:
            log.warning("the session keys cannot be read or written (%s): folding the batch again", exc)
            time.sleep(1.0)  # a pause before the retry, not a wait for a condition
            self._rewind(by_partition)
            return
        generation = self._generation
        if not self._checkpoint.fence_holds(generation):
            self._rewind(by_partition, wait_for_commands=True)
            return
        self._fault("before_produce")
        target = c.target()
        outgoing: dict[int, Outgoing] = {
            p: batch_records(target, p, o, packed[p], self._batch_ends[p], sealed_records, self._source_timestamp)
            for p, o in outcomes.items()
        }
        if self._misplaced:
            self._move(outgoing)
        published = self._checkpoint.publish(outgoing, generation)
        self._lose(published.fenced)
        if published.failed:
            self._rewind({p: by_partition[p] for p in published.failed}, wait_for_commands=published.moved)
        if not published.committed:
            return
        self._fault("after_flush")
        awaited: list[tuple[str, bytes]] = []
        waiting = len(self.waiters) > 0
        for partition, marker_offset in published.committed.items():
            outcome, state = outcomes[partition], self._partitions[partition]
            sessions = packed[partition]
            if outcome.sealed:  # rare: a session of thousands of events
                sessions = {**outcome.sealed, **sessions}
            assert marker_offset is not None
            self._moved_records += len(outgoing[partition].moved)
            write_store(state, by_partition[partition], sessions, self._batch_ends[partition], marker_offset + 1)
            self._remember(state, packed[partition])
            if self.on_written is not None:
                self.on_written(partition, [key for key, value in packed[partition].items() if value is not None])
            if waiting:
                awaited.extend(
                    (event_id, outcome.writes[key].encoded if key in outcome.writes else b"")  # b"": erased
                    for event_id, key in outcome.folded
                    if event_id in self.waiters
                )
        written = {p: by_partition[p] for p in published.committed}
        outcomes = {p: outcomes[p] for p in published.committed}
        by_partition = written
        if self.on_batch is not None:
            self._observe(by_partition, outcomes, time.perf_counter() - started)
        self._fault("after_write")
        if awaited and self._loop is not None:
            self._loop.call_soon_threadsafe(self.waiters.folded_many, awaited)

    def _move(self, outgoing: dict[int, Outgoing]) -> None:
        """The batch's misplaced records, each to its key's partition, in the transaction of the
        partition it was read from (moved once, with the marker that goes past it)."""
        partitions = self.config.partitions
        for partition, messages in self._misplaced.items():
            if not self.config.move_misplaced:
                continue
            out = outgoing[partition]
            for message in messages:
                key = message.key()
                assert key is not None
                raw = message.headers() or []
                headers: list[tuple[str, str | bytes | None]] = list(raw.items() if isinstance(raw, dict) else raw)
                headers.append((MOVED_FROM_HEADER, f"{partition}@{message.offset()}".encode()))
                out.moved.append(
                    (partition_of(key, partitions), key, message.value(), headers, record_timestamp(message))
                )
        # Counted when committed: see _fold.

    def _observe(
        self,
        by_partition: dict[int, list[tuple[bytes | None, bytes | None, int]]],
        outcomes: dict[int, BatchOutcome],
        seconds: float,
    ) -> None:
        assert self.on_batch is not None
        folded: dict[str, int] = {}
        dead: dict[str, int] = {}
        skipped = 0
        for outcome in outcomes.values():
            for event_type, count in outcome.folded_by_type().items():
                folded[event_type] = folded.get(event_type, 0) + count
            if outcome.dead:
                for event_type, count in outcome.dead_by_type().items():
                    dead[event_type] = dead.get(event_type, 0) + count
            skipped += outcome.skipped
        records = sum(len(records) for records in by_partition.values())
        try:
            self.on_batch(folded, dead, records, skipped, seconds)
        except Exception:  # metrics never stop the fold
            log.exception("reporting a batch's metrics failed")

    def _reader(self, state: OpenPartition) -> Callable[[bytes], Stored | None]:
        cache, store = state.cache, state.store

        def read(key: bytes) -> Stored | None:
            raw = cache.get(key)
            if raw is None:
                raw = store.get(key)
                if raw is None:
                    return None
            stored = unpack_stored(raw)
            encoded = self._opened(stored.encoded)
            return Stored(stored.offset, decode_state(encoded), stored.locator, stored.activity_ms)

        return read

    def _open_records(
        self, partition: int, records: list[SourceRecord], sealed_records: dict[tuple[int, int], bytes]
    ) -> list[SourceRecord]:
        """The records with their personal values opened for the fold (transformers see them in
        clear); the records as logged are kept in ``sealed_records`` for the dead letters."""
        keys = self.keys
        if keys is None or not any(is_sealed(value) for _, value, _ in records if value is not None):
            return records
        opened: list[SourceRecord] = []
        for key, value, offset in records:
            if value is not None and is_sealed(value):
                sealed_records[partition, offset] = value
                value = open_json(value, keys.find)
            opened.append((key, value, offset))
        return opened

    def _pack(self, outcomes: dict[int, BatchOutcome]) -> dict[int, dict[bytes, bytes | None]]:
        """Each changed session's stored bytes, built once (the changelog value, the store value and
        the cache entry are the same object), its personal values sealed; None for an erased one."""
        personal = public_keys(self.rules.personal_public_keys)
        keys = self.keys
        needing: set[str] = set()
        if keys is not None:
            for outcome in outcomes.values():
                for w in outcome.writes.values():
                    if is_personal_state(w.state.namespaces, w.state.facts, personal):
                        needing.add(w.state.id)
        data_keys = keys.ensure(needing) if keys is not None and needing else {}
        packed: dict[int, dict[bytes, bytes | None]] = {}
        for partition, outcome in outcomes.items():
            sessions: dict[bytes, bytes | None] = {}
            for key, w in outcome.writes.items():
                data_key = data_keys.get(w.state.id)
                encoded = w.encoded if data_key is None else seal_state(w.state, data_key, personal)
                sessions[key] = pack_session(w.offset, encoded, w.locator, w.activity_ms)
            for key in outcome.erased:
                sessions[key] = None
            packed[partition] = sessions
        return packed

    def _remember(self, state: OpenPartition, packed: dict[bytes, bytes | None]) -> None:
        """Keep the batch's sessions for the next batches (within the cache's bound), as the stored
        bytes: decoded states would be millions of objects for the garbage collector to walk, and
        its full passes (250 ms at 20,000 sessions) cost more than decoding (docs/engine.md)."""
        cache = state.cache
        for key, value in packed.items():
            cache.pop(key, None)
            if value is not None:
                cache[key] = value
        bound = max(1, self.config.cache_sessions // max(1, len(self._serving)))
        if len(cache) > bound:
            for key in list(cache)[: len(cache) - bound // 2]:  # the least recently written half goes
                del cache[key]

    def _sweep(self) -> None:
        """Expire sessions inactive for longer than their lifetime, a slice of each partition per
        call: their sealed locators and tombstones go to the changelog, then the store drops them
        (a crash in between: catching up from the changelog finishes the job)."""
        c = self.config
        now = time.monotonic()
        if not c.lifetime_ms or not self._serving or now - self._last_sweep < c.sweep_every_s:
            return
        self._last_sweep = now
        now_ms = _now_ms()
        generation = self._generation
        expired: dict[int, dict[bytes, bytes]] = {}  # partition -> session key -> its locator
        for partition in sorted(self._serving):
            state = self._partitions[partition]
            rows, state.sweep_from = state.store.scan_sessions(state.sweep_from, c.sweep_scan)
            for key, raw in rows:
                stored = unpack_stored(raw)
                if self._expired(stored.activity_ms or _activity_of(stored.encoded), now_ms):
                    expired.setdefault(partition, {})[key] = stored.locator
        if not expired:
            return
        sealed: dict[int, dict[bytes, bytes]] = {
            partition: {
                locator.chunk_key(key, locator.offsets(found)[0]): found for key, found in sessions.items() if found
            }
            for partition, sessions in expired.items()
        }
        published = self._checkpoint.publish(
            {partition: expiry_records(sealed[partition], sessions) for partition, sessions in expired.items()},
            generation,
        )
        self._lose(published.fenced)
        if published.failed:
            log.warning("session expiry not written on %s: the next sweep tries again", sorted(published.failed))
            for partition in published.failed:
                self._partitions[partition].sweep_from = b""
        for partition in published.committed:
            sessions = expired[partition]
            state = self._partitions[partition]
            state.store.expire(sealed[partition], sessions)
            for key in sessions:
                state.cache.pop(key, None)
            log.info("partition %d: %d sessions expired", partition, len(sessions))

    def _rewind(
        self, by_partition: dict[int, list[tuple[bytes | None, bytes | None, int]]], wait_for_commands: bool = False
    ) -> None:
        """Forget a batch that was not written: read its partitions again from the store's offset.
        Nothing was cached or answered for it (both happen after the write)."""
        assert self._consumer is not None
        for partition in by_partition:
            if partition in self._serving:
                offset = self._partitions[partition].next_offset
                self._consumer.seek(TopicPartition(self.config.events_topic, partition, offset))
        if wait_for_commands and not self._stopping:
            self._run_commands(block=True)  # a revocation is likely on its way

    def _commit(self, force: bool) -> None:
        now = time.monotonic()
        if self._consumer is None or (not force and now - self._last_commit < self.config.commit_every_s):
            return
        self._last_commit = now
        commit_positions(self._consumer, self.config.events_topic, self._partitions, self._serving, force)

    def _fault(self, point: str) -> None:
        spec = self.config.fault_point
        if spec.startswith("hold:"):
            if point == "before_produce" and not self._held:
                self._held = True
                generation = self._generation
                log.warning("fault point %s: batch %d waits for the group to rebalance", spec, self._batches_seen)
                deadline = time.monotonic() + float(spec.split(":")[1])
                while self.fence() == generation and time.monotonic() < deadline:
                    time.sleep(0.05)  # polling the fence: the group's state has no event to wait on here
            return
        if spec.startswith("slow:"):
            if point == "before_produce":
                # Said before the wait, so that a test can pause the process with a batch in flight.
                log.warning("fault point %s: batch %d waits before producing", spec, self._batches_seen)
                time.sleep(float(spec.split(":")[1]))
            return
        if spec and spec.split(":")[0] == point and self._batches_seen >= int(spec.split(":")[1]):
            log.warning("fault point %s reached: SIGKILL", spec)
            os.kill(os.getpid(), signal.SIGKILL)

    def _shutdown(self) -> None:
        self._ready.clear()
        try:
            self._commit(force=True)
        except Exception:
            log.debug("final commit failed", exc_info=True)
        self._serving = frozenset()
        self._checkpoint.close_all()
        for consumer in (self._consumer, self._restorer, self._standbys.consumer):
            if consumer is not None:
                consumer.close()
        for state in self._partitions.values():
            state.close()
        self._partitions.clear()
        while True:  # nobody waits forever on a command the loop will not run
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                break
            command.done.set_result(None)


def _activity_of(encoded: bytes) -> int:
    """A session's last event time from its state (values stored before the activity was kept)."""
    try:
        return int(datetime.fromisoformat(decode_state(encoded).meta.last_event_time).timestamp() * 1000)
    except ValueError:
        return 0


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
