"""FaqThenLlmResponder with the real FAQ responder over a scripted OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from tests.llm_calls.helpers import (
    FAQ_HIT_QUESTION,
    FREE_FORM_FEE_QUESTION,
    CountingClient,
    collect,
    load_faq,
    turn,
)
from tests.llm_calls.scripted_server import GROUNDED_PIECES, UNGROUNDED_SENTENCE, ScriptedServerState, scripted_server
from voicebot.errors import ConfigError
from voicebot.llm.cache import ResponseCache
from voicebot.llm.client import ModelRouter
from voicebot.llm.responder import DEFAULT_CLARIFY_TEXTS, LlmResponder, faq_retriever
from voicebot.responder.base import DialogContext, ReplyKind
from voicebot.responder.chain import FaqThenLlmResponder
from voicebot.responder.faq import FaqResponder

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def faq() -> FaqResponder:
    return load_faq()


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, ScriptedServerState]]:
    async with scripted_server() as running:
        yield running


@pytest.fixture
async def client(server: tuple[str, ScriptedServerState]) -> AsyncIterator[CountingClient]:
    llm = CountingClient(base_url=server[0], first_token_timeout_s=0.5, idle_timeout_s=0.5, retry_delay_s=0.0)
    try:
        yield llm
    finally:
        await llm.aclose()


def chain_for(faq: FaqResponder, client: CountingClient, mode: str) -> FaqThenLlmResponder:
    llm = LlmResponder(client=client, retrieve=faq_retriever(faq), router=ModelRouter(small_model=mode, large_model=mode))
    return FaqThenLlmResponder(faq, llm, use_llm_below=faq.threshold)


def context() -> DialogContext:
    return DialogContext(call_id="chain-test", language="zh")


async def test_faq_hit_skips_llm(faq: FaqResponder, client: CountingClient) -> None:
    """An FAQ hit is the approved answer, not streamed, and no LLM request is made."""
    reply = await chain_for(faq, client, "grounded").respond(turn(FAQ_HIT_QUESTION), context())
    assert reply.kind is ReplyKind.ANSWER
    assert reply.topic == "annual_fee"
    assert reply.text == faq.knowledge_base.get("annual_fee").answer("zh")
    assert reply.sentences is None
    assert client.requests == 0


async def test_grounded_answer_streams(faq: FaqResponder, client: CountingClient) -> None:
    """Below the FAQ threshold the LLM answer streams sentence by sentence, the first one as `text`."""
    ctx = context()
    reply = await chain_for(faq, client, "grounded").respond(turn(FREE_FORM_FEE_QUESTION), ctx)
    assert reply.kind is ReplyKind.ANSWER
    assert reply.topic == "llm:annual_fee"
    assert reply.text == "普卡年费每年一百元。"
    ctx.history.append(("bot", reply.text))  # as the dialog step does before it speaks
    spoken = await collect(reply.sentences)
    assert spoken == ["普卡年费每年一百元。", "金卡每年三百元。"]
    assert ctx.history[-1] == ("bot", "".join(GROUNDED_PIECES))
    assert client.requests == 1


async def test_ungrounded_sentence_not_yielded(faq: FaqResponder, client: CountingClient) -> None:
    """A sentence with a fee no passage states is never yielded; the clarify line ends the answer."""
    ctx = context()
    reply = await chain_for(faq, client, "ungrounded").respond(turn(FREE_FORM_FEE_QUESTION), ctx)
    assert reply.kind is ReplyKind.ANSWER
    ctx.history.append(("bot", reply.text))
    spoken = await collect(reply.sentences)
    assert spoken == ["普卡年费每年一百元。", DEFAULT_CLARIFY_TEXTS["zh"]]
    assert all("九百" not in sentence for sentence in spoken)
    assert UNGROUNDED_SENTENCE not in ctx.history[-1][1]


async def test_stalled_server_hands_off(faq: FaqResponder, client: CountingClient) -> None:
    """No first token on the attempt and its retry gives the LLM responder's HANDOFF, not a stream."""
    reply = await chain_for(faq, client, "stall_first").respond(turn(FREE_FORM_FEE_QUESTION), context())
    assert reply.kind is ReplyKind.HANDOFF
    assert reply.handoff_reason == "llm_unavailable"
    assert reply.sentences is None
    assert client.requests == 1  # one stream_chat call; the client retried inside it


