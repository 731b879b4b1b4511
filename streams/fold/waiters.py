"""Read-your-writes over an asynchronous log: a write waits until the fold loop has folded its event.

The HTTP handler registers the id of the event it is about to append; the fold loop, in the same
process, resolves it (through the event loop) with the session's new state right after the store write.
"""

from __future__ import annotations

import asyncio


class FoldWaiters:
    def __init__(self) -> None:
        self._waiting: dict[str, asyncio.Future[bytes]] = {}

    def expect(self, event_id: str) -> asyncio.Future[bytes]:
        """Register before appending, so a fast fold cannot slip past the waiter."""
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting[event_id] = future
        return future

    def folded(self, event_id: str, state: bytes) -> None:
        future = self._waiting.pop(event_id, None)
        if future is not None and not future.done():
            future.set_result(state)

    def folded_many(self, folded: list[tuple[str, bytes]]) -> None:
        for event_id, state in folded:
            self.folded(event_id, state)

    def __contains__(self, event_id: object) -> bool:
        # Asked from the fold loop's thread: a dict lookup, no asyncio object touched.
        return event_id in self._waiting

    def forget(self, event_id: str) -> None:
        future = self._waiting.pop(event_id, None)
        if future is not None and not future.done():
            future.cancel()

    async def wait(self, event_id: str, future: asyncio.Future[bytes], timeout_s: float) -> bytes | None:
        """The folded state, or None after ``timeout_s`` (the event still folds later, once)."""
        try:
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            return None
        finally:
            self.forget(event_id)

    def __len__(self) -> int:
        return len(self._waiting)
