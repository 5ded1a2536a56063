"""The LLM fallback chain on the real llama.cpp server with the embedded model, and one whole call."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from telephony.softphone import place_call
from tests.llm_calls.helpers import FAQ_HIT_QUESTION, FREE_FORM_FEE_QUESTION, CountingClient, collect, load_faq, turn
from voicebot.config import Settings
from voicebot.dialog.flows import load_flows
from voicebot.dialog.responder import DialogResponder
from voicebot.escalation import EscalationPolicy
from voicebot.llm.client import ModelRouter
from voicebot.llm.grounding import GroundingGuard
from voicebot.llm.responder import LlmResponder, faq_retriever
from voicebot.llm.runtime import LlmRuntime
from voicebot.llm.server import DEFAULT_MODEL_ALIAS
from voicebot.responder.base import DialogContext, ReplyKind
from voicebot.responder.chain import FaqThenLlmResponder
from voicebot.responder.escalating import EscalatingResponder
from voicebot.responder.faq import FaqResponder
from voicebot.server import running_server
from voicebot.services import Services

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240), pytest.mark.asyncio(loop_scope="session")]

CHINESE = re.compile(r"[\u4e00-\u9fff]")
ROUTER = ModelRouter(small_model=DEFAULT_MODEL_ALIAS, large_model=DEFAULT_MODEL_ALIAS)


def chain_on(runtime: LlmRuntime, faq: FaqResponder, client: CountingClient) -> FaqThenLlmResponder:
    # Temperature 0 makes the answer of the local model repeatable.
    llm = LlmResponder(client=client, retrieve=faq_retriever(faq), router=ROUTER, temperature=0.0)
    return FaqThenLlmResponder(faq, llm, use_llm_below=faq.threshold)


@pytest.fixture(scope="module")
def faq() -> FaqResponder:
    return load_faq()


async def test_runtime_runs_local_server(llm_runtime: LlmRuntime) -> None:
    """start_llm_fallback("embedded") serves the model on 127.0.0.1 and builds the chain."""
    assert llm_runtime.server is not None
    assert llm_runtime.base_url.startswith("http://127.0.0.1:")
    assert llm_runtime.base_url.endswith("/v1")
    assert isinstance(llm_runtime.responder, FaqThenLlmResponder)


async def test_faq_hit_makes_no_request(llm_runtime: LlmRuntime, faq: FaqResponder) -> None:
    """An FAQ hit is answered without a single request to the LLM server."""
    client = CountingClient(base_url=llm_runtime.base_url, first_token_timeout_s=90.0, idle_timeout_s=30.0)
    try:
        reply = await chain_on(llm_runtime, faq, client).respond(
            turn(FAQ_HIT_QUESTION), DialogContext(call_id="llm-hit", language="zh")
        )
    finally:
        await client.aclose()
    assert reply.kind is ReplyKind.ANSWER
    assert reply.topic == "annual_fee"
    assert reply.sentences is None
    assert client.requests == 0


async def test_free_form_answer_streams(llm_runtime: LlmRuntime, faq: FaqResponder) -> None:
    """A question below the FAQ threshold gets a grounded LLM answer, streamed sentence by sentence."""
    client = CountingClient(base_url=llm_runtime.base_url, first_token_timeout_s=90.0, idle_timeout_s=30.0)
    context = DialogContext(call_id="llm-free-form", language="zh")
    try:
        reply = await chain_on(llm_runtime, faq, client).respond(turn(FREE_FORM_FEE_QUESTION), context)
        context.history.append(("bot", reply.text))
        spoken = await collect(reply.sentences)
    finally:
        await client.aclose()
    assert client.requests == 1
    assert reply.kind is ReplyKind.ANSWER
    assert reply.topic == "llm:annual_fee"
    assert spoken[0] == reply.text
    assert all(CHINESE.search(sentence) for sentence in spoken)
    answer = "".join(spoken)
    assert context.history[-1] == ("bot", answer)
    assert GroundingGuard([faq.knowledge_base.get("annual_fee").answer("zh")]).check(answer).grounded


async def test_summary_for_agent(llm_runtime: LlmRuntime) -> None:
    """summarise_call returns Chinese text for the agent's screen pop."""
    summary = await llm_runtime.summarise_call([("caller", FREE_FORM_FEE_QUESTION), ("bot", "金卡每年三百元。")])
    assert CHINESE.search(summary)


async def test_whole_call_streams_llm_answer(
    llm_runtime: LlmRuntime, services: Services, callers_dir: Path
) -> None:
    """A caller clip the FAQ may not answer gets the LLM answer over a real call, recorded whole."""
    # Threshold 1.0: no FAQ match reaches it, so the turn goes to the LLM.
    faq = FaqResponder(services.faq.knowledge_base, services.faq.messages, threshold=1.0)
    llm = LlmResponder(client=llm_runtime.client, retrieve=faq_retriever(faq), router=ROUTER, temperature=0.0)
    settings = services.settings
    dialog = DialogResponder(
        flows=load_flows(settings.knowledge_base.parent / "flows", settings.messages.parent / "flows.yaml"),
        banking=services.banking,
        store=services.dialog_states,
        fallback=FaqThenLlmResponder(faq, llm, use_llm_below=1.0),
        system_messages=services.messages,
        prompt_version=services.prompts.current().version,
    )
    responder = EscalatingResponder(
        policy=EscalationPolicy.from_file(settings.escalation_policy), inner=dialog, messages=services.messages
    )
    with_llm = dataclasses.replace(services, responder=responder)
    events: list[dict[str, Any]] = []
    async with running_server(Settings(port=0), with_llm) as (url, _):
        summary = await place_call(
            url.replace("http://", "ws://") + "/media",
            [callers_dir / "faq_annual_fee.wav"],
            speed=3.0,
            on_event=events.append,
            turn_timeout_s=120,
        )
    assert not summary.timed_out
    replies = [event for event in events if event["event"] == "bot"][1:]  # the first is the greeting
    assert len(replies) == 1
    assert replies[0]["kind"] == "answer", replies[0]
    assert replies[0]["topic"] == "llm:annual_fee"

    turns = await services.store.list_turns(summary.call_id)
    bot_turn = [t for t in turns if t.role == "bot"][-1]
    # The sideband event carries the first sentence; the record holds the whole answer once played.
    assert bot_turn.text.startswith(replies[0]["text"])
    assert not bot_turn.interrupted
    assert bot_turn.heard_text is not None
    assert bot_turn.text == bot_turn.heard_text
    assert GroundingGuard(faq.knowledge_base.get("annual_fee").answers.values()).check(bot_turn.heard_text).grounded
