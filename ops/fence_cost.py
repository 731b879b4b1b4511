"""The changelog fence's cost on the fold loop (docs/engine.md, "A worker that left the group"):
the same pre-loaded events folded in-process by the loop with transactional changelog producers
(one per partition) and without (one idempotent producer, the local fence only), alternately.

    .venv/bin/python ops/fence_cost.py --bootstrap 127.0.0.1:9092 [--events 120000 --rounds 3]

Two figures per mode: the catch-up rate (the loop folds a full backlog, batches of up to 5,000) and
the time of one batch, fold to store write (``on_batch``'s seconds), with the events trickling in
at a steady rate (small batches: where a per-batch cost like a transaction commit shows most).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from projections.rules import Rules
from streams.control.generations import watermarks
from streams.devkit.events import new_session_id, page_view
from streams.fold.config import FoldConfig
from streams.fold.loop import FoldLoop
from streams.fold.waiters import FoldWaiters
from streams.kafka.admin import TopicSpec, ensure_topics

PARTITIONS = 6


def produce(bootstrap: str, topic: str, sessions: list[str], events: int, rate: float = 0.0) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "partitioner": "murmur2_random"})
    started = time.monotonic()
    for n in range(events):
        sid = sessions[n % len(sessions)]
        producer.produce(topic, key=sid.encode(), value=orjson.dumps(page_view(sid, f"https://s/p?n={n}", n)))
        if rate:
            producer.poll(0)
            ahead = n / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)  # pacing the stream
    producer.flush(60)


def ends(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "fence-cost"})
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(PARTITIONS)}
    finally:
        consumer.close()


def wait_for_leaders(bootstrap: str, topic: str) -> None:
    """A topic created a moment ago may have no leader yet (as ``streams.tools.rebuild.prepare`` waits)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "fence-cost"})
    try:
        for partition in range(PARTITIONS):
            watermarks(consumer, TopicPartition(topic, partition), 30.0)
    finally:
        consumer.close()


def run(
    bootstrap: str,
    events_topic: str,
    transactional: bool,
    until: dict[int, int],
    feeder: threading.Thread | None = None,
) -> tuple[float, list[float]]:
    """Fold ``events_topic`` into a fresh changelog and store until ``until`` (with ``feeder``: until
    it has produced everything and that is folded); (seconds, each batch's seconds)."""
    run_id = uuid.uuid4().hex[:8]
    changelog = f"fence-cost-changelog-{run_id}"
    ensure_topics(bootstrap, [TopicSpec(changelog, PARTITIONS, 1, {"cleanup.policy": "compact"}),
                              TopicSpec(f"{changelog}.dlq", PARTITIONS, 1)])  # fmt: skip
    wait_for_leaders(bootstrap, changelog)
    batches: list[float] = []
    config = FoldConfig(
        bootstrap=bootstrap, events_topic=events_topic, changelog_topic=changelog, dlq_topic=f"{changelog}.dlq",
        partitions=PARTITIONS, stores_dir=Path(tempfile.mkdtemp(prefix="fence-cost-")), group_id=f"fence-cost-{run_id}",
        writer_id=f"fence-cost-{run_id}", history_store=True, transactional=transactional,
    )  # fmt: skip
    loop = FoldLoop(config, Rules(), FoldWaiters(), fence=lambda: 1, on_batch=lambda *f: batches.append(f[4]))
    aio = asyncio.new_event_loop()
    loop.start(aio)
    try:
        loop.assign(range(PARTITIONS), 1).result(60)
        started = time.monotonic()
        if feeder is not None:
            feeder.start()
            feeder.join()
            until = ends(bootstrap, events_topic)
        while True:
            positions = loop.positions()
            if all(positions.get(p, 0) >= end for p, end in until.items()):
                return time.monotonic() - started, batches
            time.sleep(0.01)  # progress polling
    finally:
        loop.stop()
        aio.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--events", type=int, default=120_000)
    parser.add_argument("--sessions", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=2000.0, help="events/s of the steady stream")
    parser.add_argument("--steady-s", type=float, default=10.0)
    args = parser.parse_args()
    topic = f"fence-cost-events-{uuid.uuid4().hex[:8]}"
    ensure_topics(args.bootstrap, [TopicSpec(topic, PARTITIONS, 1)])
    wait_for_leaders(args.bootstrap, topic)
    sessions = [new_session_id() for _ in range(args.sessions)]
    produce(args.bootstrap, topic, sessions, args.events)
    backlog = ends(args.bootstrap, topic)
    total = sum(backlog.values())
    print(f"backlog: {total} events over {args.sessions} sessions, {PARTITIONS} partitions")
    rates: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.rounds):
        for transactional in (False, True):
            seconds, _ = run(args.bootstrap, topic, transactional, backlog)
            rates[transactional].append(total / seconds)
            print(f"  catch-up transactional={transactional!s:5}: {total / seconds:8.0f} events/s")
    steady: dict[bool, list[float]] = {True: [], False: []}
    for transactional in (False, True):
        live = f"fence-cost-live-{uuid.uuid4().hex[:8]}"  # a topic per mode: folded as it comes
        ensure_topics(args.bootstrap, [TopicSpec(live, PARTITIONS, 1)])
        wait_for_leaders(args.bootstrap, live)
        count = int(args.rate * args.steady_s)
        feeder = threading.Thread(target=produce, args=(args.bootstrap, live, sessions[:2000], count, args.rate))
        _, steady[transactional] = run(args.bootstrap, live, transactional, {}, feeder)
    print(f"catch-up (events/s, {args.rounds} rounds): "
          + "; ".join(f"transactional={t}: median {statistics.median(v):.0f} ({', '.join(f'{x:.0f}' for x in v)})"
                      for t, v in rates.items()))  # fmt: skip
    for transactional, batches in steady.items():
        ms = sorted(b * 1000 for b in batches)
        print(f"steady {args.rate:.0f} events/s, transactional={transactional}: {len(ms)} batches, "
              f"batch time median {statistics.median(ms):.1f} ms, p90 {ms[int(len(ms) * 0.9)]:.1f} ms, "
              f"p99 {ms[int(len(ms) * 0.99)]:.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
