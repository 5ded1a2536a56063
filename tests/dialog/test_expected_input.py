"""The responder tells the recogniser what the waiting flow step expects next."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from voicebot.dialog.banking import RedisBankingSimulator
from voicebot.dialog.flows import load_flows
from voicebot.dialog.responder import DialogResponder
from voicebot.dialog.scenarios import REPO_ROOT
from voicebot.dialog.state import DialogStateStore
from voicebot.responder.base import CallerTurn, DialogContext
from voicebot.responder.faq import FaqResponder
from voicebot.responder.messages import Messages

REDIS_URL = "redis://127.0.0.1:6379/0"
FLOWS = load_flows(REPO_ROOT / "dialogs" / "flows", REPO_ROOT / "prompts" / "flows.yaml")
SEED_CALLER = "13800138000"  # customer C001, card ending 6288


@pytest.fixture
async def responder(bank: RedisBankingSimulator, key_prefix: str, faq: FaqResponder,
                    system_messages: Messages) -> AsyncIterator[DialogResponder]:
    store = DialogStateStore(url=REDIS_URL, key_prefix=key_prefix + "state:")
    yield DialogResponder(flows=FLOWS, banking=bank, store=store, fallback=faq, system_messages=system_messages,
                          prompt_version="test-v1")
    await store.close()


async def _say(responder: DialogResponder, context: DialogContext, index: int, text: str, dtmf: str = "") -> None:
    context.expected = None
    reply = await responder.respond(
        CallerTurn(text=text, language="zh", asr_confidence=0.9, turn_index=index, dtmf=dtmf), context
    )
    context.history += [("caller", text), ("bot", reply.text)]


async def test_expectations_follow_the_lost_card_flow(responder: DialogResponder) -> None:
    context = DialogContext(call_id="expect-lost-card", language="zh", caller=SEED_CALLER)

    await _say(responder, context, 1, "我的信用卡丢了，帮我挂失。")
    assert context.expected is not None and context.expected.kind == "digits"
    assert context.expected.length == 4
    assert context.expected.accepts("我的卡号后四位是六二八八")
    assert not context.expected.accepts("我的卡号后四位是六二八")  # three digits: the grammar refuses
    assert not context.expected.accepts("我的卡号后宿泪")

    await _say(responder, context, 2, "六二八八")
    assert context.expected is not None and context.expected.kind == "yes_no"
    assert context.expected.accepts("对，没错")
    assert context.expected.accepts("不是，我说错了")
    assert not context.expected.accepts("信用卡年费多少")


async def test_no_expectation_outside_a_flow(responder: DialogResponder) -> None:
    context = DialogContext(call_id="expect-faq", language="zh", caller=SEED_CALLER)
    await _say(responder, context, 1, "信用卡年费是多少？")
    assert context.expected is None


async def test_address_step_expects_an_address(responder: DialogResponder) -> None:
    context = DialogContext(call_id="expect-address", language="zh", caller=SEED_CALLER)
    await _say(responder, context, 1, "我想修改我的账单地址。")
    await _say(responder, context, 2, "", dtmf="6288#")
    await _say(responder, context, 3, "对")
    assert context.expected is not None and context.expected.kind == "address"
    assert context.expected.accepts("上海市浦东新区世纪大道一百号")
    assert not context.expected.accepts("好的")
