"""Peer: the plain faust way, one event at a time: decode -> apply -> table set, nothing else.

A minimal faust-streaming app (aiokafka driver, rocksdict table with the worker's RocksDB options,
no web server, no dead-letter topic, no fold waiters) running the same fold as the worker on the
same topic, with its own consumer group and changelog. It reports when it has processed
``--expect`` records and then runs until it is stopped (SIGTERM).
"""

from __future__ import annotations

from pathlib import Path

import faust
from common import fold_step, start, write_result

MIB = 1024 * 1024


def main() -> None:
    args, progress = start("faust-plain", __doc__ or "")
    step = fold_step(args)
    Path(args.state_dir).mkdir(parents=True, exist_ok=True)
    app = faust.App(
        args.group,
        broker=f"kafka://{args.bootstrap}",
        store="rocksdb://",
        datadir=args.state_dir,
        autodiscover=False,
        topic_partitions=args.partitions,
        topic_replication_factor=1,
        table_standby_replicas=0,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
    )
    topic = app.topic(args.topic, key_serializer="raw", value_serializer="raw", partitions=args.partitions)
    table = app.Table(
        "sessions",
        default=None,
        key_type=bytes,
        value_type=bytes,
        partitions=args.partitions,
        options={"block_cache_size": 8 * MIB, "write_buffer_size": 8 * MIB, "max_write_buffer_number": 2},
    )

    @app.agent(topic, name="fold")
    async def fold(stream):  # type: ignore[no-untyped-def]
        async for event in stream.events():
            key = event.message.key
            state = step(key, event.message.value, table.get(key))
            if state is not None:
                table[key] = state
            if progress.processed(key, state):
                write_result(args.result, progress.result(faust=faust.__version__))

    faust.Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
