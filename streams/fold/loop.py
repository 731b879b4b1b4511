"""The fold loop: the data plane, on its own thread, for exactly the partitions the control plane assigns.

Per call it takes thousands of records (confluent-kafka ``consume``, sorted by
``streams.fold.intake``), folds each partition's share with :func:`streams.fold.batch.fold_batch`,
and then, in this order:

1. the checkpoint (:mod:`streams.fold.checkpoint`): per partition one changelog transaction (a
   record per changed session, the dead letters, the records moved to their key's partition, the
   marker), flushed; the fence (the group generation is still the one it assigned under, and no
   newer owner took the partition's transactional id) before the commit; then one ``WriteBatch``
   per partition into the store;
2. answers the HTTP writes waiting for their events, and now and then commits the source offsets
   under the fold's own group id, for lag tools only (the store is the truth).

A crash between any two steps loses nothing: before the store write the store still stands at the
last batch and catching up from the changelog (records past the store's changelog offset) moves it
forward; any event folded twice is recognised by its offset, which every stored session keeps.
``docs/engine.md`` walks through each case.

Commands from the control plane (assign, revoke, switch, stop) run between batches
(``streams.fold.ownership`` carries them out), so a revocation returns only once the last batch of
those partitions is flushed and written. Reads from other threads go through ``streams.fold.reads``;
personal values are sealed and opened by ``streams.fold.codec``; a full data folder pauses the loop
until there is room again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable
from pathlib import Path

from projections.rules import Rules
from streams.fold import expiry
from streams.fold.batch import BatchOutcome, batch_figures, fold_batch
from streams.fold.checkpoint import Fence
from streams.fold.codec import SessionCodec
from streams.fold.commands import Commands, Switch
from streams.fold.config import FoldConfig
from streams.fold.faults import FaultPoints
from streams.fold.intake import Intake, moves, split
from streams.fold.outgoing import Outgoing, batch_records
from streams.fold.ownership import Ownership
from streams.fold.reads import Reads, now_ms
from streams.fold.store import DataFolderFull
from streams.fold.waiters import FoldWaiters
from streams.observability.memory import trim
from streams.observability.stalls import StallWatch
from streams.privacy.keyring import KeyRing, KeysUnavailable

log = logging.getLogger(__name__)

SPACE_RETRY_S = 2.0  # how often a full data folder is tried again
IDLE_BEFORE_TRIM_S = 0.5  # how long without records before freed memory goes back to the system
# A turn of the loop that takes longer logs where the loop is (streams.observability.stalls). A turn
# is a batch (well under a second) or a rebalance; writes waiting for their fold answer 503 after
# SESSIONS_WRITE_WAIT_S (5 s; 20 s on a cluster, docs/cluster.md), so a stall this long is a fault.
STALL_AFTER_S = 20.0
# Called once per written batch: (events folded by type, dead letters by type ("" = did not decode),
# records in the batch, records skipped as redeliveries, seconds to fold, flush and write). The metrics.
BatchObserver = Callable[[dict[str, int], dict[str, int], int, int, float], None]
# Called per partition of a written batch with the keys of the sessions it wrote (the explorer's
# recently active sessions, ``streams.observability.activity``); it must be quick and must not raise.
WrittenObserver = Callable[[int, Collection[bytes]], None]


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
        self.rules = rules
        self.waiters = waiters
        self.fence = fence
        self.on_batch = on_batch
        self.on_written = on_written
        self._commands = Commands()
        self._stopping = False
        self._faults = FaultPoints(config.fault_point, fence)
        self._own = Ownership(config, fence, self._fault, lambda: self._stopping, self._commands.waiting, keys, on_lost)
        # Personal values are sealed in the store and the changelog under the sessions' data keys,
        # opened for the fold and for reads (streams.privacy). None: no key ring (kept in clear).
        self._codec = SessionCodec(keys)
        own = self._own
        reads = self._reads = Reads(
            own.partitions, lambda: own.serving, own.standbys, self._codec, config.partitions, config.lifetime_ms
        )
        # Any thread (the HTTP layer, the timeline): streams.fold.reads.
        self.read, self.read_stored, self.read_standby, self.locate = (
            reads.read, reads.read_stored, reads.read_standby, reads.locate,
        )  # fmt: skip
        self.history_get, self.history_put, self.partition_of, self.lag = (
            reads.history_get, reads.history_put, reads.partition_of, reads.lag,
        )  # fmt: skip
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self.stall = StallWatch("fold loop", STALL_AFTER_S)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failed: Exception | None = None
        self._batches_seen = 0
        self._last_fold = 0.0  # when the last batch was folded; 0 once trimmed after it
        self._last_sweep = time.monotonic()  # the first sweep comes a period after the start
        self._moved_records = 0  # misplaced records re-appended to their key's partition, since start
        self._full_since: float | None = None  # the data folder is full: folding paused since then
        self._full_retry_at = 0.0
        self._full_incidents = 0  # times the data folder filled up, since start

    # -- the control plane's side (any thread) ---------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._own.start()
        self._thread = threading.Thread(target=self._run, name="fold-loop", daemon=True)
        self._thread.start()
        self.stall.watch(self._thread)

    def assign(
        self, partitions: Iterable[int], generation: int | None, standbys: Iterable[int] = ()
    ) -> concurrent.futures.Future[None]:
        """Serve ``partitions`` (restore, then fold) and keep ``standbys`` warm (tail their changelog)."""
        return self._command("assign", partitions, generation, frozenset(standbys))

    def revoke(self, partitions: Iterable[int]) -> concurrent.futures.Future[None]:
        return self._command("revoke", partitions, None)

    def switch(self, changelog_topic: str, stores_dir: Path, rules: Rules) -> concurrent.futures.Future[None]:
        """Serve another table generation (``streams.control.generations``): between two batches, let
        go of every partition, then restore the assigned ones from ``changelog_topic`` into stores
        under ``stores_dir`` and fold on from their source offsets with ``rules``. Not ready meanwhile."""
        return self._command("switch", (), None, switch_to=Switch(changelog_topic, stores_dir, rules))

    def stop(self, timeout_s: float = 30.0) -> None:
        if self._thread is None:
            return
        self._command("stop", (), None)
        self._thread.join(timeout_s)
        self._thread = None

    def _command(
        self,
        kind: str,
        partitions: Iterable[int],
        generation: int | None,
        standbys: frozenset[int] = frozenset(),
        switch_to: Switch | None = None,
    ) -> concurrent.futures.Future[None]:
        if kind != "stop":
            self._ready.clear()
        return self._commands.put(kind, partitions, generation, standbys, switch_to)

    @property
    def config(self) -> FoldConfig:
        return self._own.config

    @property
    def ready(self) -> bool:
        """Every partition assigned to this worker is restored and the loop runs."""
        return self._ready.is_set() and self._failed is None and self._thread is not None and self._full_since is None

    @property
    def failure(self) -> Exception | None:
        """Why the loop stopped, when it failed."""
        return self._failed

    @property
    def out_of_space(self) -> bool:
        """The data folder is full: folding waits for room (reads serve what was folded before)."""
        return self._full_since is not None

    @property
    def full_incidents(self) -> int:
        """Times the data folder filled up and folding paused, since start."""
        return self._full_incidents

    @property
    def moved_records(self) -> int:
        """Records re-appended to their key's partition (produced elsewhere), since start."""
        return self._moved_records

    @property
    def serving(self) -> frozenset[int]:
        return self._own.serving

    @property
    def restoring(self) -> frozenset[int]:
        return self._own.restoring

    @property
    def restored_by_partition(self) -> dict[int, int]:
        return dict(self._own.restored_by_partition)

    @property
    def standby(self) -> frozenset[int]:
        return self._own.standbys.partitions

    def standby_lag(self) -> dict[int, int]:
        """Changelog records not yet copied, per standby partition (as last seen)."""
        return self._own.standbys.lag()

    def positions(self) -> dict[int, int]:
        """The next event offset to fold, per served partition (any thread; for progress)."""
        return self._reads.positions()

    # -- the loop's own thread -------------------------------------------------------------------

    def _run(self) -> None:
        own = self._own
        try:
            while not self._stopping:
                self.stall.beat()
                try:
                    if self._full_since is not None:
                        self._wait_for_space()
                        continue
                    self._run_commands(block=not own.serving and not own.standbys.partitions)
                    if own.serving and not self._stopping:
                        self._fold_once()
                    if own.standbys.partitions and not self._stopping:
                        own.standbys.tail(0 if own.serving else 0.1)
                except DataFolderFull as exc:
                    self._out_of_space(exc)
        except Exception as exc:  # the worker reports not ready; the log says why
            log.exception("the fold loop stopped")
            self._failed = exc
        finally:
            self._shutdown()

    def _run_commands(self, block: bool) -> None:
        own = self._own
        while True:
            command = self._commands.take(block)
            self.stall.beat()  # waiting for a command is the loop's idle turn
            if command is None:
                return
            try:
                if command.kind == "assign":
                    own.assign(command.partitions, command.generation, command.standbys)
                elif command.kind == "revoke":
                    own.revoke(command.partitions)
                    own.assigned = own.assigned - command.partitions
                elif command.kind == "switch" and command.switch_to is not None:
                    own.switch(command.switch_to.changelog_topic, command.switch_to.stores_dir)
                    self.rules = command.switch_to.rules
                else:
                    self._stopping = True
                command.done.set_result(None)
            except Exception as exc:
                command.done.set_exception(exc)
                raise
            if self._stopping:
                return
            block = False
            if not self._commands.waiting() and command.kind in ("assign", "switch") and self._full_since is None:
                self._ready.set()

    def _fold_once(self) -> None:
        own = self._own
        assert own.consumer is not None
        c = own.config
        messages = own.consumer.consume(c.batch_max, c.batch_wait_s)
        if messages:
            intake = split(messages, own.serving, c.partitions)
            if intake.records:
                self._fold(intake)
                self._last_fold = time.monotonic()
        elif self._last_fold and time.monotonic() - self._last_fold > IDLE_BEFORE_TRIM_S:
            # Idle after a burst: what its batches freed goes back to the system (glibc would keep
            # it; after folding 1,000,000 sessions that was 250 MB of RSS). Not between the batches
            # of a steady stream: a trim walks the heap and holds malloc's lock meanwhile.
            self._last_fold = 0.0
            trim()
        own.commit(force=False)
        self._reads.refresh_highs(own.consumer, c.events_topic)
        self._sweep()

    def _fold(self, intake: Intake) -> None:
        own, codec = self._own, self._codec
        c = own.config
        started = time.perf_counter()
        self._batches_seen += 1
        outcomes: dict[int, BatchOutcome] = {}
        as_logged: dict[tuple[int, int], bytes] = {}  # (partition, offset) -> the record as logged
        try:
            for partition, records in intake.records.items():
                outcomes[partition] = fold_batch(
                    codec.open_records(partition, records, as_logged),
                    own.partitions[partition].reader(codec.opened),
                    self.rules,
                    c.max_session_bytes,
                    c.lifetime_ms,
                    intake.stamps[partition],
                    c.max_skew_ms,
                )
            packed = codec.pack(outcomes, self.rules)
        except KeysUnavailable as exc:
            log.warning("the session keys cannot be read or written (%s): folding the batch again", exc)
            time.sleep(1.0)  # a pause before the retry, not a wait for a condition
            self._rewind(intake.records)
            return
        generation = own.generation
        if not own.checkpoint.fence_holds(generation):
            self._rewind(intake.records, wait_for_commands=True)
            return
        self._fault("before_produce")
        target = c.target()
        outgoing: dict[int, Outgoing] = {
            p: batch_records(target, p, o, packed[p], intake.ends[p], as_logged, intake.timestamp)
            for p, o in outcomes.items()
        }
        if c.move_misplaced:  # else (a rebuild) the records are skipped: their moved copies are in the log
            for partition, elsewhere in intake.elsewhere.items():
                outgoing[partition].moved = moves(elsewhere, partition, c.partitions)
        published = own.checkpoint.publish(outgoing, generation)
        own.lose(published.fenced)
        if published.failed:
            self._rewind(published.failed, wait_for_commands=published.moved)
        if not published.committed:
            return
        self._fault("after_flush")
        awaited: list[tuple[str, bytes]] = []
        waiting = len(self.waiters) > 0
        bound = max(1, c.cache_sessions // max(1, len(own.serving)))
        for partition, marker_offset in published.committed.items():
            outcome, state = outcomes[partition], own.partitions[partition]
            sessions = packed[partition]
            if outcome.sealed:  # rare: a session of thousands of events
                sessions = {**outcome.sealed, **sessions}
            assert marker_offset is not None
            state.write(intake.records[partition], sessions, intake.ends[partition], marker_offset + 1)
            self._moved_records += len(outgoing[partition].moved)
            state.remember(packed[partition], bound)
            if self.on_written is not None:
                self.on_written(partition, [key for key, value in packed[partition].items() if value is not None])
            if waiting:
                awaited.extend(
                    (event_id, outcome.writes[key].encoded if key in outcome.writes else b"")  # b"": erased
                    for event_id, key in outcome.folded
                    if event_id in self.waiters
                )
        if self.on_batch is not None:
            count = sum(len(intake.records[p]) for p in published.committed)
            folded, dead, skipped = batch_figures(outcomes[p] for p in published.committed)
            try:
                self.on_batch(folded, dead, count, skipped, time.perf_counter() - started)
            except Exception:  # metrics never stop the fold
                log.exception("reporting a batch's metrics failed")
        self._fault("after_write")
        if awaited and self._loop is not None:
            self._loop.call_soon_threadsafe(self.waiters.folded_many, awaited)

    def _rewind(self, partitions: Iterable[int], wait_for_commands: bool = False) -> None:
        """Forget a batch that was not written: read its partitions again from the store's offset.
        Nothing was cached or answered for it (both happen after the write)."""
        self._own.rewind(set(partitions))
        if wait_for_commands and not self._stopping:
            self._run_commands(block=True)  # a revocation is likely on its way

    def _sweep(self) -> None:
        own, c = self._own, self._own.config
        now = time.monotonic()
        if not c.lifetime_ms or not own.serving or now - self._last_sweep < c.sweep_every_s:
            return
        self._last_sweep = now
        fenced = expiry.sweep(
            own.partitions, own.serving, own.checkpoint, own.generation, c.lifetime_ms, c.sweep_scan, now_ms()
        )
        own.lose(fenced)

    def _fault(self, point: str) -> None:
        self._faults.reach(point, self._batches_seen, self._own.generation)

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
            self._own.config.stores_dir, full,
        )  # fmt: skip

    def _wait_for_space(self) -> None:
        """Between tries, the control plane's commands (a revocation must not wait for the disk);
        each try opens the stores again and catches them up from the changelog."""
        self._run_commands(block=True)
        if self._stopping or time.monotonic() < self._full_retry_at:
            return
        self._full_retry_at = time.monotonic() + SPACE_RETRY_S
        own = self._own
        own.reopen()  # raises DataFolderFull while there is no room
        assert self._full_since is not None
        log.warning("the data folder has room again: folding resumed after %.0fs", time.monotonic() - self._full_since)
        self._full_since = None
        if not self._commands.waiting() and own.serving == own.assigned:
            self._ready.set()

    def _shutdown(self) -> None:
        self._ready.clear()
        self.stall.stop()
        self._own.close()
        self._commands.settle_all()
