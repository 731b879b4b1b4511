"""A data folder the worker cannot use is refused at start: one line naming the folder and the
cause, exit code 2, no traceback (a crash loop of tracebacks says nothing to the person on call)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.devkit.workers import make_worker
from tests.support.filesystems import tmpfs

pytestmark = pytest.mark.integration


def refused(worker, timeout: float = 60.0) -> str:
    """The worker's log once it exited; it must have exited with 2."""
    worker.spawn()
    assert worker.process is not None
    assert worker.process.wait(timeout) == 2, worker.log_tail()
    return worker.log_path.read_text()


def test_a_second_worker_on_a_folder_in_use_is_refused_and_the_first_serves_on(worker_factory):
    first = worker_factory("w1").start()
    second = worker_factory("w1-again")
    second.env["SESSIONS_DATA_DIR"] = first.env["SESSIONS_DATA_DIR"]
    log = refused(second)
    assert f"the data folder {Path(first.env['SESSIONS_DATA_DIR']).resolve()} is in use by another worker" in log
    assert f"(pid {first.process.pid})" in log
    assert "Traceback" not in log
    assert first.process.poll() is None
    assert first.stop() == 0
    assert first.start().process is not None  # the lock ends with its process: a restart takes it


def test_a_read_only_data_folder_is_refused_at_start(kafka_bootstrap, tmp_path):
    with tmpfs(tmp_path / "ro", "ro,size=1m") as folder:
        worker = make_worker(kafka_bootstrap, "app-ro", "events-ro", folder, tmp_path / "ro.log")
        log = refused(worker)
    assert f"error: the data folder {folder.resolve()} cannot be written: Read-only file system" in log
    assert "Traceback" not in log
