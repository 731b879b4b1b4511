"""Progress of a long read for people: a bar with rate and ETA on a terminal (rich), plain lines
otherwise (the first once something was written, then every 5 s).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


# --- progress -----------------------------------------------------------------------------------


class RichProgress:
    """A progress bar on a terminal: records read of at most those planned, events, events/s, ETA.
    ``label`` names the job (``sessionctl rebuild`` shows its folds with it too)."""

    def __init__(self, label: str = "export") -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._began = time.monotonic()
        self._progress = Progress(
            TextColumn(label),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("records · {task.fields[events]} events · {task.fields[rate]:,.0f} events/s · ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._task = self._progress.add_task(label, total=None, events=0, rate=0.0)

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def __call__(self, read: int, written: int, planned: int) -> None:
        rate = written / max(time.monotonic() - self._began, 1e-6)
        self._progress.update(self._task, completed=read, total=planned, events=written, rate=rate)


class LogProgress:
    """Plain lines on stderr (not a terminal): the first as soon as something was written (a sign
    of life, which a caller may wait for), then one every ``every_s`` seconds."""

    def __init__(
        self, every_s: float = 5.0, stream: IO[str] | None = None, label: str = "export", verb: str = "written"
    ) -> None:
        self._label, self._verb = label, verb
        self._began = self._last = time.monotonic()
        self._every_s = every_s
        self._stream = stream or sys.stderr
        self._told = False

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def __call__(self, read: int, written: int, planned: int) -> None:
        now = time.monotonic()
        if now - self._last < self._every_s and (self._told or not written):
            return
        self._last, self._told = now, True
        rate = written / max(now - self._began, 1e-6)
        print(
            f"{self._label}: {read}/{planned} records read, {written} events {self._verb}, {rate:,.0f} events/s",
            file=self._stream,
            flush=True,
        )
