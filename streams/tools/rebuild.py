"""Rebuilding a projection: fold the whole event log into a new table generation while the current
one keeps serving (``sessionctl rebuild``), then make the workers serve it (``--switch``).

The rebuild is the fold loop itself, run without faust on every partition of the event topic (the
fence always holds: nobody else writes the new generation), into resumable stores under the data
folder (``rebuild-g<N>``) and the generation's own changelog. Those stores keep their source
offsets, so a rebuild stopped by Ctrl-C goes on where it stood when run again. The workers never
read these stores: on a switch each restores its partitions from the new changelog.

:func:`rebuild` is what ``make bench`` calls: it returns the events folded and the seconds.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, TopicPartition
from rocksdict import Options, Rdict

from streams.config.rules_file import read_rules_file
from streams.config.settings import Settings
from streams.config.topics import changelog_topic, control_topic, generation_topics
from streams.control.app import fold_config
from streams.control.generations import (
    CURRENT,
    NEXT,
    Generation,
    now_rfc3339,
    read_records,
    scratch_dir,
    write_record,
)
from streams.fold.config import FoldConfig
from streams.fold.loop import FoldLoop
from streams.fold.store import SESSIONS_START, SOURCE_OFFSET, unpack_offset
from streams.fold.waiters import FoldWaiters
from streams.kafka.admin import ensure_topics
from streams.kafka.clients import client_config, watermarks
from streams.privacy.cipher import master_keys
from streams.privacy.keyring import KeyRing

log = logging.getLogger(__name__)

# (records folded or skipped so far, events folded, records to fold in all): the export's shape,
# so its progress displays serve both.
Progress = Callable[[int, int, int], None]
# A rebuild has nobody waiting on its folds: bigger batches (each touched session decoded and
# encoded once per batch, one flush per batch) fold faster; 200,000 events / 20,000 sessions on the
# bench's machine: 30,700 events/s at 5,000 a batch, 35,000 to 37,800 at 20,000.
REBUILD_BATCH = 20_000
TAIL_RECORDS = 1000  # how far back from a changelog partition's end its last marker is looked for


class RebuildError(RuntimeError):
    """Something a rebuild or a switch cannot do (the message says what to do instead)."""


@dataclass
class RebuildSummary:
    generation: int
    events: int = 0  # folded into sessions by this run
    records: int = 0  # event records read by this run (events, dead letters, redeliveries)
    sessions: int = -1  # in the generation when done (-1: not counted)
    seconds: float = 0.0
    complete: bool = False  # reached the end it aimed for (False after Ctrl-C)

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Plan:
    """Which generation a rebuild folds, with which rules, and what the workers serve now."""

    current: Generation
    target: Generation
    resumed: bool  # a rebuild of that generation was started before


def generation_config(settings: Settings, generation: int, stores: Path) -> FoldConfig:
    """The worker's own fold settings, pointed at the generation's changelog and scratch stores."""
    return replace(
        fold_config(settings),
        changelog_topic=changelog_topic(settings.changelog_topic, generation),
        dlq_topic=f"{settings.dlq_topic}.rebuild-g{generation}",
        stores_dir=stores,
        batch_max=max(settings.fold_batch_max, REBUILD_BATCH),
        history_store=False,  # a cache for the workers' timelines: a rebuild has no reader
        # The workers moved each misplaced record to its key's partition already: its copy there
        # is folded, the record itself skipped (moving it again would fold it twice).
        move_misplaced=False,
        group_id=f"{settings.app_id}-rebuild-g{generation}",
        writer_id=f"{settings.app_id}-rebuild-g{generation}",
        # Testing only: a slow fold ("slow:<seconds>" a batch) reaches the rebuild too, so a test can
        # interrupt one in the middle; the SIGKILL points stay the worker's.
        fault_point=settings.fault_point if settings.fault_point.startswith("slow:") else "",
    )


def plan(settings: Settings, rules_text: str | None, generation: int | None) -> Plan:
    """Read the control topic and choose the generation to fold (raises RebuildError)."""
    records = read_records(settings.kafka_bootstrap, control_topic(settings.app_id))
    current = records.get(CURRENT) or Generation(1, _local_rules(settings), "")
    pending = records.get(NEXT)
    if pending is not None and pending.number <= current.number:
        pending = None  # switched to already
    if generation is not None:
        if generation <= current.number:
            raise RebuildError(
                f"--generation {generation}: the workers serve generation {current.number}; "
                f"a rebuild folds a newer one (e.g. {current.number + 1})"
            )
        if pending is not None and pending.number == generation:
            if rules_text is not None and rules_text != pending.rules:
                raise RebuildError(
                    f"generation {generation} is being rebuilt with other rules; "
                    f"choose another --generation (e.g. {generation + 1})"
                )
            return Plan(current, pending, True)
        text = rules_text if rules_text is not None else current.rules
        return Plan(current, Generation(generation, text, now_rfc3339()), False)
    if pending is not None and (rules_text is None or rules_text == pending.rules):
        return Plan(current, pending, True)
    text = rules_text if rules_text is not None else current.rules
    number = max(current.number, pending.number if pending is not None else 0) + 1
    return Plan(current, Generation(number, text, now_rfc3339()), False)


def pending_generation(settings: Settings) -> Plan:
    """The rebuild a ``--switch`` alone makes current (raises RebuildError when there is none)."""
    records = read_records(settings.kafka_bootstrap, control_topic(settings.app_id))
    current = records.get(CURRENT) or Generation(1, _local_rules(settings), "")
    pending = records.get(NEXT)
    if pending is None or pending.number <= current.number:
        raise RebuildError(
            f"no rebuild to switch to (the workers serve generation {current.number}): run `sessionctl rebuild` first"
        )
    return Plan(current, pending, True)


def _local_rules(settings: Settings) -> str:
    return read_rules_file(settings.rules_file)


def prepare(settings: Settings, chosen: Plan) -> None:
    """Create the generation's topics (changelog compacted, partition for partition with the event
    topic) and record the rebuild in progress."""
    n = chosen.target.number
    ensure_topics(settings.kafka_bootstrap, generation_topics(settings, n))
    # A topic created a moment ago may have no leader yet: wait for them before folding.
    consumer = Consumer({**client_config(settings.kafka_bootstrap), "group.id": f"{settings.app_id}-rebuild"})
    try:
        for partition in range(settings.partitions):
            watermarks(consumer, TopicPartition(changelog_topic(settings.changelog_topic, n), partition), 30.0)
    finally:
        consumer.close()
    if not chosen.resumed:
        write_record(settings.kafka_bootstrap, control_topic(settings.app_id), NEXT, chosen.target)


def rebuild(
    settings: Settings,
    generation: Generation,
    progress: Progress | None = None,
    until_live: bool = False,
    max_lag: int = 0,
    stop: threading.Event | None = None,
    count_sessions: bool = True,
    stores: Path | None = None,
) -> RebuildSummary:
    """Fold every partition of the event topic into ``generation`` (its topics must exist: see
    :func:`prepare`), from where its stores stand, up to the log's end as it was when this started;
    with ``until_live``, until the events not folded yet are ``max_lag`` or fewer. ``stop`` set
    (Ctrl-C) ends it early, resumable."""
    stop = stop or threading.Event()
    stores = stores or scratch_dir(settings.data_dir, generation.number)
    config = generation_config(settings, generation.number, stores)
    summary = RebuildSummary(generation.number)
    folded = [0, 0]  # events folded, records read

    def on_batch(by_type: dict[str, int], dead: dict[str, int], records: int, skipped: int, seconds: float) -> None:
        folded[0] += sum(by_type.values())
        folded[1] += records

    # The same data keys as the workers: personal values are opened for the fold and sealed again
    # in the new generation's changelog.
    keys = KeyRing(
        settings.kafka_bootstrap,
        settings.keys_topic,
        master_keys(settings.master_key, settings.data_dir),
        f"{settings.group_instance_id}-rebuild",
    )
    loop = FoldLoop(config, generation.parsed_rules(), FoldWaiters(), fence=lambda: 0, on_batch=on_batch, keys=keys)
    partitions = frozenset(range(settings.partitions))
    asyncio_loop = asyncio.new_event_loop()  # never run: nothing waits on a rebuild's folds
    ends_probe = Consumer({**client_config(settings.kafka_bootstrap), "group.id": config.group_id})
    started = time.monotonic()
    try:
        ends = _highs(ends_probe, settings.events_topic, partitions)
        keys.start()
        loop.start(asyncio_loop)
        assigned = loop.assign(partitions, 0)
        while not stop.is_set():
            if assigned.done():
                assigned.result()  # raises what the restore raised
                if loop.failure is not None:
                    raise RebuildError(f"the fold loop stopped: {loop.failure!r}")
                if not loop.ready:
                    raise RebuildError("the fold loop stopped")
                positions = loop.positions()
                if until_live:
                    ends = _highs(ends_probe, settings.events_topic, partitions)
                left = sum(max(0, ends[p] - positions.get(p, 0)) for p in partitions)
                if progress is not None:
                    total = sum(ends.values())
                    progress(total - left, folded[0], total)
                if left <= (max_lag if until_live else 0):
                    summary.complete = True
                    break
            stop.wait(0.1)  # a progress tick, not a wait for a condition
    finally:
        loop.stop()
        keys.stop()
        ends_probe.close()
        asyncio_loop.close()
        summary.seconds = time.monotonic() - started
        summary.events, summary.records = folded
    if loop.failure is not None:
        raise RebuildError(f"the fold loop stopped: {loop.failure!r}")
    if count_sessions:
        summary.sessions = count_stored_sessions(stores, partitions)
    return summary


def rebuild_new_generation(
    settings: Settings, rules_text: str | None = None, progress: Progress | None = None, generation: int | None = None
) -> RebuildSummary:
    """What ``make bench`` calls: plan, create the topics and fold the whole log into the next
    generation (no switch); ``summary.events`` and ``summary.seconds`` are the figure. Call
    ``streams.control.worker.tune_process()`` first for the worker's GC settings, as the CLI does."""
    chosen = plan(settings, rules_text, generation)
    prepare(settings, chosen)
    return rebuild(settings, chosen.target, progress)


