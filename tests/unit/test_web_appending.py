"""The web layer's one append-and-wait (``streams.web.appending``), with a fake sender: the waiter is
registered before the append, an unacknowledged append is a 503 that leaves no waiter behind, and
the fold's answer (state, ended, not in time) comes back as it is."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from streams.fold.waiters import FoldWaiters
from streams.kafka.producer import Delivered, ProduceFailed, Record
from streams.web.appending import EventLog
from streams.web.errors import HttpError

pytestmark = pytest.mark.unit

RECORDS = [Record(b"s", b"{}")]


class FakeSender:
    """Acknowledges (and, like a fast fold loop, folds at once when told what to answer) or fails."""

    def __init__(self, waiters: FoldWaiters, folded: bytes | None = None, fails: bool = False) -> None:
        self.waiters, self.folded, self.fails = waiters, folded, fails
        self.sent: list[Record] = []
        self.waiting_when_sent = False

    async def send(self, records: Sequence[Record]) -> list[Delivered]:
        self.waiting_when_sent = "e1" in self.waiters
        if self.fails:
            raise ProduceFailed("not acknowledged")
        self.sent.extend(records)
        if self.folded is not None:
            self.waiters.folded("e1", self.folded)  # folded before the append even returns
        return [Delivered(0, n) for n in range(len(records))]


def run(coroutine):
    return asyncio.run(coroutine)


def test_a_fold_faster_than_the_append_is_not_missed():
    waiters = FoldWaiters()
    sender = FakeSender(waiters, folded=b'{"id":"s"}')
    folded = run(EventLog(sender, waiters, 5.0).append_and_wait(RECORDS, "e1"))
    assert folded == b'{"id":"s"}' and sender.waiting_when_sent and len(waiters) == 0


def test_an_ended_session_and_a_fold_not_in_time_come_back_as_they_are():
    waiters = FoldWaiters()
    assert run(EventLog(FakeSender(waiters, folded=b""), waiters, 5.0).append_and_wait(RECORDS, "e1")) == b""
    assert run(EventLog(FakeSender(waiters), waiters, 0.01).append_and_wait(RECORDS, "e1")) is None
    assert len(waiters) == 0


def test_an_unacknowledged_append_is_a_503_and_leaves_no_waiter():
    waiters = FoldWaiters()
    log = EventLog(FakeSender(waiters, fails=True), waiters, 5.0)
    for attempt in (log.append(RECORDS), log.append_and_wait(RECORDS, "e1")):
        with pytest.raises(HttpError) as raised:
            run(attempt)
        assert raised.value.status == 503 and raised.value.headers == {"Retry-After": "2"}
    assert len(waiters) == 0


def test_work_between_the_append_and_the_wait_and_a_forgotten_wait():
    waiters = FoldWaiters()

    async def erase() -> tuple[int, int]:
        pending = await EventLog(FakeSender(waiters), waiters, 5.0).append_expecting(RECORDS, "e1")
        waiting = len(waiters)
        pending.forget()  # what the erasure does when destroying the keys fails
        return waiting, len(waiters)

    assert run(erase()) == (1, 0)
