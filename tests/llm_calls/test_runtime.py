"""start_llm_fallback with no LLM, invalid settings, and a remote OpenAI-compatible server."""

from __future__ import annotations

import pytest

from tests.llm_calls.helpers import FREE_FORM_FEE_QUESTION, collect, load_faq, turn
from tests.llm_calls.scripted_server import scripted_server
from voicebot.errors import ConfigError
from voicebot.llm.runtime import start_llm_fallback
from voicebot.responder.base import DialogContext, ReplyKind
from voicebot.responder.faq import FaqResponder

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def faq() -> FaqResponder:
    return load_faq()


def settings(faq: FaqResponder, **overrides: object) -> dict[str, object]:
    values: dict[str, object] = dict(
        base_url="",
        api_key="",
        model_small="grounded",
        model_large="grounded",
        faq=faq,
        redis_url="",
        threads=1,
        first_token_timeout_s=2.0,
        idle_timeout_s=2.0,
    )
    values.update(overrides)
    return values


async def test_empty_url_means_no_llm(faq: FaqResponder) -> None:
    """An empty base URL starts nothing and returns None."""
    assert await start_llm_fallback(**settings(faq)) is None  # type: ignore[arg-type]


async def test_invalid_url_rejected(faq: FaqResponder) -> None:
    """A base URL that is neither "embedded" nor http(s) raises ConfigError naming it."""
    with pytest.raises(ConfigError, match="ftp://llm"):
        await start_llm_fallback(**settings(faq, base_url="ftp://llm/v1"))  # type: ignore[arg-type]


async def test_remote_url_needs_models(faq: FaqResponder) -> None:
    """A remote server without model names raises ConfigError."""
    with pytest.raises(ConfigError, match="model"):
        await start_llm_fallback(**settings(faq, base_url="http://127.0.0.1:9/v1", model_small=""))  # type: ignore[arg-type]


async def test_remote_server_answers(faq: FaqResponder) -> None:
    """With a remote OpenAI-compatible URL the runtime's responder streams that server's answer."""
    async with scripted_server() as (base_url, state):
        runtime = await start_llm_fallback(**settings(faq, base_url=base_url))  # type: ignore[arg-type]
        assert runtime is not None
        try:
            reply = await runtime.responder.respond(
                turn(FREE_FORM_FEE_QUESTION), DialogContext(call_id="runtime-remote", language="zh")
            )
            spoken = await collect(reply.sentences)
        finally:
            await runtime.close()
    assert runtime.server is None
    assert reply.kind is ReplyKind.ANSWER
    assert spoken == ["普卡年费每年一百元。", "金卡每年三百元。"]
    assert state.requests["grounded"] == 1
