"""A concurrency limit that lets urgent work go first.

The Whisper decodes and the espeak-ng processes are shared by every call. Some requests have a
caller waiting on them (a turn's transcript, the first sentence of a reply), others have slack
(a decode started during a pause that may be thrown away, a sentence that plays after the
current one). With a plain semaphore the urgent request waits behind all of those.

Waiting urgent requests go first, but a request with a slot keeps it until it is done, because a
decode cannot be paused. So work with slack may occupy only `size - reserved` slots at once, and
a reserved slot is free when a caller's turn ends.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass


class Urgency:
    """Urgency of a waiting request. Setting `urgent` while it waits moves it ahead."""

    def __init__(self, urgent: bool = False) -> None:
        self._urgent = urgent
        self._on_urgent: list[Callable[[], None]] = []

    @property
    def urgent(self) -> bool:
        return self._urgent

    @urgent.setter
    def urgent(self, value: bool) -> None:
        became_urgent = value and not self._urgent
        self._urgent = value
        if became_urgent:
            for callback in list(self._on_urgent):
                callback()

    def __repr__(self) -> str:
        return f"Urgency(urgent={self._urgent})"


@dataclass
class _Waiter:
    future: asyncio.Future[bool]  # True when the slot was taken as slack work
    urgency: Urgency


class PrioritySlots:
    """A bounded number of slots, `reserved` of them only for urgent work.

    A freed slot goes to the oldest urgent waiter, or else to the oldest waiter, as long as slack
    work occupies fewer than `size - reserved` slots.
    """

    def __init__(self, size: int, *, reserved: int = 0) -> None:
        if size < 1 or not 0 <= reserved < size:
            raise ValueError(
                f"invalid slots: size={size} reserved={reserved}; expected size >= 1 and 0 <= reserved < size"
            )
        self._free = size
        self._slack_limit = size - reserved
        self._slack_held = 0
        self._waiters: collections.deque[_Waiter] = collections.deque()

    @contextlib.asynccontextmanager
    async def hold(self, urgency: Urgency | bool = False) -> AsyncIterator[None]:
        """Wait for a slot, hold it inside the `async with` block, then pass it on."""
        if isinstance(urgency, bool):
            urgency = Urgency(urgency)
        if self._free > 0 and (urgency.urgent or self._slack_held < self._slack_limit):
            slack = self._take(urgency)
        else:
            waiter = _Waiter(asyncio.get_running_loop().create_future(), urgency)
            self._waiters.append(waiter)
            urgency._on_urgent.append(self._hand_over)
            try:
                slack = await waiter.future
            except asyncio.CancelledError:
                if waiter.future.done() and not waiter.future.cancelled():
                    # The slot was handed over just as the wait was cancelled: pass it on.
                    self._release(waiter.future.result())
                elif waiter in self._waiters:
                    self._waiters.remove(waiter)
                raise
            finally:
                urgency._on_urgent.remove(self._hand_over)
        try:
            yield
        finally:
            self._release(slack)

    def _take(self, urgency: Urgency) -> bool:
        self._free -= 1
        slack = not urgency.urgent
        if slack:
            self._slack_held += 1
        return slack

    def _release(self, slack: bool) -> None:
        self._free += 1
        if slack:
            self._slack_held -= 1
        self._hand_over()

    def _hand_over(self) -> None:
        # Free slots go to urgent waiters first, then to slack work within its limit.
        while self._free > 0 and self._waiters:
            # A waiter whose task was cancelled leaves the queue when its task runs again.
            self._waiters = collections.deque(waiter for waiter in self._waiters if not waiter.future.done())
            if not self._waiters:
                return
            chosen = next((waiter for waiter in self._waiters if waiter.urgency.urgent), None)
            if chosen is None and self._slack_held < self._slack_limit:
                chosen = self._waiters[0]
            if chosen is None:
                return
            self._waiters.remove(chosen)
            chosen.future.set_result(self._take(chosen.urgency))
