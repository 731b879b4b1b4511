"""Waiting for a condition, never for time: the one poll loop the tests share."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(what: str, check: Callable[[], T], timeout: float = 60.0, interval: float = 0.05) -> T:
    """Poll ``check()`` until it returns something truthy; that value. ``what`` names it in the failure."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"not within {timeout:.0f}s: {what}"
        time.sleep(interval)
