"""Appending to the event log from the web layer, and read-your-writes: the one way a view writes.

A write appends its events and, when it answers with their effect, waits (bounded by
``SESSIONS_WRITE_WAIT_S``) until the owning fold loop has folded the last of them. The waiter is
registered *before* the append, so a fast fold cannot slip past it (``streams.fold.waiters``).
An append Kafka does not acknowledge is a 503 the caller may retry; the storefront writes, the
erasures and ``POST /api/events`` all answer it the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from streams.fold.waiters import FoldWaiters
from streams.kafka.producer import Delivered, ProduceFailed, Record
from streams.web.errors import unavailable

if TYPE_CHECKING:
    from streams.control.engine import Engine


class Sender(Protocol):
    async def send(self, records: Sequence[Record]) -> list[Delivered]: ...


class Pending:
    """Events appended whose fold is awaited: :meth:`folded` once, or :meth:`forget`."""

    def __init__(self, waiters: FoldWaiters, event_id: str, future: asyncio.Future[bytes], wait_s: float) -> None:
        self._waiters, self._event_id, self._future, self._wait_s = waiters, event_id, future, wait_s

    async def folded(self) -> bytes | None:
        """The session's encoded state right after the event folded: ``b""`` when the session
        ended there (a ``session.erased`` folded with it or right after), None when it was not
        folded in time (it still will be, once)."""
        return await self._waiters.wait(self._event_id, self._future, self._wait_s)

    def forget(self) -> None:
        """Nobody will wait (the request failed after the append)."""
        self._waiters.forget(self._event_id)


class EventLog:
    """The event log as the views write to it."""

    def __init__(self, sender: Sender, waiters: FoldWaiters, wait_s: float) -> None:
        self.sender = sender
        self.waiters = waiters
        self.wait_s = wait_s

    @classmethod
    def of(cls, engine: Engine) -> EventLog:
        return cls(engine.producer, engine.waiters, engine.settings.write_wait_s)

    async def append(self, records: Sequence[Record]) -> None:
        """Append, not waiting for the fold; 503 when Kafka does not acknowledge."""
        try:
            await self.sender.send(records)
        except ProduceFailed as exc:
            raise unavailable(f"the event log is unavailable: {exc}", retry_after_s=2) from None

    async def append_expecting(self, records: Sequence[Record], last_event_id: str) -> Pending:
        """Append, with the fold of ``last_event_id`` (the last of ``records``) to be awaited."""
        future = self.waiters.expect(last_event_id)
        try:
            await self.append(records)
        except BaseException:
            self.waiters.forget(last_event_id)
            raise
        return Pending(self.waiters, last_event_id, future, self.wait_s)

    async def append_and_wait(self, records: Sequence[Record], last_event_id: str) -> bytes | None:
        """Append and wait for the fold: :meth:`Pending.folded`."""
        return await (await self.append_expecting(records, last_event_id)).folded()
