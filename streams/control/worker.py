"""The worker process: faust's Worker with logging that respects the configured level."""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import Iterable
from typing import Any

import faust

from streams.observability.logs import use_json_lines
from streams.observability.memory import limit_malloc


class QuietWorker(faust.Worker):
    """faust's Worker without its terminal spinner handler: that handler sets the root logger to
    DEBUG, and every debug call of faust and aiokafka then builds a record only to drop it (about
    5% of the fold's CPU in the benchmark profile). With ``json_logs`` every record is a JSON line
    (``streams/observability/logs.py``), with ``secrets`` masked."""

    def __init__(self, *args: Any, json_logs: bool = False, secrets: Iterable[str] = (), **kwargs: Any) -> None:
        self.json_logs = json_logs
        self.secrets = tuple(secrets)
        super().__init__(*args, **kwargs)
        # The spinner's only output here is a terminal escape at the end of start-up (its handler
        # is not installed): a stray non-log line in a log file.
        self.spinner = None

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        logger.setLevel(level or logging.INFO)
        if self.json_logs:
            use_json_lines(logger, self.secrets)


# The fold allocates a few dozen short-lived objects per event; with CPython's default first
# threshold (700) the collector ran thousands of times a second and took about a third of the fold's
# time, and its full passes over the hot sessions paused everything for up to 250 ms (event-to-visible
# p99, reads). Measured on 200,000 bench events: 21,900 -> 40,600 events/s, no full pass left.
GC_THRESHOLDS = (50_000, 20, 10)
# The fold thread and the HTTP thread share the GIL: a thread that wants it back waits up to this
# long for the holder to let go (CPython's default is 5 ms), several times per request or batch.
GIL_SWITCH_INTERVAL_S = 0.001


def tune_process() -> None:
    """The worker process's runtime: collect the young generation less often, leave what start-up
    built out of every pass, hand the GIL over sooner, bound the C heap (streams/observability/memory.py)."""
    gc.set_threshold(*GC_THRESHOLDS)
    gc.freeze()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    limit_malloc()
