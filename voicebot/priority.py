"""A concurrency limit that lets urgent work go first.

The Whisper decodes and the espeak-ng processes are shared by every call. Some requests have a
caller waiting on them (a turn's transcript, the first sentence of a reply), others have slack
(a decode started during a pause that may be thrown away, a sentence that plays after the
current one). With a plain semaphore the urgent request waits behind all of those.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass


@dataclass
class Urgency:
    """Urgency of a waiting request. Setting `urgent` while it waits moves it ahead."""

    urgent: bool = False


@dataclass
class _Waiter:
    future: asyncio.Future[None]
    urgency: Urgency


class PrioritySlots:
    """A bounded number of slots. A freed slot goes to the oldest urgent waiter, or else to the oldest waiter."""

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiters: collections.deque[_Waiter] = collections.deque()

    @contextlib.asynccontextmanager
    async def hold(self, urgency: Urgency | bool = False) -> AsyncIterator[None]:
        """Wait for a slot, hold it inside the `async with` block, then pass it on."""
        if isinstance(urgency, bool):
            urgency = Urgency(urgency)
        if self._free > 0:
            self._free -= 1
        else:
            waiter = _Waiter(asyncio.get_running_loop().create_future(), urgency)
            self._waiters.append(waiter)
            try:
                await waiter.future
            except asyncio.CancelledError:
                if waiter.future.done() and not waiter.future.cancelled():
                    # The slot was handed over just as the wait was cancelled: pass it on.
                    self._release()
                else:
                    self._waiters.remove(waiter)
                raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        waiting = [waiter for waiter in self._waiters if not waiter.future.done()]
        chosen = next((waiter for waiter in waiting if waiter.urgency.urgent), waiting[0] if waiting else None)
        if chosen is None:
            self._waiters.clear()
            self._free += 1
            return
        self._waiters.remove(chosen)
        chosen.future.set_result(None)
