"""Fixtures for handoff tests: queues on the local Redis under a unique key prefix."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as redis_asyncio

from voicebot.handoff import HandoffQueue, HandoffRequest, Reason, ScreenPop

REDIS_URL = "redis://127.0.0.1:6379/0"


async def _delete_prefix(prefix: str) -> None:
    client = redis_asyncio.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def key_prefix() -> AsyncIterator[str]:
    """A key prefix no other test uses; its keys are deleted afterwards."""
    prefix = f"test:handoff:{uuid.uuid4().hex[:8]}:"
    yield prefix
    await _delete_prefix(prefix)


@pytest.fixture
def make_queue(key_prefix: str) -> AsyncIterator[Callable[..., HandoffQueue]]:
    """A factory of connected-on-enter queues sharing one prefix, as separate processes would."""

    def make(**options: object) -> HandoffQueue:
        values: dict[str, object] = {
            "redis_url": REDIS_URL,
            "key_prefix": key_prefix,
            "sweep_interval_s": 0.1,
            "event_block_s": 0.2,
        }
        values.update(options)
        return HandoffQueue(**values)  # type: ignore[arg-type]

    return make  # type: ignore[return-value]


def fraud_request(call_id: str = "call-1", *, priority: int = 5, skill: str = "fraud", **options: object) -> HandoffRequest:
    """A handoff request with a fraud reason and a transcript that contains a card number."""
    screen_pop = ScreenPop(
        summary="客户称在上海却收到迪拜消费提醒，卡号6222 0212 3456 7890",
        transcript=[
            ("caller", "我的卡号是6222021234567890，刚才在迪拜被刷了"),
            ("bot", "请问您现在人在哪里？"),
            ("caller", "我在上海，手机13812345678"),
        ],
        reasons=[Reason.from_code("fraud_suspected"), Reason.from_code("location_mismatch")],
        slots={"card_last4": "7890", "phone": "13812345678", "city": "上海"},
        verification="verified",
        language="zh",
        centre="shanghai",
        call_started_at=time.time() - 60,
    )
    return HandoffRequest(
        call_id=call_id,
        skill=skill,
        priority=priority,
        reasons=["fraud_suspected", "location_mismatch"],
        screen_pop=screen_pop,
        **options,  # type: ignore[arg-type]
    )


async def next_event(events: object, timeout_s: float = 10.0) -> object:
    """Return the next event of an async iterator, failing the test after `timeout_s`."""
    return await asyncio.wait_for(events.__anext__(), timeout=timeout_s)  # type: ignore[attr-defined]
