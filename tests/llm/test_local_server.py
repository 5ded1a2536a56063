"""The real llama.cpp server (xllamacpp) with the embedded Qwen2.5 0.5B GGUF, one per module."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from voicebot.config import Settings
from voicebot.llm.client import LlmClient, ModelRouter, sentences
from voicebot.llm.grounding import check_grounding
from voicebot.llm.responder import LlmResponder, build_messages, faq_retriever
from voicebot.llm.server import DEFAULT_MODEL_ALIAS, local_llm_server
from voicebot.responder.base import CallerTurn, DialogContext, ReplyKind
from voicebot.responder.faq import FaqResponder, load_knowledge_base
from voicebot.responder.messages import load_messages

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240), pytest.mark.asyncio(loop_scope="module")]

CHINESE = re.compile(r"[\u4e00-\u9fff]")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def base_url() -> AsyncIterator[str]:
    # One thread: the test machine has two cores shared with other work.
    async with local_llm_server(threads=1, context_tokens=2048) as url:
        yield url


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(base_url: str) -> AsyncIterator[LlmClient]:
    # CPU-only decoding on a shared machine can take tens of seconds for the first token.
    llm = LlmClient(base_url=base_url, first_token_timeout_s=90.0, idle_timeout_s=30.0)
    try:
        yield llm
    finally:
        await llm.aclose()


@pytest.fixture(scope="module")
def faq() -> FaqResponder:
    settings = Settings()
    return FaqResponder(load_knowledge_base(settings.knowledge_base), load_messages(settings.messages))


async def test_models_listed(base_url: str) -> None:
    """GET /v1/models lists the model alias."""
    async with aiohttp.ClientSession() as session:
        async with session.get(base_url + "/models") as response:
            assert response.status == 200
            body = await response.json()
    assert [model["id"] for model in body["data"]] == [DEFAULT_MODEL_ALIAS]


async def test_streamed_faq_answer(client: LlmClient, faq: FaqResponder) -> None:
    """A Mandarin FAQ question streams a Chinese answer in several pieces, and the guard reads it."""
    passages = faq_retriever(faq)("信用卡年费多少钱")
    assert passages[0].id == "annual_fee"
    messages = build_messages("信用卡年费多少钱", passages[:1], language="zh")
    pieces: list[str] = []

    async def record() -> AsyncIterator[str]:
        async for piece in client.stream_chat(messages, model=DEFAULT_MODEL_ALIAS, max_tokens=48, temperature=0.0):
            pieces.append(piece)
            yield piece

    said = [sentence async for sentence in sentences(record())]
    answer = "".join(pieces)
    assert len(pieces) > 1
    assert CHINESE.search(answer)
    assert said
    for sentence in said:
        assert sentence in answer
    result = check_grounding(answer, [passages[0].text])
    for violation in result.violations:
        assert violation.kind in ("ungrounded_quantity", "forbidden_phrase")
        assert violation.text in answer


async def test_responder_answer_is_grounded(client: LlmClient, faq: FaqResponder) -> None:
    """The responder returns a grounded ANSWER or a CLARIFY, never an ungrounded answer."""
    retrieve = faq_retriever(faq, max_passages=2)
    responder = LlmResponder(
        client=client,
        retrieve=retrieve,
        router=ModelRouter(small_model=DEFAULT_MODEL_ALIAS, large_model=DEFAULT_MODEL_ALIAS),
        max_tokens=48,
        temperature=0.0,
    )
    question = "取现要收多少手续费"
    reply = await responder.respond(
        CallerTurn(text=question, language="zh", asr_confidence=0.9, turn_index=0),
        DialogContext(call_id="llm-test", language="zh"),
    )
    assert reply.kind in (ReplyKind.ANSWER, ReplyKind.CLARIFY)
    if reply.kind is ReplyKind.ANSWER:
        passage_texts = [text for passage in retrieve(question) for text in passage.all_texts()]
        assert check_grounding(reply.text, passage_texts).grounded
    assert reply.topic == "llm:cash_advance_fee"
