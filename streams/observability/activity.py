"""What the explorer's live views read off one worker: its recently active sessions and its events
folded per second over the last minutes.

Both are small and bounded, kept in memory only (a restart starts them empty), and fed by the fold
loop's thread once per batch: :meth:`Activity.written` with the sessions a batch wrote (the
``on_written`` callback of ``streams.fold.loop.FoldLoop``), :meth:`Activity.batch` with its counts
(the same figures as the metrics). The HTTP thread reads them (``streams.web.explorer``).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Collection, Mapping
from itertools import islice

RECENT_SESSIONS = 200  # sessions remembered per worker, the most recently written first
SECONDS_KEPT = 300  # the per-second series covers the last five minutes


class Activity:
    """Thread-safe: the fold thread writes, the HTTP thread reads."""

    def __init__(self, recent: int = RECENT_SESSIONS, seconds: int = SECONDS_KEPT) -> None:
        self._bound = recent
        self._seconds = seconds
        self._lock = threading.Lock()
        self._recent: OrderedDict[bytes, tuple[int, float]] = OrderedDict()  # key -> (partition, when)
        self._folded: dict[int, int] = {}  # epoch second -> events folded in it
        self._dead: dict[int, int] = {}  # epoch second -> dead letters set aside in it
        self._dead_total = 0
        self._folded_total = 0

    # -- the fold thread ----------------------------------------------------------------------------

    def written(self, partition: int, keys: Collection[bytes]) -> None:
        """The sessions one batch wrote in ``partition`` (a batch may write thousands: only the last
        ``recent`` of them can stay, so only those are looked at)."""
        now = time.time()
        skip = max(0, len(keys) - self._bound)
        with self._lock:
            recent = self._recent
            for key in islice(keys, skip, None):
                recent.pop(key, None)
                recent[key] = (partition, now)
            while len(recent) > self._bound:
                recent.popitem(last=False)

    def batch(
        self, folded: Mapping[str, int], dead: Mapping[str, int], records: int, skipped: int, seconds: float
    ) -> None:
        """A ``streams.fold.loop.BatchObserver``: the batch's counts into the current second."""
        second = int(time.time())
        folded_count = sum(folded.values())
        dead_count = sum(dead.values())
        with self._lock:
            self._folded[second] = self._folded.get(second, 0) + folded_count
            self._folded_total += folded_count
            if dead_count:
                self._dead[second] = self._dead.get(second, 0) + dead_count
                self._dead_total += dead_count
            oldest = second - self._seconds
            for series in (self._folded, self._dead):
                if len(series) > self._seconds:
                    for stale in [s for s in series if s <= oldest]:
                        del series[stale]

    # -- the HTTP thread ------------------------------------------------------------------------------

    def recent(self, limit: int = RECENT_SESSIONS) -> list[dict[str, object]]:
        """The most recently written sessions first: ``{"id", "partition", "lastFoldedAt"}``."""
        with self._lock:
            items = list(reversed(self._recent.items()))[:limit]
        return [
            {"id": key.decode(errors="replace"), "partition": partition, "lastFoldedAt": round(when, 3)}
            for key, (partition, when) in items
        ]

    def series(self, seconds: int = SECONDS_KEPT, now: float | None = None) -> dict[str, object]:
        """Events folded and dead letters per second for the last ``seconds`` seconds (oldest first,
        zeros included), and the totals since the worker started."""
        end = int(time.time() if now is None else now)
        start = end - max(1, min(seconds, self._seconds)) + 1
        with self._lock:
            folded = [self._folded.get(s, 0) for s in range(start, end + 1)]
            dead = [self._dead.get(s, 0) for s in range(start, end + 1)]
            totals = {"folded": self._folded_total, "deadLetters": self._dead_total}
        return {"start": start, "folded": folded, "deadLetters": dead, "totals": totals}
