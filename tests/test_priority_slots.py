"""Priority slots: urgent waiters (a caller is waiting) get a freed slot before the others."""

from __future__ import annotations

import asyncio

import pytest

from voicebot.priority import PrioritySlots, Urgency


class _Users:
    """Slots (one by default), users that keep theirs until `release` is set, and the order slots were taken in."""

    def __init__(self, size: int = 1, reserved: int = 0) -> None:
        self.slots = PrioritySlots(size, reserved=reserved)
        self.order: list[str] = []
        self.release = asyncio.Event()

    async def start_holder(self) -> asyncio.Task[None]:
        holder = self.start("holder", urgent=False)
        await asyncio.sleep(0)
        return holder

    def start(self, name: str, *, urgent: bool | Urgency) -> asyncio.Task[None]:
        return asyncio.create_task(self._use(name, urgent))

    async def _use(self, name: str, urgent: bool | Urgency) -> None:
        async with self.slots.hold(urgent):
            self.order.append(name)
            await self.release.wait()


async def test_urgent_waiter_goes_first() -> None:
    users = _Users()
    holder = await users.start_holder()
    later = users.start("later sentence", urgent=False)
    first = users.start("first sentence", urgent=True)
    await asyncio.sleep(0)
    users.release.set()
    await asyncio.gather(holder, later, first)
    assert users.order == ["holder", "first sentence", "later sentence"]


async def test_cancelled_waiter_gives_up_its_place() -> None:
    users = _Users()
    holder = await users.start_holder()
    cancelled = users.start("cancelled", urgent=True)
    waiting = users.start("waiting", urgent=False)
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    users.release.set()
    await asyncio.gather(holder, waiting)
    assert users.order == ["holder", "waiting"]
    # Every slot came back: one more holder gets a slot at once.
    await asyncio.wait_for(users.start("again", urgent=False), 1)


async def test_waiter_made_urgent_moves_ahead() -> None:
    """A speculative decode still queued when its turn ends goes before later non-urgent work."""
    users = _Users()
    holder = await users.start_holder()
    other = users.start("other", urgent=False)
    urgency = Urgency(False)
    speculative = users.start("speculative", urgent=urgency)
    await asyncio.sleep(0)
    urgency.urgent = True
    users.release.set()
    await asyncio.gather(holder, other, speculative)
    assert users.order == ["holder", "speculative", "other"]


async def test_reserved_slot_stays_free_for_urgent_work() -> None:
    """Two slots, one reserved: a second tentative decode waits, a finished turn's decode does not."""
    users = _Users(size=2, reserved=1)
    first_slack = users.start("tentative 1", urgent=False)
    second_slack = users.start("tentative 2", urgent=False)
    await asyncio.sleep(0)
    assert users.order == ["tentative 1"]
    urgent = users.start("finished turn", urgent=True)
    await asyncio.sleep(0)
    assert users.order == ["tentative 1", "finished turn"]
    users.release.set()
    await asyncio.gather(first_slack, second_slack, urgent)
    assert users.order == ["tentative 1", "finished turn", "tentative 2"]


async def test_promoted_waiter_takes_reserved_slot() -> None:
    """A tentative decode held back by the reservation starts as soon as its turn ends."""
    users = _Users(size=2, reserved=1)
    running = users.start("other call's tentative", urgent=False)
    urgency = Urgency(False)
    waiting = users.start("this call's tentative", urgent=urgency)
    await asyncio.sleep(0)
    assert users.order == ["other call's tentative"]
    urgency.urgent = True
    await asyncio.sleep(0)
    assert users.order == ["other call's tentative", "this call's tentative"]
    users.release.set()
    await asyncio.gather(running, waiting)


def test_reservation_must_leave_a_slot_for_slack_work() -> None:
    with pytest.raises(ValueError, match="reserved"):
        PrioritySlots(1, reserved=1)



async def test_handover_skips_cancelled_waiter() -> None:
    """A waiter cancelled in the same step that frees a slot is skipped, not handed the slot."""
    slots = PrioritySlots(1)
    order: list[str] = []
    tasks: dict[str, asyncio.Task[None]] = {}

    async def holder() -> None:
        async with slots.hold(False):
            await asyncio.sleep(0.01)
            tasks["cancelled"].cancel()  # its future is cancelled now, its task runs later

    async def waiter(name: str, urgent: bool) -> None:
        async with slots.hold(urgent):
            order.append(name)

    tasks["holder"] = asyncio.create_task(holder())
    await asyncio.sleep(0)
    tasks["cancelled"] = asyncio.create_task(waiter("cancelled", True))
    tasks["waiting"] = asyncio.create_task(waiter("waiting", False))
    results = await asyncio.wait_for(asyncio.gather(*tasks.values(), return_exceptions=True), 5)

    assert order == ["waiting"], results
    assert isinstance(results[1], asyncio.CancelledError)
