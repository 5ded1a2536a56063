"""A call that ends while its handoff request is on its way to Redis withdraws the handoff."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from voicebot.handoff import HandoffQueue, HandoffRequest
from voicebot.pipeline.dialog import HandoffRequestInfo
from voicebot.transfer import WarmTransfer

pytestmark = pytest.mark.timeout(30)

INFO = HandoffRequestInfo(
    call_id="call-ending",
    reason="fraud",
    turn_index=2,
    language="zh",
    centre="default",
    slots={},
    history=(("bot", "您好"), ("caller", "有一笔交易不是我本人操作的")),
)


class SlowQueue(HandoffQueue):
    """A queue whose request replies late, before or after the request reaches Redis."""

    def __init__(self, *, delay_before_s: float, delay_after_s: float, **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self._before = delay_before_s
        self._after = delay_after_s

    async def request(self, request: HandoffRequest, *, handoff_id: str | None = None) -> str:
        await asyncio.sleep(self._before)
        handoff_id = await super().request(request, handoff_id=handoff_id)
        await asyncio.sleep(self._after)
        return handoff_id


class EndedCall:
    """The parts of a call the transfer uses before the queue replies to its request."""

    call_id = INFO.call_id

    async def clear_output(self) -> None:
        return None


@pytest.mark.parametrize(("before_s", "after_s"), [(0.3, 0.0), (0.0, 0.3)])
async def test_call_end_withdraws_pending_request(key_prefix: str, before_s: float, after_s: float) -> None:
    """The handoff is cancelled whether the call ended before or after the request landed."""
    queue = SlowQueue(delay_before_s=before_s, delay_after_s=after_s, redis_url="redis://127.0.0.1:6379/0",
                      key_prefix=key_prefix, sweep_interval_s=0.1, event_block_s=0.2)
    async with queue:
        services = SimpleNamespace(handoff_queue=queue, responder=SimpleNamespace(last_decisions={}), llm=None)
        transfer = WarmTransfer(services=services, call=EndedCall(), sink=None, started_at=0.0)  # type: ignore[arg-type]
        task = asyncio.create_task(transfer.run(INFO))
        await asyncio.sleep(0.1)

        task.cancel()
        await asyncio.wait({task})

        assert transfer.handoff_id is not None
        info = await queue.get(transfer.handoff_id)
        assert info.state == "cancelled"
        assert await queue.waiting(["fraud"]) == []
