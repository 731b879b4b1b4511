"""The browser tier: the explorer page driven in headless Chromium (Debian's ``chromium``, through
Playwright for Python, never a downloaded browser) against a real worker.

``ops/browser-deps.sh`` installs what is missing (chromium, axe-core from npm into ``ops/.cache``).
Screenshots go to ``var/screenshots/`` (not tracked: a test run leaves the checkout clean); with
``SESSIONS_UPDATE_SCREENSHOTS=1`` to ``docs/screenshots/`` instead, the ones the README shows.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.devkit.paths import REPO

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = (
    REPO / "docs" / "screenshots"
    if os.environ.get("SESSIONS_UPDATE_SCREENSHOTS") == "1"
    else REPO / "var" / "screenshots"
)


@pytest.fixture(scope="session")
def axe_script() -> str:
    """axe-core's browser script (``ops/browser-deps.sh`` fetches it once, and chromium if missing)."""
    path = subprocess.run(
        [str(REPO / "ops" / "browser-deps.sh")], check=True, capture_output=True, text=True
    ).stdout.strip()
    return Path(path).read_text()


# Per module, not per session: Playwright's sync API keeps an event loop running in this thread
# while it is open, and every later test that calls asyncio.run() would fail.
@pytest.fixture(scope="module")
def browser(axe_script: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    assert executable, "chromium is not installed (ops/browser-deps.sh installs it)"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
