"""Waiting for the worker to fold: poll the service read until the session shows what a test waits for.

Wait for a *marker* (a key only the last event of the test writes, or an exact document), not for a
count that may still grow: events of one session are folded in order, so once the marker shows,
everything sent before it has been folded too, and exact counts and keys can be asserted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from streams.devkit.workers import SERVICE_HEADERS
from tests.support.http import HttpClient

Document = dict[str, Any]


def public_has(key: str, value: Any = None) -> Callable[[Document], bool]:
    """The session's ``public`` namespace holds ``key`` (with ``value`` when one is given)."""

    def check(document: Document) -> bool:
        entry = document["namespaces"].get("public", {}).get(key)
        return entry is not None and (value is None or entry["value"] == value)

    return check


def wait_for_session(
    client: HttpClient, sid: str, until: int | Callable[[Document], bool], timeout: float = 30.0
) -> tuple[Document, float]:
    """Poll ``GET /api/v1/sessions/{sid}`` (with the test service key) until ``until(document)``
    holds (an int: at least that many events folded); returns the document and the seconds waited."""
    done = until if callable(until) else (lambda document: document["meta"]["eventCount"] >= until)
    started = time.monotonic()
    while True:
        response = client.get(f"/api/v1/sessions/{sid}", headers=SERVICE_HEADERS)
        assert response.status_code in (200, 404), response.text
        if response.status_code == 200 and done(response.json()):
            return response.json(), time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"session {sid} not as awaited within {timeout}s: {response.text}")
        time.sleep(0.02)
