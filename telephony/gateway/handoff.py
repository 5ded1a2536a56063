"""Context of a SIP transfer: stored in Redis under the handoff id and served over HTTP.

The id travels in the `X-Voicebot-Handoff-Id` header of the REFER or consult INVITE, so the
rep's desktop can fetch `GET /handoffs/{id}` and show why the caller came. Slots and the
transcript are masked with `voicebot.privacy.mask_pii` before they are stored.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

import redis.asyncio as redis_asyncio
from aiohttp import web
from redis.exceptions import RedisError

from voicebot.errors import UpstreamError
from voicebot.handoff.models import REASON_LABELS
from voicebot.privacy import mask_pii

if TYPE_CHECKING:
    from telephony.gateway.gateway import SipGateway
    from voicebot.pipeline.dialog import HandoffRequestInfo

logger = logging.getLogger(__name__)

HANDOFF_ID_HEADER = "X-Voicebot-Handoff-Id"
REASON_HEADER = "X-Voicebot-Reason"
KEY_PREFIX = "voicebot:sip:handoff:"
# Reason codes are short identifiers; anything else is cut so a header stays one short token.
MAX_REASON_CHARS = 64


def new_handoff_id() -> str:
    return uuid.uuid4().hex


def header_reason(reason: str) -> str:
    """Return `reason` reduced to a header-safe token (letters, digits, _ - .)."""
    token = "".join(c if c.isascii() and (c.isalnum() or c in "_-.") else "_" for c in reason)
    return token[:MAX_REASON_CHARS] or "unknown"


def build_context(handoff_id: str, info: HandoffRequestInfo, *, sip_call_id: str, mode: str) -> dict[str, Any]:
    """Return the JSON context of a transfer with slots and transcript masked."""
    return {
        "handoff_id": handoff_id,
        "call_id": info.call_id,
        "sip_call_id": sip_call_id,
        "mode": mode,
        "reason": info.reason,
        "reason_label": REASON_LABELS.get(info.reason, info.reason),
        "language": info.language,
        "centre": info.centre,
        "slots": {name: mask_pii(str(value)) for name, value in info.slots.items()},
        "transcript": [{"role": role, "text": mask_pii(text)} for role, text in info.history],
        "created_at": time.time(),
    }


class HandoffContextStore:
    """Reads and writes handoff contexts in Redis with a TTL."""

    def __init__(self, *, url: str, ttl_s: int, socket_timeout_s: float = 2.0) -> None:
        self._url = url
        self._ttl_s = ttl_s
        self._client = redis_asyncio.from_url(
            url, decode_responses=True, socket_connect_timeout=socket_timeout_s, socket_timeout=socket_timeout_s
        )

    @staticmethod
    def key(handoff_id: str) -> str:
        return f"{KEY_PREFIX}{handoff_id}"

    async def save(self, context: dict[str, Any]) -> None:
        """Store `context` under its handoff id. Raises UpstreamError when Redis fails."""
        try:
            await self._client.set(self.key(context["handoff_id"]), json.dumps(context, ensure_ascii=False),
                                   ex=self._ttl_s)
        except (RedisError, OSError) as e:
            raise UpstreamError(f"storing handoff context in Redis at {self._url} failed: {e}; check Redis") from e

    async def get(self, handoff_id: str) -> dict[str, Any] | None:
        """Return the stored context, or None when the id is unknown or expired."""
        try:
            value = await self._client.get(self.key(handoff_id))
        except (RedisError, OSError) as e:
            raise UpstreamError(f"reading handoff context from Redis at {self._url} failed: {e}; check Redis") from e
        return None if value is None else json.loads(value)

    async def close(self) -> None:
        await self._client.aclose()


GATEWAY_KEY = web.AppKey("sip_gateway", object)


async def _get_handoff(request: web.Request) -> web.Response:
    gateway: SipGateway = request.app[GATEWAY_KEY]  # type: ignore[assignment]
    handoff_id = request.match_info["handoff_id"]
    if not (len(handoff_id) == 32 and all(c in "0123456789abcdef" for c in handoff_id)):
        return web.json_response({"error": f"handoff id {handoff_id[:40]!r} is not a 32-digit hex id"}, status=400)
    try:
        context = await gateway.handoffs.get(handoff_id)
    except UpstreamError as e:
        logger.error("handoff context lookup failed: %s", e)
        return web.json_response({"error": "the handoff store is unavailable; retry later"}, status=503)
    if context is None:
        return web.json_response(
            {"error": f"handoff {handoff_id} not found (contexts expire after the TTL)"}, status=404
        )
    return web.json_response(context, dumps=lambda value: json.dumps(value, ensure_ascii=False))


def add_sip_routes(app: web.Application, gateway: SipGateway) -> None:
    """Add `GET /handoffs/{handoff_id}`, which returns the JSON context of a transfer."""
    app[GATEWAY_KEY] = gateway
    app.router.add_get("/handoffs/{handoff_id}", _get_handoff)
