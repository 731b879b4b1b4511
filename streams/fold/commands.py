"""The control plane's commands to the fold loop (assign, revoke, switch, stop), run by the loop's thread
between batches.

Put from any thread, each with a future the caller may wait on; taken by the loop
(``streams.fold.loop``) between batches, so a revocation returns only once the last batch of its
partitions is written.
"""

from __future__ import annotations

import concurrent.futures
import queue
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from projections.rules import Rules

# How long the loop waits for a command when it has nothing else to do, before it looks again.
IDLE_WAIT_S = 0.2


@dataclass(frozen=True)
class Switch:
    """Serve another table generation: its changelog, its stores' folder and its rules."""

    changelog_topic: str
    stores_dir: Path
    rules: Rules


@dataclass
class Command:
    kind: str  # "assign", "revoke", "switch", "stop"
    partitions: frozenset[int]
    generation: int | None
    done: concurrent.futures.Future[None]
    standbys: frozenset[int] = frozenset()  # with "assign": the partitions to keep warm
    switch_to: Switch | None = None


class Commands:
    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Command] = queue.SimpleQueue()

    def put(
        self,
        kind: str,
        partitions: Iterable[int] = (),
        generation: int | None = None,
        standbys: frozenset[int] = frozenset(),
        switch_to: Switch | None = None,
    ) -> concurrent.futures.Future[None]:
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._queue.put(Command(kind, frozenset(partitions), generation, done, standbys, switch_to))
        return done

    def take(self, block: bool) -> Command | None:
        """The next command; None when there is none (after ``IDLE_WAIT_S`` when ``block``)."""
        try:
            return self._queue.get(timeout=IDLE_WAIT_S) if block else self._queue.get_nowait()
        except queue.Empty:
            return None

    def waiting(self) -> bool:
        return not self._queue.empty()

    def settle_all(self) -> None:
        """The loop has stopped: nobody waits forever on a command it will not run."""
        while (command := self.take(block=False)) is not None:
            command.done.set_result(None)
