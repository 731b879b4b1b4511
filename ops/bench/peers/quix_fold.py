"""Peer: the same fold as a Quix Streams application (confluent-kafka consumer, rocksdict state).

One ``StreamingDataFrame.update`` with per-key state: the previous state document is read with
``state.get_bytes``, folded with ``projections.session.apply`` and written back with
``state.set_bytes`` (changelog topic on, at-least-once, Quix's default checkpointing). It reports
when it has processed ``--expect`` records, then stops itself; its rate counts the final
checkpoint (state flushed, changelog produced, offsets committed) in.
"""

from __future__ import annotations

import logging
import os
import time

import quixstreams
from common import fold_step, start, write_result
from quixstreams import Application

STATE_KEY = "session"


def main() -> None:
    args, progress = start("quix", __doc__ or "")
    step = fold_step(args)
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        loglevel=logging.WARNING,
    )
    topic = app.topic(args.topic, key_deserializer="bytes", value_deserializer="bytes")
    sdf = app.dataframe(topic)

    def fold(value, key, timestamp, headers, state) -> None:  # type: ignore[no-untyped-def]
        encoded = step(key, value, state.get_bytes(STATE_KEY))
        if encoded is not None:
            state.set_bytes(STATE_KEY, encoded)
        if progress.processed(key, encoded):
            app.stop()

    sdf.update(fold, stateful=True, metadata=True)
    app.run()
    # Quix writes state and changelog at checkpoints: the last one runs as the app stops, after the
    # last record. Count it in, as the faust folds' changelog writes are counted in theirs.
    closed_ns = time.time_ns()
    result = progress.result(quixstreams=quixstreams.__version__, closed_ns=closed_ns)
    if progress.done_ns:
        seconds = (closed_ns - progress.first_ns) / 1e9
        result["rate_to_last_record"] = result["rate"]
        result["seconds"] = seconds
        result["rate"] = (progress.count - 1) / seconds
    write_result(args.result, result)
    os._exit(0)  # at once: librdkafka's and rocksdict's teardown add nothing to measure


if __name__ == "__main__":
    main()
