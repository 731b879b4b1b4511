"""Kafka clients let go of off the caller's thread: a client's last reference dropped destroys it
(``rd_kafka_destroy``), and that can wait for a broker that is gone.

The fold loop lets go of a producer whenever a partition leaves it (revoked, fenced, or its
transactional id not taken over while the coordinator was down). Dropped on the loop's thread, a
destroy that waits for a dead or restarting broker stops the loop: the worker keeps answering reads
and folds nothing (librdkafka has several such waits on record: issues #624, #1640, #3470, #5476).
Here the reaper's thread holds the client until nobody else does, then drops it. A destroy that
hangs holds up only the reaper, and its stall watch says where.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
from typing import Any

from streams.observability.stalls import StallWatch

log = logging.getLogger(__name__)

# How often the reaper looks whether the clients it holds are held by anybody else still.
LOOK_EVERY_S = 0.5
# The references a held client has when only the reaper has it: its entry in the reaper's list,
# the comprehension's variable and getrefcount's own argument.
ONLY_THE_REAPER = 3


class Reaper:
    """No thread until the first :meth:`discard`."""

    def __init__(self) -> None:
        self._incoming: queue.SimpleQueue[tuple[Any, str]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.stall = StallWatch("Kafka client reaper")

    def discard(self, client: Any, what: str) -> None:
        """Let go of ``client``: destroyed on the reaper's thread once no other reference is left."""
        if client is None:
            return
        self._incoming.put((client, what))
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="kafka-reaper", daemon=True)
                self._thread.start()
                self.stall.watch(self._thread)

    def _run(self) -> None:
        held: list[tuple[Any, str]] = []
        while True:
            self.stall.beat()
            try:
                held.append(self._incoming.get(timeout=LOOK_EVERY_S))
                continue  # take in everything queued before looking
            except queue.Empty:
                pass
            if held:
                kept = [(client, what) for client, what in held if sys.getrefcount(client) > ONLY_THE_REAPER]
                if len(kept) < len(held):
                    log.debug("destroying %s", ", ".join(what for _, what in set(held) - set(kept)))
                # The clients nobody else holds go with the old list: rd_kafka_destroy runs here.
                held = kept


REAPER = Reaper()


def discard(client: Any, what: str) -> None:
    """:meth:`Reaper.discard` on the process's reaper."""
    REAPER.discard(client, what)
