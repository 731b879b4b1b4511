"""A worker's shutdown closes its Kafka clients within a bound (streams.kafka.clients.close_within):
librdkafka's close of a consumer whose group coordinator is dead waited past a supervisor's grace
in a make soak run; the worker must leave anyway, and say which client it left open."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from streams.kafka.clients import close_within

pytestmark = pytest.mark.unit


class Client:
    def __init__(self, hangs: threading.Event | None = None) -> None:
        self.hangs = hangs
        self.closed = False

    def close(self) -> None:
        if self.hangs is not None:
            self.hangs.wait()  # a coordinator that never answers
        self.closed = True


def test_every_client_is_closed_and_none_is_skipped():
    clients = [Client(), None, Client()]
    close_within(clients, "the test", seconds=5.0)
    assert [c.closed for c in clients if c is not None] == [True, True]


def test_a_close_that_hangs_is_left_after_the_bound_and_said(caplog: pytest.LogCaptureFixture):
    never = threading.Event()
    quick, stuck = Client(), Client(hangs=never)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        close_within([stuck, quick], "the fold loop", seconds=0.3)
    assert time.monotonic() - started < 2.0  # not the hung close's time (forever)
    assert quick.closed and not stuck.closed
    assert "the fold loop: a Kafka client did not close within 0.3s" in caplog.text
    never.set()
