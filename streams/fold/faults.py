"""Fault injection for the tests (``SESSIONS_FAULT_POINT``; never set in production):

- ``<point>:<n>`` kills the process with SIGKILL at that point of the n-th batch (points:
  ``before_produce``, ``before_flush``, ``after_flush``, ``after_write``);
- ``slow:<seconds>`` makes every batch wait that long before producing its changelog (a fold slower
  than any write's wait; said in the log first, so a test can pause the process in the wait);
- ``hold:<seconds>`` makes the first batch wait before producing until the group rebalances (at
  most that long): a batch certainly in flight when its partitions are taken away;
- ``bug:<n>`` raises an unexpected error in the n-th batch before producing, as a bug in the loop
  would: the loop stops, and the worker must exit rather than keep its partitions unfolded.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class FaultPoints:
    def __init__(self, spec: str, fence: Callable[[], int | None]) -> None:
        self.spec = spec
        self._fence = fence
        self._held = False  # the "hold" point's one batch has waited

    def reach(self, point: str, batch: int, generation: int | None) -> None:
        spec = self.spec
        if not spec:
            return
        if spec.startswith("hold:"):
            if point == "before_produce" and not self._held:
                self._held = True
                log.warning("fault point %s: batch %d waits for the group to rebalance", spec, batch)
                deadline = time.monotonic() + float(spec.split(":")[1])
                while self._fence() == generation and time.monotonic() < deadline:
                    time.sleep(0.05)  # polling the fence: the group's state has no event to wait on here
            return
        if spec.startswith("slow:"):
            if point == "before_produce":
                log.warning("fault point %s: batch %d waits before producing", spec, batch)
                time.sleep(float(spec.split(":")[1]))
            return
        if spec.startswith("bug:"):
            if point == "before_produce" and batch >= int(spec.split(":")[1]):
                raise RuntimeError(f"fault point {spec}: an unexpected error in batch {batch}")
            return
        if spec.split(":")[0] == point and batch >= int(spec.split(":")[1]):
            log.warning("fault point %s reached: SIGKILL", spec)
            os.kill(os.getpid(), signal.SIGKILL)
