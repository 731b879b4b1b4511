"""Where a loop is when it stops coming round: a thread that beats once per turn, and a watcher
that logs the stack of that thread when the beats stop.

A fold loop blocked inside a Kafka client call folds nothing while the worker still answers reads,
``/healthz`` and ``/metrics``; writes through it wait out their fold and answer 503. Without the
stack nobody can tell which call hangs (the process looks idle), and by the time someone attaches
a debugger the worker has been restarted. The warning names the call: the first thing the person
on call needs, and what a test that finds a group unsettled prints from the worker's log.
"""

from __future__ import annotations

import faulthandler
import logging
import sys
import threading
import time
import traceback

log = logging.getLogger(__name__)


class StallWatch:
    """Beats from one thread; a watcher thread (started by :meth:`watch`) logs that thread's stack
    once it has not beaten for ``after_s``, again each time the stall has doubled, and says when it
    comes round again. No thread until :meth:`watch`."""

    def __init__(self, name: str, after_s: float = 30.0) -> None:
        self.name = name
        self.after_s = after_s
        self._last = time.monotonic()
        self._stalls = 0
        self._stop = threading.Event()

    def beat(self) -> None:
        self._last = time.monotonic()

    @property
    def stalled_for(self) -> float:
        """Seconds since the last beat (0 while the loop comes round in time)."""
        quiet = time.monotonic() - self._last
        return quiet if quiet >= self.after_s else 0.0

    @property
    def stalls(self) -> int:
        """Times the loop stalled, since start."""
        return self._stalls

    def watch(self, thread: threading.Thread) -> None:
        self.beat()
        threading.Thread(target=self._run, args=(thread,), name=f"{self.name}-watch", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self, thread: threading.Thread) -> None:
        stalled: float | None = None  # the last beat before the stall being reported
        report_at = 0.0  # seconds of quiet at which it is reported next (doubling: no flood)
        while not self._stop.wait(min(5.0, self.after_s / 3)) and thread.is_alive():
            last = self._last
            quiet = time.monotonic() - last
            if quiet < self.after_s:
                if stalled is not None:
                    log.warning("the %s comes round again", self.name)
                    stalled = None
                continue
            if stalled != last:
                stalled, report_at = last, self.after_s
                self._stalls += 1
            if quiet >= report_at:
                report_at = 2 * quiet
                log.warning("the %s has not come round for %.0fs; it is in:\n%s", self.name, quiet, stack_of(thread))


def stack_of(thread: threading.Thread) -> str:
    """The Python stack of a running thread, innermost call last (a call into C shows as the
    Python line that made it)."""
    frame = sys._current_frames().get(thread.ident or -1)
    if frame is None:
        return "  (the thread has ended)"
    return "".join(traceback.format_stack(frame)).rstrip()


class FreezeDump:
    """Every thread's stack written to the process's stderr by a C thread when :meth:`arm` has not been called again
    for ``after_s`` (``faulthandler``'s watchdog): the one stall a :class:`StallWatch` cannot report.

    A C call that holds the GIL while it blocks (confluent-kafka's ``assign`` and ``unassign`` wait
    for librdkafka's main thread without letting go of it) freezes every Python thread, the watchers
    included: a worker then answers nothing and logs nothing (a soak's worker was silent for 17 s
    after a broker's SIGKILL; a fault suite's, for two minutes after a broker restart). The dump needs
    no GIL; the frame of the thread holding it names the call."""

    def __init__(self, after_s: float) -> None:
        self.after_s = after_s

    def arm(self) -> None:
        """(Re)start the countdown: called once per turn of the loop being watched."""
        # The process's own stderr (fd 2), not ``sys.stderr``: faust's ``mode`` replaces that with a
        # logging proxy that has no file descriptor for the C thread to write to.
        faulthandler.dump_traceback_later(self.after_s, repeat=False, file=2, exit=False)

    def disarm(self) -> None:
        faulthandler.cancel_dump_traceback_later()
