"""The worker process: faust's Worker with logging that respects the configured level."""

from __future__ import annotations

import ctypes
import gc
import logging
import sys

import faust


class QuietWorker(faust.Worker):
    """faust's Worker without its terminal spinner handler: that handler sets the root logger to
    DEBUG, and every debug call of faust and aiokafka then builds a record only to drop it (about
    5% of the fold's CPU in the benchmark profile)."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        logger.setLevel(level or logging.INFO)


# The fold allocates a few dozen short-lived objects per event; with CPython's default first
# threshold (700) the collector ran thousands of times a second and took about a third of the fold's
# time, and its full passes over the hot sessions paused everything for up to 250 ms (event-to-visible
# p99, reads). Measured on 200,000 bench events: 21,900 -> 40,600 events/s, no full pass left.
GC_THRESHOLDS = (50_000, 20, 10)
# The fold thread and the HTTP thread share the GIL: a thread that wants it back waits up to this
# long for the holder to let go (CPython's default is 5 ms), several times per request or batch.
GIL_SWITCH_INTERVAL_S = 0.001


def tune_gc() -> None:
    """Collect the young generation less often, leave what start-up built out of every pass, and
    hand the GIL over sooner."""
    gc.set_threshold(*GC_THRESHOLDS)
    gc.freeze()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    _limit_malloc_arenas()


# glibc gives each thread that allocates its own malloc arena (up to 8 per core); librdkafka's and
# RocksDB's threads each kept one with freed memory in it. Two arenas bound that for the RSS budget.
MALLOC_ARENAS = 2


def _limit_malloc_arenas() -> None:
    """Call before the worker starts its threads (later threads use the arenas that exist)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl, for one): nothing to tune
        return
    m_arena_max = -8  # from glibc's malloc.h
    libc.mallopt(m_arena_max, MALLOC_ARENAS)
