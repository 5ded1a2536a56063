"""Priority slots: urgent waiters (a caller is waiting) get a freed slot before the others."""

from __future__ import annotations

import asyncio

import pytest

from voicebot.priority import PrioritySlots, Urgency


async def _use(
    slots: PrioritySlots, name: str, order: list[str], release: asyncio.Event, *, urgent: bool | Urgency
) -> None:
    async with slots.hold(urgent):
        order.append(name)
        await release.wait()


async def test_urgent_waiter_goes_first() -> None:
    slots = PrioritySlots(1)
    order: list[str] = []
    release = asyncio.Event()
    holder = asyncio.create_task(_use(slots, "holder", order, release, urgent=False))
    await asyncio.sleep(0)
    later = asyncio.create_task(_use(slots, "later sentence", order, release, urgent=False))
    first = asyncio.create_task(_use(slots, "first sentence", order, release, urgent=True))
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(holder, later, first)
    assert order == ["holder", "first sentence", "later sentence"]


async def test_cancelled_waiter_gives_up_its_place() -> None:
    slots = PrioritySlots(1)
    order: list[str] = []
    release = asyncio.Event()
    holder = asyncio.create_task(_use(slots, "holder", order, release, urgent=False))
    await asyncio.sleep(0)
    cancelled = asyncio.create_task(_use(slots, "cancelled", order, release, urgent=True))
    waiting = asyncio.create_task(_use(slots, "waiting", order, release, urgent=False))
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    release.set()
    await asyncio.gather(holder, waiting)
    assert order == ["holder", "waiting"]
    # Every slot came back: two more holders fit one after the other.
    await asyncio.wait_for(_use(slots, "again", order, release, urgent=False), 1)


async def test_waiter_made_urgent_moves_ahead() -> None:
    """A speculative decode still queued when its turn ends goes before later non-urgent work."""
    slots = PrioritySlots(1)
    order: list[str] = []
    release = asyncio.Event()
    holder = asyncio.create_task(_use(slots, "holder", order, release, urgent=False))
    await asyncio.sleep(0)
    other = asyncio.create_task(_use(slots, "other", order, release, urgent=False))
    urgency = Urgency(False)
    speculative = asyncio.create_task(_use(slots, "speculative", order, release, urgent=urgency))
    await asyncio.sleep(0)
    urgency.urgent = True
    release.set()
    await asyncio.gather(holder, other, speculative)
    assert order == ["holder", "speculative", "other"]