async def test_stall_without_retry_clarifies(faq: FaqResponder, server: tuple[str, ScriptedServerState]) -> None:
    """With retries off, a stalled server gives the FAQ's CLARIFY reply naming the closest topics."""
    client = CountingClient(base_url=server[0], first_token_timeout_s=0.5, retries=0)
    try:
        chain = chain_for(faq, client, "stall_first")
        reply = await chain.respond(turn(FREE_FORM_FEE_QUESTION), context())
        expected = await faq.respond(turn(FREE_FORM_FEE_QUESTION), context())
    finally:
        await client.aclose()
    assert reply.kind is ReplyKind.CLARIFY
    assert reply == expected
    assert reply.sentences is None


async def test_closed_stream_stops_request(
    faq: FaqResponder, client: CountingClient, server: tuple[str, ScriptedServerState]
) -> None:
    """Closing the sentence stream mid-answer (a barge-in) closes the request to the LLM server."""
    chain = chain_for(faq, client, "slow")
    reply = await chain.respond(turn(FREE_FORM_FEE_QUESTION), context())
    assert reply.sentences is not None
    first = await anext(reply.sentences)
    assert first == "普卡年费每年一百元。"
    await reply.sentences.aclose()  # type: ignore[attr-defined]
    while server[1].disconnected["slow"] == 0:
        await asyncio.sleep(0.05)
    assert not chain._tasks


async def test_cancel_before_first_sentence(
    faq: FaqResponder, client: CountingClient, server: tuple[str, ScriptedServerState]
) -> None:
    """Cancelling `respond` while it waits for the first sentence stops the LLM request."""
    chain = chain_for(faq, client, "stall_first")
    task = asyncio.create_task(chain.respond(turn(FREE_FORM_FEE_QUESTION), context()), name="respond-under-test")
    while server[1].requests["stall_first"] == 0:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    while server[1].disconnected["stall_first"] == 0:
        await asyncio.sleep(0.05)
    assert not chain._tasks


async def test_cache_serves_repeat(faq: FaqResponder, client: CountingClient) -> None:
    """A grounded answer is cached in Redis, and the same question again is streamed from the cache."""
    cache = ResponseCache(key_prefix=f"voicebot-test:{uuid.uuid4().hex}:")
    llm = LlmResponder(
        client=client, retrieve=faq_retriever(faq), router=ModelRouter(small_model="grounded", large_model="grounded"),
        cache=cache,
    )
    chain = FaqThenLlmResponder(faq, llm, use_llm_below=faq.threshold)
    try:
        first = await chain.respond(turn(FREE_FORM_FEE_QUESTION), context())
        first_spoken = await collect(first.sentences)
        again = await chain.respond(turn(FREE_FORM_FEE_QUESTION, index=2), context())
        again_spoken = await collect(again.sentences)
    finally:
        await cache.clear()
        await cache.aclose()
    assert client.requests == 1
    assert again.kind is ReplyKind.ANSWER
    assert "".join(again_spoken) == "".join(first_spoken)
    assert again.text == "".join(GROUNDED_PIECES)


async def test_threshold_above_faq_rejected(faq: FaqResponder, client: CountingClient) -> None:
    """use_llm_below above the FAQ threshold raises ConfigError naming the value."""
    llm = LlmResponder(client=client, retrieve=faq_retriever(faq), router=ModelRouter(small_model="m", large_model="m"))
    with pytest.raises(ConfigError, match="0.95"):
        FaqThenLlmResponder(faq, llm, use_llm_below=0.95)
