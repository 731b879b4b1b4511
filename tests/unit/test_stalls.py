"""A loop that stops coming round is reported with the call it is stuck in, and its return is said."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time

import pytest

from streams.observability.stalls import StallWatch, stack_of


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within the timeout"
        time.sleep(0.02)


def stuck_in_a_client_call(release: threading.Event) -> None:
    release.wait()


def test_a_stalled_loop_is_reported_with_where_it_is_and_its_return_is_said(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.WARNING, logger="streams.observability.stalls")
    watch = StallWatch("test loop", after_s=0.3)
    stall, release, done = threading.Event(), threading.Event(), threading.Event()

    def loop() -> None:
        while not done.is_set():
            watch.beat()
            if stall.is_set():
                stall.clear()
                stuck_in_a_client_call(release)
            time.sleep(0.01)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    watch.watch(thread)
    try:
        time.sleep(0.6)  # a loop coming round, for twice the threshold: nothing to report
        assert not caplog.records and watch.stalls == 0 and watch.stalled_for == 0.0
        stall.set()
        wait_for(lambda: any("has not come round" in r.getMessage() for r in caplog.records))
        first = next(r.getMessage() for r in caplog.records if "has not come round" in r.getMessage())
        assert "the test loop has not come round for" in first
        assert "stuck_in_a_client_call" in first and "release.wait()" in first
        assert watch.stalls == 1 and watch.stalled_for >= 0.3
        release.set()
        wait_for(lambda: any("comes round again" in r.getMessage() for r in caplog.records))
        assert watch.stalls == 1 and watch.stalled_for == 0.0  # one stall, however often reported
    finally:
        done.set()
        release.set()
        watch.stop()
        thread.join(5)


def test_the_stack_of_an_ended_thread_says_so():
    thread = threading.Thread(target=lambda: None)
    thread.start()
    thread.join()
    assert stack_of(thread) == "  (the thread has ended)"


# A process whose only Python thread never lets go of the GIL (one C call, as a confluent-kafka
# ``assign`` waiting on librdkafka is): nothing in Python can report it, the C watchdog does.
FROZEN = """
import re, sys
from streams.observability.stalls import FreezeDump

def held_in_one_c_call():
    re.fullmatch(r"(a+)+b", "a" * 25)  # catastrophic backtracking: seconds in C, the GIL held

dump = FreezeDump(after_s=0.1)
dump.arm()
held_in_one_c_call()
"""

ARMED_EACH_TURN = """
import time
from streams.observability.stalls import FreezeDump

dump = FreezeDump(after_s=1.0)
for _ in range(10):  # a loop that comes round every 0.1 s
    dump.arm()
    time.sleep(0.1)
dump.disarm()
time.sleep(1.2)  # past the countdown, disarmed
"""


def test_a_process_frozen_in_a_c_call_that_holds_the_gil_gets_every_thread_dumped():
    ran = subprocess.run([sys.executable, "-c", FROZEN], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert "most recent call first" in ran.stderr
    assert "held_in_one_c_call" in ran.stderr  # the frame that holds the GIL names the call


def test_a_loop_that_keeps_coming_round_gets_no_dump():
    ran = subprocess.run([sys.executable, "-c", ARMED_EACH_TURN], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert ran.stderr == ""
