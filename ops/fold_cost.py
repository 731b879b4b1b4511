"""What a folded event costs, in seconds of running (docs/engine.md, "A cheaper fold"): the bench's
workload (``ops/bench/workload.py``, same seed and mix) folded two ways.

- ``pure``: ``streams.fold.batch.fold_batch`` as the loop calls it (per partition, batches of 5,000,
  each touched session read from a dict of its stored bytes kept between batches, under the worker's
  GC thresholds), no Kafka, no RocksDB: the bench's micro phase, on a smaller topic.
- ``loop``: the fold loop itself (``streams.fold.loop.FoldLoop``, in this process, under the worker's
  process tuning, with its key ring, transactional changelog producers, stores and history stores)
  folding the same events pre-loaded on a local broker, a fresh changelog and data folder per round:
  the bench's worker fold without faust and HTTP (whose share there is a few %), so a profile
  (``--profile``, py-spy) samples the loop long enough to rank its costs.

    .venv/bin/python ops/fold_cost.py pure [--events 100000 --sessions 10000 --rounds 3 --stages]
    .venv/bin/python ops/fold_cost.py loop [--events 100000 --sessions 10000 --rounds 3 --profile var/loop.txt]

Both say whether the compiled build of the fold ran (``make compile``; ``SESSIONS_PURE_PYTHON=1``
turns it off) and report events/s by wall clock and by CPU time (the thread's for ``pure``, the
process's for ``loop``: on a shared machine the CPU figure is the one to compare).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "bench"))

from aiokafka.partitioner import murmur2
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from kafka_io import produce_all, record_count  # ops/bench/kafka_io.py
from workload import Record, Workload  # ops/bench/workload.py

from projections import native
from schemas.events import decode_event
from schemas.session import decode_state, encode_state
from streams.config.settings import Settings
from streams.config.topics import worker_topics
from streams.control.app import fold_config
from streams.control.worker import GC_THRESHOLDS, tune_process
from streams.devkit import broker
from streams.devkit.paths import REPO, SAMPLE_RULES_FILE, sample_rules
from streams.fold.batch import Stored, fold_batch
from streams.fold.codec import SessionCodec
from streams.fold.config import FoldConfig, consumer_configs
from streams.fold.intake import split
from streams.fold.loop import FoldLoop
from streams.fold.outgoing import batch_records
from streams.fold.partition import OpenPartition
from streams.fold.store import PartitionStore, history_key, pack_session, unpack_stored
from streams.fold.waiters import FoldWaiters
from streams.kafka.admin import ensure_topics
from streams.privacy.cipher import master_keys
from streams.privacy.keyring import KeyRing

BATCH = 5000
PARTITIONS = 12
Records = dict[int, list[tuple[bytes | None, bytes | None, int]]]


def workload(events: int, sessions: int, seed: int) -> list[Record]:
    return Workload(seed, sessions).take(events)


def by_partition(records: list[Record]) -> Records:
    shares: Records = defaultdict(list)
    for record in records:
        share = shares[(murmur2(record.key) & 0x7FFFFFFF) % PARTITIONS]
        share.append((record.key, record.value, len(share)))
    return shares


def fold_all(records: Records) -> dict[int, dict[bytes, bytes]]:
    rules = sample_rules()
    caches: dict[int, dict[bytes, bytes]] = {}
    for partition, share in records.items():
        cache = caches[partition] = {}

        def read(key: bytes, cache: dict[bytes, bytes] = cache) -> Stored | None:
            raw = cache.get(key)
            if raw is None:
                return None
            stored = unpack_stored(raw)
            return Stored(stored.offset, decode_state(stored.encoded), stored.locator, stored.activity_ms)

        for start in range(0, len(share), BATCH):
            outcome = fold_batch(share[start : start + BATCH], read, rules, 1 << 20)
            for key, written in outcome.writes.items():
                cache[key] = pack_session(written.offset, written.encoded, written.locator, written.activity_ms)
    return caches


def timed(work: Callable[[], object], clock: Callable[[], float] = time.thread_time) -> tuple[float, float]:
    gc.collect()
    began_wall, began_cpu = time.perf_counter(), clock()
    work()
    return time.perf_counter() - began_wall, clock() - began_cpu


def pure(args: argparse.Namespace) -> None:
    records = by_partition(workload(args.events, args.sessions, args.seed))
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    print(f"fold build: {native.describe()}")
    rates = []
    for round_ in range(args.rounds):
        wall, cpu = timed(lambda: fold_all(records))
        rates.append(args.events / cpu)
        print(f"round {round_ + 1}: fold_batch {args.events / wall:,.0f} ev/s wall, {args.events / cpu:,.0f} ev/s cpu")
    print(f"pure fold_batch, best of {args.rounds} by cpu: {max(rates):,.0f} ev/s ({1e6 / max(rates):.1f} us/event)")
    if args.stages:
        values = [value for share in records.values() for _, value, _ in share if value is not None]
        encoded = [unpack_stored(s).encoded for cache in fold_all(records).values() for s in cache.values()]
        decoded = [decode_state(e) for e in encoded]
        for name, work, n in (
            ("decode_event", lambda: [decode_event(v) for v in values], len(values)),
            ("decode_state", lambda: [decode_state(e) for e in encoded], len(encoded)),
            ("encode_state", lambda: [encode_state(s) for s in decoded], len(decoded)),
        ):
            best = min(timed(work)[1] for _ in range(args.rounds))
            print(f"  {name}: {best / n * 1e6:.2f} us each ({n:,} items)")


def loop(args: argparse.Namespace) -> None:
    data = Path(tempfile.mkdtemp(prefix="fold-cost-"))
    bootstrap = args.bootstrap
    try:
        if not bootstrap:
            bootstrap = broker.run_start(data / "kafka", broker.free_port(), None, None, 120.0)
        # One topic per workload on a broker given (--bootstrap): the runs of a comparison fold the same records.
        topic = args.topic or f"fold-cost-{args.seed}-{args.sessions}-{args.events}"
        base = Settings.from_env(
            {
                "SESSIONS_KAFKA_BOOTSTRAP": bootstrap,
                "SESSIONS_EVENTS_TOPIC": topic,
                "SESSIONS_PARTITIONS": str(PARTITIONS),
            }
        )
        ensure_topics(bootstrap, worker_topics(base))
        total = settled_count(bootstrap, topic)
        if total < args.events:
            produce_all(bootstrap, topic, workload(args.events, args.sessions, args.seed)[total:])
            total = record_count(bootstrap, topic)
        tune_process()  # as the worker runs (GC thresholds and freeze, GIL switch interval, C heap)
        print(f"fold build: {native.describe()}; {total:,} events, {args.sessions:,} sessions, {PARTITIONS} partitions")
        walls, cpus = [], []
        for round_ in range(args.rounds):
            wall, cpu = fold_topic(
                bootstrap, topic, data / f"round-{round_}", total, args.profile if round_ == 0 else ""
            )
            walls.append(total / wall)
            cpus.append(total / cpu)
            print(f"round {round_ + 1}: fold loop {total / wall:,.0f} ev/s wall, {total / cpu:,.0f} ev/s process cpu")
        print(
            f"fold loop, best of {args.rounds}: {max(walls):,.0f} ev/s wall, {max(cpus):,.0f} ev/s process cpu "
            f"({1e6 / max(cpus):.1f} us of CPU an event)"
        )
    finally:
        if not args.bootstrap:
            broker.stop(data / "kafka")
        shutil.rmtree(data, ignore_errors=True)


def parts(args: argparse.Namespace) -> None:
    """The loop's steps between ``consume`` and Kafka, each timed alone, on the topic's real messages
    (consumed once into memory, replayed in the loop's batches) and real stores (no key ring: the
    sealing of the few personal sessions is left out)."""
    data = Path(tempfile.mkdtemp(prefix="fold-cost-"))
    try:
        topic = args.topic or f"fold-cost-{args.seed}-{args.sessions}-{args.events}"
        settings = Settings.from_env(
            {
                "SESSIONS_KAFKA_BOOTSTRAP": args.bootstrap,
                "SESSIONS_EVENTS_TOPIC": topic,
                "SESSIONS_PARTITIONS": str(PARTITIONS),
                "SESSIONS_DATA_DIR": str(data),
            }
        )
        config = fold_config(settings)
        messages = consume_all(config, settings_total := settled_count(args.bootstrap, topic))
        tune_process()
        print(f"fold build: {native.describe()}; {settings_total:,} messages, batches of {config.batch_max:,}")
        for round_ in range(args.rounds):
            print(
                f"round {round_ + 1}: "
                + ", ".join(f"{k} {v:.2f}" for k, v in steps(config, messages, data / str(round_)).items())
            )
    finally:
        shutil.rmtree(data, ignore_errors=True)


def consume_all(config: FoldConfig, total: int) -> list[Message]:
    consumer = Consumer(consumer_configs(config)[0])
    consumer.assign([TopicPartition(config.events_topic, p, 0) for p in range(PARTITIONS)])
    messages: list[Message] = []
    while len(messages) < total:
        messages.extend(m for m in consumer.consume(config.batch_max, 1.0) if m.error() is None)
    consumer.close()
    return messages


def steps(config: FoldConfig, messages: list[Message], folder: Path) -> dict[str, float]:
    """us of CPU per record of each step, as ``FoldLoop._fold`` runs them (no Kafka, no key ring)."""
    rules, codec, options = sample_rules(), SessionCodec(None), config.memory.options()
    opened: dict[int, OpenPartition] = {}
    for p in range(PARTITIONS):
        store = PartitionStore(folder / f"sessions-{p}", options)
        history = PartitionStore(folder / f"history-{p}", options, write_ahead_log=False)
        store.open()
        history.open()
        opened[p] = OpenPartition(store, history)
    spent: dict[str, float] = defaultdict(float)

    @contextmanager
    def step(name: str) -> Iterator[None]:
        began = time.thread_time()
        yield
        spent[name] += time.thread_time() - began

    serving = frozenset(range(PARTITIONS))
    for start in range(0, len(messages), config.batch_max):
        with step("split"):
            intake = split(messages[start : start + config.batch_max], serving, PARTITIONS)
        outcomes = {}
        for p, records in intake.records.items():
            with step("open"):
                opened_records = codec.open_records(p, records, {})
            with step("fold_batch"):
                outcomes[p] = fold_batch(
                    opened_records, opened[p].reader(codec.opened), rules, config.max_session_bytes,
                    config.lifetime_ms, intake.stamps[p], config.max_skew_ms,
                )  # fmt: skip
        with step("pack"):
            packed = codec.pack(outcomes, rules)
        with step("outgoing"):
            target = config.target()
            for p, o in outcomes.items():
                batch_records(target, p, o, packed[p], intake.ends[p], {}, intake.timestamp)
        for p in outcomes:
            log_copy = opened[p].history
            assert log_copy is not None
            with step("history"):
                log_copy.put_many((history_key(k, o), v) for k, v, o in intake.records[p] if k and v)
            with step("store"):
                opened[p].store.write_batch(packed[p], intake.ends[p], start)
            with step("remember"):
                opened[p].remember(packed[p], config.cache_sessions // PARTITIONS)
    for partition in opened.values():
        partition.close()
    return {name: seconds / len(messages) * 1e6 for name, seconds in spent.items()}


def settled_count(bootstrap: str, topic: str) -> int:
    """The records of ``topic``, once its partitions have leaders (a topic made a moment ago may not)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return record_count(bootstrap, topic)
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)  # the new topic's leaders