def _highs(consumer: Consumer, topic: str, partitions: frozenset[int]) -> dict[int, int]:
    return {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1] for p in partitions
    }


def count_stored_sessions(stores: Path, partitions: frozenset[int]) -> int:
    count = 0
    for partition in sorted(partitions):
        path = stores / f"sessions-{partition}"
        if not path.exists():
            continue
        db = Rdict(str(path), Options(raw_mode=True))
        try:
            # Reserved keys (source offsets, sealed locators) sort below every session id.
            count += sum(1 for key in db.keys() if isinstance(key, bytes) and key >= SESSIONS_START)
        finally:
            db.close()
    return count


def changelog_positions(bootstrap: str, topic: str, partitions: frozenset[int]) -> dict[int, int]:
    """Per partition, the next event offset the last marker of ``topic`` names (0 when none):
    how far the generation's changelog says its fold stands."""
    consumer = Consumer(
        {
            **client_config(bootstrap),
            "group.id": f"{topic}-check",
            "enable.auto.commit": False,
            # Committed batches only (a fenced owner's aborted marker is no position), and the end
            # as an event: the last offset is a commit marker, which no consumer returns.
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    positions: dict[int, int] = {}
    try:
        for partition in sorted(partitions):
            tp = TopicPartition(topic, partition)
            low, high = consumer.get_watermark_offsets(tp, timeout=10, cached=False)
            positions[partition] = _last_marker(consumer, topic, partition, low, high)
    finally:
        consumer.close()
    return positions


def _last_marker(consumer: Consumer, topic: str, partition: int, low: int, high: int) -> int:
    end = high
    while end > low:
        start = max(low, end - TAIL_RECORDS)
        consumer.assign([TopicPartition(topic, partition, start)])
        found = None
        position = start
        deadline = time.monotonic() + 10.0
        # Short waits: consume() returns early only with as many messages as asked for, and the
        # last offsets of a transactional changelog are commit markers, which it never returns.
        while position < end and time.monotonic() < deadline:
            for message in consumer.consume(TAIL_RECORDS, 0.2):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        position = end  # the end (compaction may leave it without a record)
                    continue
                offset = message.offset() or 0
                position = offset + 1
                if offset < end and message.key() == SOURCE_OFFSET and message.value():
                    found = unpack_offset(message.value() or b"")
        consumer.unassign()
        if found is not None:
            return found
        end = start
    return 0


def switch(settings: Settings, target: Generation, max_lag: int) -> dict[int, int]:
    """Make ``target`` the generation the workers serve, once its changelog's markers show it within
    ``max_lag`` events of the log's end (raises RebuildError otherwise). The lag per partition."""
    partitions = frozenset(range(settings.partitions))
    positions = changelog_positions(
        settings.kafka_bootstrap, changelog_topic(settings.changelog_topic, target.number), partitions
    )
    consumer = Consumer({**client_config(settings.kafka_bootstrap), "group.id": f"{settings.app_id}-switch"})
    try:
        ends = _highs(consumer, settings.events_topic, partitions)
    finally:
        consumer.close()
    lags = {p: max(0, ends[p] - positions.get(p, 0)) for p in partitions}
    if sum(lags.values()) > max_lag:
        raise RebuildError(
            f"generation {target.number} is {sum(lags.values())} events behind the log's end "
            f"(more than --max-lag {max_lag}): run `sessionctl rebuild --switch` to fold them first"
        )
    topic = control_topic(settings.app_id)
    write_record(settings.kafka_bootstrap, topic, CURRENT, replace(target, at=now_rfc3339()))
    write_record(settings.kafka_bootstrap, topic, NEXT, None)
    shutil.rmtree(scratch_dir(settings.data_dir, target.number), ignore_errors=True)
    return lags
