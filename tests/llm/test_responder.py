"""LlmResponder over the faulty OpenAI-compatible server: guard, timeouts, cache and summary."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from tests.llm.faulty_server import REPLY_PIECES, REPLY_TEXT, FaultyServerState, build_app
from voicebot.llm.cache import ResponseCache
from voicebot.llm.client import LlmClient, ModelRouter
from voicebot.llm.responder import LlmResponder, Passage, build_messages
from voicebot.responder.base import CallerTurn, DialogContext, ReplyKind

pytestmark = pytest.mark.timeout(30)

FULL_PASSAGE = Passage(id="annual_fee", text="普卡年费每年一百元，金卡每年三百元，首年免年费。")
# Without the gold card fee, so the second sentence of the server's reply is ungrounded.
PARTIAL_PASSAGE = Passage(id="annual_fee", text="普卡年费每年一百元，首年免年费。")


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    state = FaultyServerState()
    runner = web.AppRunner(build_app(state), shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    finally:
        state.release.set()
        await runner.cleanup()


@pytest.fixture
async def client(base_url: str) -> AsyncIterator[LlmClient]:
    llm = LlmClient(base_url=base_url, first_token_timeout_s=0.5, idle_timeout_s=0.5, retry_delay_s=0.0)
    try:
        yield llm
    finally:
        await llm.aclose()


def responder_for(client: LlmClient, mode: str, passages: list[Passage], cache: ResponseCache | None = None) -> LlmResponder:
    return LlmResponder(
        client=client,
        retrieve=lambda text: passages,
        router=ModelRouter(small_model=mode, large_model=mode),
        cache=cache,
    )


def turn(text: str = "年费多少钱", language: str = "zh") -> CallerTurn:
    return CallerTurn(text=text, language=language, asr_confidence=0.9, turn_index=1)


async def test_grounded_answer_spoken(client: LlmClient) -> None:
    """A grounded reply is an ANSWER and every sentence is spoken in order."""
    spoken: list[str] = []

    async def speak(sentence: str) -> None:
        spoken.append(sentence)

    responder = responder_for(client, "ok", [FULL_PASSAGE])
    reply = await responder.respond_streaming(turn(), DialogContext(call_id="c1", language="zh"), speak=speak)
    assert reply.kind is ReplyKind.ANSWER
    assert reply.text == REPLY_TEXT
    assert reply.topic == "llm:annual_fee"
    assert spoken == list(REPLY_PIECES)


async def test_violation_clarifies(client: LlmClient) -> None:
    """An ungrounded sentence is not spoken and the reply is CLARIFY."""
    spoken: list[str] = []

    async def speak(sentence: str) -> None:
        spoken.append(sentence)

    responder = responder_for(client, "ok", [PARTIAL_PASSAGE])
    reply = await responder.respond_streaming(turn(), DialogContext(call_id="c1", language="zh"), speak=speak)
    assert reply.kind is ReplyKind.CLARIFY
    assert spoken == [REPLY_PIECES[0]]
    assert "三百" not in reply.text


async def test_timeout_after_retry_hands_off(client: LlmClient) -> None:
    """A first-token timeout on both attempts hands the call to an agent."""
    responder = responder_for(client, "stall_first", [FULL_PASSAGE])
    reply = await responder.respond(turn(), DialogContext(call_id="c1", language="zh"))
    assert reply.kind is ReplyKind.HANDOFF
    assert reply.handoff_reason == "llm_unavailable"


async def test_timeout_without_retry_clarifies(base_url: str) -> None:
    """With retries off, a timeout gives CLARIFY, not HANDOFF."""
    llm = LlmClient(base_url=base_url, first_token_timeout_s=0.5, retries=0)
    try:
        reply = await responder_for(llm, "stall_first", [FULL_PASSAGE]).respond(
            turn(), DialogContext(call_id="c1", language="zh")
        )
    finally:
        await llm.aclose()
    assert reply.kind is ReplyKind.CLARIFY


async def test_no_passage_clarifies(client: LlmClient) -> None:
    """Without an approved passage the model is not asked and the reply is CLARIFY."""
    reply = await responder_for(client, "ok", []).respond(turn(), DialogContext(call_id="c1", language="yue"))
    assert reply.kind is ReplyKind.CLARIFY
    assert reply.topic is None


async def test_cache_serves_second_call(client: LlmClient) -> None:
    """A grounded answer is cached, and a truncating server is not asked again for the same question."""
    cache = ResponseCache(key_prefix=f"voicebot-test:{uuid.uuid4().hex}:")
    try:
        first = await responder_for(client, "ok", [FULL_PASSAGE], cache).respond(
            turn("年费多少钱？"), DialogContext(call_id="c1", language="zh")
        )
        second = await responder_for(client, "truncate", [FULL_PASSAGE], cache).respond(
            turn("年费多少钱"), DialogContext(call_id="c2", language="zh")
        )
    finally:
        await cache.clear()
        await cache.aclose()
    assert first.kind is ReplyKind.ANSWER
    assert second.kind is ReplyKind.ANSWER
    assert second.text == first.text


async def test_summary_keeps_said_numbers(client: LlmClient) -> None:
    """The summary keeps sentences whose numbers were said in the call and drops the others."""
    responder = responder_for(client, "ok", [FULL_PASSAGE])
    history = [("caller", "年费多少钱"), ("bot", "普卡年费每年一百元，首年免年费。")]
    summary = await responder.summarise_call(history)
    # The server's reply also claims 三百元, which nobody said in this call.
    assert summary == REPLY_PIECES[0] + REPLY_PIECES[2]


async def test_summary_falls_back(client: LlmClient) -> None:
    """When the model fails, the summary is the caller's last turn."""
    responder = responder_for(client, "unauthorized", [FULL_PASSAGE])
    summary = await responder.summarise_call([("caller", "我要挂失")])
    assert summary == "来电人最后说：我要挂失"


def test_prompt_names_language_and_passages() -> None:
    """The prompt carries the passages in the caller's language and the answer rules."""
    passage = Passage(id="annual_fee", text="普卡年费每年一百元。", texts={"zh": "普卡年费每年一百元。", "yue": "普卡年费每年一百蚊。"})
    messages = build_messages("年费几多钱", [passage], language="yue", history=[("caller", "你好"), ("bot", "你好")])
    system = messages[0]["content"]
    assert "粤语" in system
    assert "[1] 普卡年费每年一百蚊。" in system
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[-1]["content"] == "年费几多钱"
