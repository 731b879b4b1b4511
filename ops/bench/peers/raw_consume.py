"""The raw ceiling: a bare confluent-kafka consumer that only decodes and validates the records.

No state, no fold, no commits: every partition of the topic is assigned from its beginning and
each record goes through ``schemas.events.decode_event`` (and the key check the worker does).
Nothing a fold does on top of that can be faster than this.
"""

from __future__ import annotations

import os
import time

import confluent_kafka
from common import start, write_result
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from schemas.events import EventDecodeError, decode_event


def main() -> None:
    args, progress = start("raw-decode", __doc__ or "")
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
    )
    metadata = consumer.list_topics(args.topic, timeout=30)
    partitions = sorted(metadata.topics[args.topic].partitions)
    consumer.assign([TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in partitions])
    done = False
    deadline = time.monotonic() + args.timeout
    while not done and time.monotonic() < deadline:
        for msg in consumer.consume(num_messages=10_000, timeout=0.5):
            if msg.error() is not None:
                continue
            key = msg.key()
            try:
                event = decode_event(msg.value())
                ok = key == event.subject.encode()
            except EventDecodeError:
                ok = False
            if progress.processed(key, b"" if ok else None):
                done = True
                break
    consumer.close()
    write_result(args.result, progress.result(confluent_kafka=confluent_kafka.version()[0]))
    os._exit(0)


if __name__ == "__main__":
    main()
