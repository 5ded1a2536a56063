"""Handoff queue on a real Redis: ordering, routing, presence, offers, events and masking."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as redis_asyncio

from tests.handoff.conftest import REDIS_URL, fraud_request, next_event
from voicebot.handoff import (
    Accepted,
    Cancelled,
    Declined,
    Ended,
    HandoffError,
    HandoffNotFoundError,
    HandoffStateError,
    Offered,
    RepDisconnected,
    TimedOut,
)

pytestmark = pytest.mark.timeout(30)


async def wait_until(check, *, interval_s: float = 0.05) -> None:  # type: ignore[no-untyped-def]
    """Poll an async check until it returns True; the test timeout bounds the wait."""
    while not await check():
        await asyncio.sleep(interval_s)


async def test_priority_orders_queue(make_queue) -> None:  # type: ignore[no-untyped-def]
    """Higher priority comes first, equal priority keeps arrival order."""
    async with make_queue() as queue:
        first = await queue.request(fraud_request("call-a", priority=5))
        urgent = await queue.request(fraud_request("call-b", priority=9))
        second = await queue.request(fraud_request("call-c", priority=5))
        assert await queue.position(urgent) == 1
        assert await queue.position(first) == 2
        assert await queue.position(second) == 3
        waiting = await queue.waiting(["fraud"])
        assert [info.handoff_id for info in waiting] == [urgent, first, second]
        assert [info.position for info in waiting] == [1, 2, 3]


async def test_skills_route_offers(make_queue) -> None:  # type: ignore[no-untyped-def]
    """A handoff is offered only to a rep with its skill."""
    async with make_queue() as queue:
        await queue.set_presence("rep-cards", "available", skills=["card_services"])
        handoff_id = await queue.request(fraud_request())
        info = await queue.get(handoff_id)
        assert info.state == "waiting"
        await queue.set_presence("rep-fraud", "available", skills=["fraud", "complaints"])
        events = queue.events(handoff_id)
        event = await next_event(events)
        assert isinstance(event, Offered)
        assert event.rep_id == "rep-fraud"
        presence = await queue.presence("rep-fraud")
        assert presence is not None
        assert presence.offer == handoff_id


async def test_longest_idle_rep_gets_offer(make_queue) -> None:  # type: ignore[no-untyped-def]
    """Of two free reps the one available longer gets the offer."""
    async with make_queue() as queue:
        await queue.set_presence("rep-early", "available", skills=["fraud"])
        await asyncio.sleep(0.01)
        await queue.set_presence("rep-late", "available", skills=["fraud"])
        handoff_id = await queue.request(fraud_request())
        info = await queue.get(handoff_id)
        assert info.offered_to == "rep-early"


async def test_presence_expires_without_heartbeat(make_queue) -> None:  # type: ignore[no-untyped-def]
    """A rep whose process stops heartbeating disappears and gets no offers."""
    async with make_queue(presence_ttl_s=0.3) as queue:
        await queue.set_presence("rep-1", "available", skills=["fraud"])
        assert await queue.heartbeat("rep-1")
        assert await queue.presence("rep-1") is not None

        async def gone() -> bool:
            return await queue.presence("rep-1") is None

        await wait_until(gone)
        assert not await queue.heartbeat("rep-1")
        handoff_id = await queue.request(fraud_request())
        info = await queue.get(handoff_id)
        assert info.state == "waiting"
        assert info.offered_to == ""


async def test_decline_reoffers_to_other_rep(make_queue) -> None:  # type: ignore[no-untyped-def]
    """A declined handoff goes to the next rep and never back to the one who declined."""
    async with make_queue() as queue:
        await queue.set_presence("rep-a", "available", skills=["fraud"])
        await asyncio.sleep(0.01)
        await queue.set_presence("rep-b", "available", skills=["fraud"])
        handoff_id = await queue.request(fraud_request())
        events = queue.events(handoff_id)
        offered = await next_event(events)
        assert isinstance(offered, Offered)
        assert offered.rep_id == "rep-a"
        await queue.decline(handoff_id, "rep-a")
        declined = await next_event(events)
        assert isinstance(declined, Declined)
        assert declined.rep_id == "rep-a"
        assert declined.reason == "declined"
        reoffered = await next_event(events)
        assert isinstance(reoffered, Offered)
        assert reoffered.rep_id == "rep-b"
        await queue.decline(handoff_id, "rep-b")
        await next_event(events)
        info = await queue.get(handoff_id)
        assert info.state == "waiting"
        assert info.position == 1


async def test_two_processes_share_queue(make_queue) -> None:  # type: ignore[no-untyped-def]
    """A call process sees the accept made by a console process on another client."""
    async with make_queue() as call_side, make_queue() as console_side:
        handoff_id = await call_side.request(fraud_request())
        events = call_side.events(handoff_id)
        await console_side.set_presence("rep-1", "available", skills=["fraud"])
        offered = await next_event(events)
        assert isinstance(offered, Offered)
        await console_side.accept(handoff_id, "rep-1")
        accepted = await next_event(events)
        assert isinstance(accepted, Accepted)
        assert accepted.rep_id == "rep-1"
        assert await call_side.position(handoff_id) is None
        presence = await call_side.presence("rep-1")
        assert presence is not None
        assert presence.status == "busy"
        assert presence.handoff == handoff_id
        await console_side.hangup(handoff_id, "rep-1")
        ended = await next_event(events)
        assert isinstance(ended, Ended)
        with pytest.raises(StopAsyncIteration):
            await next_event(events)


async def test_accept_by_other_rep_rejected(make_queue) -> None:  # type: ignore[no-untyped-def]
    """Only the rep an offer went to can accept it."""
    async with make_queue() as queue:
        await queue.set_presence("rep-1", "available", skills=["fraud"])
        handoff_id = await queue.request(fraud_request())
        with pytest.raises(HandoffStateError, match=handoff_id):
            await queue.accept(handoff_id, "rep-2")
        with pytest.raises(HandoffNotFoundError):
            await queue.accept("no-such-handoff", "rep-1")


async def test_cancel_ends_events(make_queue) -> None:  # type: ignore[no-untyped-def]
    """Cancel emits Cancelled with the reason and finishes the event stream."""
    async with make_queue() as queue:
        handoff_id = await queue.request(fraud_request())
        events = queue.events(handoff_id)
        await queue.cancel(handoff_id, "caller_hangup")
        cancelled = await next_event(events)
        assert isinstance(cancelled, Cancelled)
        assert cancelled.reason == "caller_hangup"
        with pytest.raises(StopAsyncIteration):
            await next_event(events)
        assert await queue.position(handoff_id) is None
        with pytest.raises(HandoffStateError):
            await queue.cancel(handoff_id, "again")


async def test_wait_timeout_emits_timed_out(make_queue) -> None:  # type: ignore[no-untyped-def]
    """A handoff nobody accepts ends with TimedOut after its wait timeout."""
    async with make_queue(wait_timeout_s=60) as queue:
        handoff_id = await queue.request(fraud_request(wait_timeout_s=0.3))
        events = queue.events(handoff_id)
        timed_out = await next_event(events)
        assert isinstance(timed_out, TimedOut)
        info = await queue.get(handoff_id)
        assert info.state == "timed_out"
        assert await queue.waiting(["fraud"]) == []


async def test_unanswered_offer_goes_back(make_queue) -> None:  # type: ignore[no-untyped-def]
    """An offer not answered in time is withdrawn and the rep is set away."""
    async with make_queue(offer_timeout_s=0.3) as queue:
        await queue.set_presence("rep-1", "available", skills=["fraud"])
        handoff_id = await queue.request(fraud_request())
        events = queue.events(handoff_id)
        assert isinstance(await next_event(events), Offered)
        declined = await next_event(events)
        assert isinstance(declined, Declined)
        assert declined.reason == "offer_timeout"
        presence = await queue.presence("rep-1")
        assert presence is not None
        assert presence.status == "away"
        assert presence.offer == ""
        assert (await queue.get(handoff_id)).state == "waiting"


async def test_away_rep_withdraws_offer(make_queue) -> None:  # type: ignore[no-untyped-def]
    """A rep who goes away with an open offer declines it."""
    async with make_queue() as queue:
        await queue.set_presence("rep-1", "available", skills=["fraud"])
        handoff_id = await queue.request(fraud_request())
        await queue.set_presence("rep-1", "away", skills=["fraud"])
        info = await queue.get(handoff_id)
        assert info.state == "waiting"
        assert info.offered_to == ""


async def test_rep_disconnect_requeues(make_queue) -> None:  # type: ignore[no-untyped-def]
    """A rep lost mid-call puts the handoff back at the front of the queue."""
    async with make_queue() as queue:
        other = await queue.request(fraud_request("call-other", priority=5))
        await queue.set_presence("rep-1", "available", skills=["fraud"])
        await queue.accept(other, "rep-1")
        handoff_id = await queue.request(fraud_request("call-1", priority=5))
        await queue.set_presence("rep-2", "available", skills=["fraud"])
        events = queue.events(handoff_id)
        assert isinstance(await next_event(events), Offered)
        await queue.accept(handoff_id, "rep-2")
        assert isinstance(await next_event(events), Accepted)
        await queue.rep_disconnected(handoff_id, "rep-2")
        disconnected = await next_event(events)
        assert isinstance(disconnected, RepDisconnected)
        assert disconnected.rep_id == "rep-2"
        assert await queue.position(handoff_id) == 1
        with pytest.raises(HandoffStateError):
            await queue.set_presence("rep-1", "available", skills=["fraud"])


async def test_expired_rep_mid_call_requeues(make_queue) -> None:  # type: ignore[no-untyped-def]
    """The sweep notices a rep whose presence expired during a call."""
    async with make_queue(presence_ttl_s=0.3) as queue:
        await queue.set_presence("rep-1", "available", skills=["fraud"])
        handoff_id = await queue.request(fraud_request())
        await queue.accept(handoff_id, "rep-1")
        events = queue.events(handoff_id)
        assert isinstance(await next_event(events), Offered)
        assert isinstance(await next_event(events), Accepted)
        disconnected = await next_event(events)
        assert isinstance(disconnected, RepDisconnected)
        assert (await queue.get(handoff_id)).state == "waiting"


async def test_screen_pop_masked_in_redis(make_queue) -> None:  # type: ignore[no-untyped-def]
    """Card and phone numbers never reach Redis; labels and slots survive."""
    async with make_queue() as queue:
        handoff_id = await queue.request(fraud_request())
        info = await queue.get(handoff_id)
        assert info.screen_pop is not None
        stored_text = " ".join(text for _role, text in info.screen_pop.transcript)
        assert "6222021234567890" not in stored_text
        assert "[CARD]" in stored_text
        assert "[PHONE]" in stored_text
        assert "6222" not in info.screen_pop.summary
        assert info.screen_pop.slots["phone"] == "[HIDDEN]"
        assert info.screen_pop.slots["card_last4"] == "7890"
        assert [reason.label for reason in info.reasons] == ["疑似欺诈", "交易地点与所在地不符"]
        client = redis_asyncio.from_url(REDIS_URL, decode_responses=True)
        try:
            raw = await client.hgetall(queue.handoff_key(handoff_id))
        finally:
            await client.aclose()
        assert "13812345678" not in raw["screen_pop"]
        assert "6222021234567890" not in raw["screen_pop"]


async def test_invalid_request_rejected(make_queue) -> None:  # type: ignore[no-untyped-def]
    """Unknown skills and out-of-range priorities raise HandoffError naming the value."""
    async with make_queue() as queue:
        with pytest.raises(HandoffError, match="'mortgages'"):
            await queue.request(fraud_request(skill="mortgages"))
        with pytest.raises(HandoffError, match="priority 12"):
            await queue.request(fraud_request(priority=12))
        with pytest.raises(HandoffError, match="'lunch'"):
            await queue.set_presence("rep-1", "lunch", skills=["fraud"])


async def test_request_with_given_id(make_queue) -> None:  # type: ignore[no-untyped-def]
    """A handoff requested with an id the caller chose keeps it; the same id again is rejected."""
    async with make_queue() as queue:
        handoff_id = "ab" * 16
        assert await queue.request(fraud_request(), handoff_id=handoff_id) == handoff_id
        assert (await queue.get(handoff_id)).state == "waiting"
        with pytest.raises(HandoffError, match=f"Handoff id {handoff_id} is already taken"):
            await queue.request(fraud_request("call-2"), handoff_id=handoff_id)
