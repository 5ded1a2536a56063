"""DialogResponder end to end: scenario suite, worker hand-over, audit record and DTMF."""

from __future__ import annotations

import redis.asyncio as redis_asyncio

from voicebot.dialog.banking import RedisBankingSimulator
from voicebot.dialog.flows import load_flows
from voicebot.dialog.responder import DialogResponder
from voicebot.dialog.scenarios import REPO_ROOT, ScenarioRunner, load_scenarios
from voicebot.dialog.state import DialogStateStore
from voicebot.responder.base import CallerTurn, DialogContext, ReplyKind
from voicebot.responder.faq import FaqResponder, KnowledgeBase
from voicebot.responder.messages import Messages

REDIS_URL = "redis://127.0.0.1:6379/0"
FLOWS = load_flows(REPO_ROOT / "dialogs" / "flows", REPO_ROOT / "prompts" / "flows.yaml")


def _responder(bank: RedisBankingSimulator, store: DialogStateStore, faq: FaqResponder,
               messages: Messages) -> DialogResponder:
    return DialogResponder(flows=FLOWS, banking=bank, store=store, fallback=faq, system_messages=messages,
                           prompt_version="test-v1")


def _turn(index: int, text: str, dtmf: str = "") -> CallerTurn:
    return CallerTurn(text=text, language="zh", asr_confidence=0.9, turn_index=index, dtmf=dtmf)


async def test_scenario_suite(faq: FaqResponder, knowledge_base: KnowledgeBase, system_messages: Messages) -> None:
    """The whole scenario suite reaches the thresholds with no grounding violation."""
    scenarios = load_scenarios()
    assert len(scenarios) >= 40
    runner = ScenarioRunner(fallback=faq, knowledge_base=knowledge_base, system_messages=system_messages,
                            redis_url=REDIS_URL)
    try:
        report = await runner.run(scenarios)
    finally:
        await runner.close()
    print("\n" + report.markdown())
    assert report.task_completion >= 0.9
    assert report.intent_accuracy >= 0.9
    assert report.slot_accuracy >= 0.9
    assert report.grounding_violations == []


async def test_call_moves_between_workers(
    key_prefix: str, bank: RedisBankingSimulator, faq: FaqResponder, system_messages: Messages
) -> None:
    """Two responders with separate Redis clients continue one call from the stored state."""
    second_client = redis_asyncio.Redis.from_url(REDIS_URL)
    first_store = DialogStateStore(url=REDIS_URL, key_prefix=key_prefix + "dialog:")
    second_store = DialogStateStore(client=second_client, key_prefix=key_prefix + "dialog:")
    first = _responder(bank, first_store, faq, system_messages)
    second = _responder(bank, second_store, faq, system_messages)
    context = DialogContext(call_id="moving-call", language="zh", caller="13922223333")
    try:
        await first.respond(_turn(1, "我的信用卡丢了，帮我挂失"), context)
        reply = await second.respond(_turn(2, "三五七一"), context)
        assert "三五七一" in reply.text
        reply = await first.respond(_turn(3, "对"), context)
        assert reply.actions == ("verify_card", "freeze_card", "check_recent_transactions")
        assert await bank.card_status("K2001") == "frozen"
        state = await second_store.load("moving-call")
        assert state is not None
        assert state.prompt_version == "test-v1"
        assert state.completed_flows == ["lost_card"]
    finally:
        await first_store.close()
        await second_client.aclose()


async def test_address_audit_record(
    key_prefix: str, bank: RedisBankingSimulator, faq: FaqResponder, system_messages: Messages
) -> None:
    """The audit record names the call, the confirming turn and the old and new address."""
    store = DialogStateStore(url=REDIS_URL, key_prefix=key_prefix + "dialog:")
    responder = _responder(bank, store, faq, system_messages)
    context = DialogContext(call_id="audit-call", language="zh", caller="13922223333")
    lines = ["我想修改我的账单地址", "", "", "我的新地址是上海市浦东新区世纪大道一百号", "对，没错"]
    keys = ["", "3571#", "1", "", ""]
    try:
        for index, (text, dtmf) in enumerate(zip(lines, keys, strict=True), start=1):
            reply = await responder.respond(_turn(index, text, dtmf), context)
    finally:
        await store.close()
    assert reply.actions == ("change_billing_address",)
    records = await bank.audit_log()
    assert len(records) == 1
    record = records[0]
    assert record.call_id == "audit-call"
    assert record.confirmation_turn == 5
    assert record.old_value == "广州市天河区体育西路一百二十号"
    assert record.new_value == "上海市浦东新区世纪大道一百号"
    assert "C002" in record.confirmed_by
    assert record.details["prompt_version"] == "test-v1"


async def test_handoff_carries_collected_slots(
    key_prefix: str, bank: RedisBankingSimulator, faq: FaqResponder, system_messages: Messages
) -> None:
    """A request for a person mid-flow hands off with what the bot collected."""
    store = DialogStateStore(url=REDIS_URL, key_prefix=key_prefix + "dialog:")
    responder = _responder(bank, store, faq, system_messages)
    context = DialogContext(call_id="handoff-call", language="zh", caller="13922223333")
    try:
        await responder.respond(_turn(1, "我要挂失"), context)
        await responder.respond(_turn(2, "三五七一"), context)
        reply = await responder.respond(_turn(3, "我要转员工"), context)
    finally:
        await store.close()
    assert reply.kind is ReplyKind.HANDOFF
    assert reply.handoff_reason == "human_request"
    assert reply.slots["card_last4"] == "3571"
    assert reply.slots["identity_verified"] == "no"
