"""Fixtures of the dialog tests: real Redis on 127.0.0.1:6379 under a unique key prefix, removed afterwards."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as redis_asyncio

from voicebot.dialog.banking import RedisBankingSimulator
from voicebot.responder.faq import FaqResponder, KnowledgeBase, load_knowledge_base
from voicebot.responder.messages import Messages, load_messages

REPO_ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def key_prefix() -> AsyncIterator[str]:
    """Yield a unique key prefix and delete every key under it after the test."""
    prefix = f"voicebot:test:dialog:{uuid.uuid4().hex[:10]}:"
    yield prefix
    client = redis_asyncio.Redis.from_url(REDIS_URL)
    keys = [key async for key in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
async def bank(key_prefix: str) -> AsyncIterator[RedisBankingSimulator]:
    """Yield a seeded banking simulator."""
    simulator = RedisBankingSimulator(url=REDIS_URL, key_prefix=key_prefix + "bank:")
    await simulator.seed()
    yield simulator
    await simulator.close()


@pytest.fixture(scope="session")
def system_messages() -> Messages:
    return load_messages(REPO_ROOT / "prompts" / "messages.yaml")


@pytest.fixture(scope="session")
def knowledge_base() -> KnowledgeBase:
    return load_knowledge_base(REPO_ROOT / "dialogs" / "faq.yaml")


@pytest.fixture(scope="session")
def faq(knowledge_base: KnowledgeBase, system_messages: Messages) -> FaqResponder:
    return FaqResponder(knowledge_base, system_messages)