def fold_topic(bootstrap: str, topic: str, data: Path, total: int, profile: str) -> tuple[float, float]:
    """One fresh fold of ``topic`` by the loop (a new app id: its own changelog, data folder, keys);
    (wall seconds, process CPU seconds) from the assignment to the last event folded."""
    settings = Settings.from_env(
        {
            "SESSIONS_KAFKA_BOOTSTRAP": bootstrap,
            "SESSIONS_EVENTS_TOPIC": topic,
            "SESSIONS_PARTITIONS": str(PARTITIONS),
            "SESSIONS_APP_ID": f"fold-cost-{uuid.uuid4().hex[:8]}",
            "SESSIONS_DATA_DIR": str(data),
            "SESSIONS_RULES_FILE": str(SAMPLE_RULES_FILE),
        }
    )
    ensure_topics(bootstrap, worker_topics(settings))
    keys = KeyRing(bootstrap, settings.keys_topic, master_keys("", data), settings.group_instance_id)
    keys.start()
    fold = FoldLoop(fold_config(settings), sample_rules(), FoldWaiters(), fence=lambda: 1, keys=keys)
    aio = asyncio.new_event_loop()
    fold.start(aio)
    spy = None
    try:
        fold.assign(range(PARTITIONS), 1).result(120)
        if profile:
            spy_args = ["record", "--nonblocking", "--rate", "200", "--format", "raw", "--output", profile]
            spy = subprocess.Popen(
                [str(REPO / ".venv/bin/py-spy"), *spy_args, "--pid", str(os.getpid())],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1.0)  # py-spy attaches
        began_wall, began_cpu = time.perf_counter(), time.process_time()
        while sum(fold.positions().values()) < total:
            time.sleep(0.05)  # progress polling (more often takes the GIL from the loop)
        return time.perf_counter() - began_wall, time.process_time() - began_cpu
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its file when interrupted
            spy.wait(30)
        fold.stop()
        keys.stop()
        aio.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("pure", "loop", "parts"))
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--stages", action="store_true", help="pure: also time decode_event, decode_state, encode_state"
    )
    parser.add_argument(
        "--bootstrap", default="", help="loop: a broker to use (default: a local one, started and stopped)"
    )
    parser.add_argument("--topic", default="", help="loop: the events topic (default: named after the workload)")
    parser.add_argument("--profile", default="", help="loop: py-spy's raw profile of the first round to this file")
    args = parser.parse_args()
    {"pure": pure, "loop": loop, "parts": parts}[args.mode](args)


if __name__ == "__main__":
    main()
