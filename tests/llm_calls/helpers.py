"""Shared pieces of the LLM call tests: the real FAQ responder, a counting client, turns."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from voicebot.config import Settings
from voicebot.llm.client import ChatMessage, LlmClient
from voicebot.responder.base import CallerTurn
from voicebot.responder.faq import FaqResponder, load_knowledge_base
from voicebot.responder.messages import load_messages

# The FAQ matches this to annual_fee with a confidence near 0.5, below the 0.80 threshold, so
# the chain asks the LLM with the annual_fee answer as the only passage.
FREE_FORM_FEE_QUESTION = "我那张金卡每年要交多少钱"
FAQ_HIT_QUESTION = "信用卡年费多少钱"


def load_faq(*, threshold: float = 0.80) -> FaqResponder:
    settings = Settings()
    return FaqResponder(
        load_knowledge_base(settings.knowledge_base), load_messages(settings.messages), threshold=threshold
    )


class CountingClient(LlmClient):
    """The real LlmClient, counting the chat requests it is asked to make."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.requests = 0

    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> AsyncIterator[str]:
        self.requests += 1
        return super().stream_chat(messages, **kwargs)


def turn(text: str, *, language: str = "zh", index: int = 1) -> CallerTurn:
    return CallerTurn(text=text, language=language, asr_confidence=0.9, turn_index=index)


async def collect(sentences: AsyncIterator[str] | None) -> list[str]:
    assert sentences is not None, "the reply is not streamed"
    return [sentence async for sentence in sentences]
