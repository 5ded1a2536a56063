"""Storage of rep notes on calls: dispositions with notes, and corrections for dialog designers.

Keys (under the console key prefix):
- `call:{call_id}:disposition`: hash with disposition, notes, rep_id, handoff_id and
  saved_at (epoch seconds), kept for `ttl_s`.
- `reviews`: list of corrections as JSON, newest first, trimmed to `max_reviews`.

Notes and corrections are free text typed during a call, so they go through mask_pii first.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

import redis.asyncio as redis_asyncio

from voicebot.errors import ConfigError
from voicebot.privacy import mask_pii

DISPOSITIONS = (
    "resolved",
    "fraud_confirmed",
    "fraud_not_confirmed",
    "card_blocked",
    "complaint_logged",
    "callback_scheduled",
    "transferred",
    "caller_hung_up",
    "other",
)
MAX_NOTES_CHARS = 4000
MAX_CORRECTION_CHARS = 2000


class RecordError(ValueError):
    """A disposition or correction failed validation; the message names the field and the fix."""


@dataclass
class Disposition:
    """The outcome of a call as the rep recorded it."""

    call_id: str
    handoff_id: str
    rep_id: str
    disposition: str
    notes: str
    saved_at: float


@dataclass
class Correction:
    """What the bot should have said, for the review queue of dialog designers."""

    call_id: str
    handoff_id: str
    rep_id: str
    bot_text: str
    corrected_text: str
    created_at: float


class CallNotes:
    """Stores dispositions and corrections in Redis."""

    def __init__(
        self,
        *,
        client: redis_asyncio.Redis,
        key_prefix: str,
        ttl_s: int = 7 * 24 * 3600,
        max_reviews: int = 10000,
    ) -> None:
        """Create the store.

        Args:
            client: Redis client with decode_responses=True.
            key_prefix: Prefix of the keys.
            ttl_s: Seconds a disposition is kept, the same as call records by default.
            max_reviews: Maximum corrections kept in the review queue; older ones are dropped.
        """
        if ttl_s <= 0 or max_reviews < 1:
            raise ConfigError(f"Invalid call notes ttl_s {ttl_s} or max_reviews {max_reviews}: use positive numbers.")
        self._client = client
        self._key_prefix = key_prefix
        self._ttl_s = ttl_s
        self._max_reviews = max_reviews

    def disposition_key(self, call_id: str) -> str:
        """Return the key of a call's disposition hash."""
        return f"{self._key_prefix}call:{call_id}:disposition"

    @property
    def reviews_key(self) -> str:
        """The key of the review list."""
        return f"{self._key_prefix}reviews"

    async def save_disposition(
        self, *, call_id: str, handoff_id: str, rep_id: str, disposition: str, notes: str
    ) -> Disposition:
        """Validate, mask and store the disposition and notes of a call.

        Raises:
            RecordError: If the disposition is unknown or the notes are too long.
        """
        if disposition not in DISPOSITIONS:
            raise RecordError(f"Invalid disposition {disposition!r}: use one of {', '.join(DISPOSITIONS)}.")
        if len(notes) > MAX_NOTES_CHARS:
            raise RecordError(f"Notes of {len(notes)} characters are too long: keep them under {MAX_NOTES_CHARS}.")
        record = Disposition(
            call_id=call_id,
            handoff_id=handoff_id,
            rep_id=rep_id,
            disposition=disposition,
            notes=mask_pii(notes),
            saved_at=time.time(),
        )
        key = self.disposition_key(call_id)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={name: str(value) for name, value in asdict(record).items()})
            pipe.expire(key, self._ttl_s)
            await pipe.execute()
        return record

    async def get_disposition(self, call_id: str) -> Disposition | None:
        """Return the stored disposition of a call, or None."""
        values = await self._client.hgetall(self.disposition_key(call_id))
        if not values:
            return None
        return Disposition(
            call_id=values["call_id"],
            handoff_id=values.get("handoff_id", ""),
            rep_id=values.get("rep_id", ""),
            disposition=values.get("disposition", ""),
            notes=values.get("notes", ""),
            saved_at=float(values.get("saved_at", "0")),
        )

    async def add_correction(
        self, *, call_id: str, handoff_id: str, rep_id: str, bot_text: str, corrected_text: str
    ) -> Correction:
        """Mask a correction and push it onto the review queue.

        Raises:
            RecordError: If the corrected text is empty or too long.
        """
        if not corrected_text.strip():
            raise RecordError("Missing corrected_text: write what the bot should have said.")
        for name, text in (("bot_text", bot_text), ("corrected_text", corrected_text)):
            if len(text) > MAX_CORRECTION_CHARS:
                raise RecordError(
                    f"{name} of {len(text)} characters is too long: keep it under {MAX_CORRECTION_CHARS}."
                )
        correction = Correction(
            call_id=call_id,
            handoff_id=handoff_id,
            rep_id=rep_id,
            bot_text=mask_pii(bot_text),
            corrected_text=mask_pii(corrected_text),
            created_at=time.time(),
        )
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.lpush(self.reviews_key, json.dumps(asdict(correction), ensure_ascii=False))
            pipe.ltrim(self.reviews_key, 0, self._max_reviews - 1)
            await pipe.execute()
        return correction

    async def list_reviews(self, *, limit: int = 100) -> list[dict[str, Any]]:
        """Return the newest corrections, newest first."""
        items = await self._client.lrange(self.reviews_key, 0, max(0, limit - 1))
        return [json.loads(item) for item in items]
