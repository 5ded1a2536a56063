"""LLM response cache against the real Redis on 127.0.0.1:6379."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from voicebot.llm.cache import ResponseCache, has_personal_data, normalise_question

pytestmark = pytest.mark.timeout(60)

REDIS_URL = "redis://127.0.0.1:6379/0"
ANSWER = "普卡年费每年一百元，金卡每年三百元。"


@pytest.fixture
async def cache() -> AsyncIterator[ResponseCache]:
    response_cache = ResponseCache(url=REDIS_URL, key_prefix=f"voicebot-test:{uuid.uuid4().hex}:", ttl_s=60.0)
    try:
        yield response_cache
    finally:
        await response_cache.clear()
        await response_cache.aclose()


async def test_exact_hit(cache: ResponseCache) -> None:
    """The same question, with other spaces and punctuation, is an exact hit."""
    assert await cache.put("年费多少钱？", ANSWER, language="zh", passage_ids=("annual_fee",))
    hit = await cache.get("年费 多少钱", language="zh")
    assert hit is not None
    assert hit.exact
    assert hit.answer == ANSWER
    assert hit.passage_ids == ("annual_fee",)


async def test_similar_hit(cache: ResponseCache) -> None:
    """A reworded question above the similarity threshold hits the stored answer."""
    await cache.put("年费多少钱", ANSWER, language="zh")
    hit = await cache.get("请问年费多少", language="zh")
    assert hit is not None
    assert not hit.exact
    assert hit.similarity >= cache.similarity_threshold
    assert hit.answer == ANSWER


async def test_different_question_misses(cache: ResponseCache) -> None:
    """A different question on the same topic does not hit."""
    await cache.put("年费多少钱", ANSWER, language="zh")
    assert await cache.get("怎么免年费", language="zh") is None
    assert await cache.get("取现手续费多少", language="zh") is None


async def test_language_kept_apart(cache: ResponseCache) -> None:
    """An answer stored for Mandarin is not returned to a Cantonese caller."""
    await cache.put("年费多少钱", ANSWER, language="zh")
    assert await cache.get("年费多少钱", language="yue") is None


async def test_personal_data_not_stored(cache: ResponseCache) -> None:
    """Questions or answers with a card or phone number are not cached."""
    assert not await cache.put("我的卡号6222021234567890123年费多少", ANSWER, language="zh")
    assert not await cache.put("年费多少钱", "我们会打电话到13812345678通知您。", language="zh")
    assert await cache.get("我的卡号6222021234567890123年费多少", language="zh") is None
    assert await cache.get("年费多少钱", language="zh") is None


async def test_entries_expire(cache: ResponseCache) -> None:
    """Entries are gone after the TTL."""
    short = ResponseCache(url=REDIS_URL, key_prefix=cache.key_prefix, ttl_s=0.2)
    try:
        await short.put("年费多少钱", ANSWER, language="zh")
        await asyncio.sleep(0.5)
        assert await short.get("年费多少钱", language="zh") is None
        assert await short.get("请问年费多少", language="zh") is None
    finally:
        await short.aclose()


async def test_redis_down_is_a_miss() -> None:
    """An unreachable Redis makes lookups miss and stores return False, without raising."""
    dead = ResponseCache(url="redis://127.0.0.1:1/0", key_prefix="voicebot-test:dead:")
    try:
        assert await dead.get("年费多少钱", language="zh") is None
        assert not await dead.put("年费多少钱", ANSWER, language="zh")
    finally:
        await dead.aclose()


def test_normalise_and_personal_data() -> None:
    """Normalisation drops spaces and punctuation, and mask_pii decides what is personal."""
    assert normalise_question(" 年费，多少钱？ ") == "年费多少钱"
    assert normalise_question("ＡＢＣ") == "abc"
    assert has_personal_data("我的手机号是13812345678")
    assert not has_personal_data("年费多少钱")
