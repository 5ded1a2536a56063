"""Dialog state of one call and its store in Redis.

`DialogState` is what the dialog engine knows about a call between turns: language,
intent, slots, the active flow and step, a pending confirmation, whether the caller's
identity was verified, escalation cue flags, a summary of every turn, the centre and the
prompt version. `DialogStateStore` writes it to Redis after every turn, so a call that
another worker process picks up continues where it was.

Stored layout (schema_version 1), one JSON string at ``voicebot:dialog:{call_id}``:

```
{"schema_version": 1, "call_id": "...", "language": "zh", "centre": "default",
 "prompt_version": "...", "caller": "13800138000", "customer_id": "C001",
 "intent": "lost_card", "flow_id": "lost_card", "step_id": "confirm_last4",
 "attempts": 0, "pending_confirmation": "card_last4", "last_slot": "card_last4",
 "identity_verified": false, "cue_flags": [], "completed_flows": [], "ended": false,
 "handoff_reason": null,
 "slots": {"card_last4": {"value": "6288", "confidence": 0.95, "turn_index": 2, "source": "speech"}},
 "confirmations": {"card_last4": {"value": "6288", "turn_index": 3, "at": 1720000003.1,
                                  "source": "speech", "message": "confirm_card_last4"}},
 "turns": [{"turn_index": 1, "intent": "lost_card", "confidence": 0.9, "kind": "clarify",
            "flow_id": "lost_card", "step_id": "ask_last4", "dtmf": false,
            "actions": [], "handler": "flow"}],
 "created_at": 1720000000.0, "updated_at": 1720000003.2}
```

The key holds personal data: slot values (card digits, addresses, amounts) and the
caller's number. The engine needs them to act, so they are stored as they are, and the
key expires after `ttl_s` (default 24 hours), renewed on every write. Turn summaries
hold no caller text; the masked text is in the call record. `DialogState.log_summary`
is the only form of the state that may be logged.

A reader of a newer schema_version raises StateError; a field this version does not
know is ignored, and a missing optional field gets its default.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

import redis.asyncio as redis_asyncio
from redis.exceptions import RedisError

from voicebot.errors import UpstreamError, VoicebotError

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
DEFAULT_KEY_PREFIX = "voicebot:dialog:"

SlotSource = Literal["speech", "dtmf", "bank"]


class StateError(VoicebotError):
    """A stored dialog state that this version cannot read."""


@dataclass
class SlotValue:
    """One slot's value with where it came from.

    `source` is "speech" (extracted from the transcript), "dtmf" (keypad digits) or
    "bank" (returned by a banking action, such as the amount due).
    """

    value: str
    confidence: float  # 0..1
    turn_index: int
    source: SlotSource = "speech"


@dataclass
class TurnSummary:
    """Summary of one caller turn as the engine classified it, without the caller's text."""

    turn_index: int
    intent: str
    confidence: float
    kind: str  # the ReplyKind value of the bot's reply
    flow_id: str | None = None
    step_id: str | None = None
    dtmf: bool = False  # the turn carried keypad digits
    actions: list[str] = field(default_factory=list)
    handler: str = ""  # "flow", "rule" or "fallback": what produced the reply


@dataclass
class DialogState:
    """Everything the dialog engine keeps about one call between turns."""

    call_id: str
    language: str = "zh"
    centre: str = "default"
    prompt_version: str = ""
    caller: str = ""  # the caller's number; personal data
    customer_id: str | None = None
    intent: str | None = None  # the intent of the latest caller turn
    flow_id: str | None = None  # the active flow, None between flows
    step_id: str | None = None
    attempts: int = 0  # failed attempts at the current step
    pending_confirmation: str | None = None  # the slot a confirm step read back and awaits yes or no for
    last_slot: str | None = None  # the slot filled last, which a correction replaces
    identity_verified: bool = False
    cue_flags: list[str] = field(default_factory=list)  # escalation cues seen, e.g. "fraud"
    completed_flows: list[str] = field(default_factory=list)
    ended: bool = False
    handoff_reason: str | None = None
    slots: dict[str, SlotValue] = field(default_factory=dict)
    # Explicit confirmations per slot: value, turn_index, at (epoch s), source, message key.
    # An action that changes customer data (change_billing_address) requires one for its value.
    confirmations: dict[str, dict[str, Any]] = field(default_factory=dict)
    turns: list[TurnSummary] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    schema_version: int = SCHEMA_VERSION

    def slot_text(self, name: str) -> str | None:
        """Return the value of slot `name`, or None when it is not filled."""
        slot = self.slots.get(name)
        return slot.value if slot is not None else None

    def set_slot(self, name: str, value: SlotValue) -> None:
        """Fill slot `name` and remember it as the slot a correction replaces."""
        self.slots[name] = value
        if value.source != "bank":
            self.last_slot = name

    def clear_flow(self) -> None:
        """Leave the active flow; slots stay for the rest of the call."""
        self.flow_id = None
        self.step_id = None
        self.attempts = 0
        self.pending_confirmation = None

    def add_cue(self, cue: str) -> None:
        """Record an escalation cue once."""
        if cue not in self.cue_flags:
            self.cue_flags.append(cue)

    def to_dict(self) -> dict[str, Any]:
        """Return the state as plain JSON-ready data in the layout of schema_version 1."""
        return asdict(self)

    def to_json(self) -> str:
        """Return the state as compact JSON."""
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DialogState:
        """Build a state from stored data; raises StateError for a newer or invalid schema."""
        version = data.get("schema_version")
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise StateError(
                f"dialog state has schema_version {version!r}; this version reads up to "
                f"{SCHEMA_VERSION}. Upgrade voicebot on this worker or let the key expire"
            )
        if not isinstance(data.get("call_id"), str):
            raise StateError("dialog state has no call_id string; the stored JSON is not a dialog state")
        known = {item.name for item in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        slot_fields = {item.name for item in fields(SlotValue)}
        turn_fields = {item.name for item in fields(TurnSummary)}
        values["slots"] = {
            name: SlotValue(**{key: value for key, value in slot.items() if key in slot_fields})
            for name, slot in (data.get("slots") or {}).items()
        }
        values["turns"] = [
            TurnSummary(**{key: value for key, value in turn.items() if key in turn_fields})
            for turn in (data.get("turns") or [])
        ]
        return cls(**values)

    @classmethod
    def from_json(cls, text: str | bytes) -> DialogState:
        """Parse stored JSON; raises StateError when it is not valid JSON."""
        try:
            data = json.loads(text)
        except ValueError as error:
            raise StateError(f"stored dialog state is not valid JSON: {error}") from error
        if not isinstance(data, dict):
            raise StateError("stored dialog state is not a JSON object")
        return cls.from_dict(data)

    def log_summary(self) -> str:
        """Describe the state for logs: flow, step, slot names and flags, never slot values."""
        slot_names = ",".join(sorted(self.slots)) or "-"
        return (
            f"flow={self.flow_id or '-'} step={self.step_id or '-'} intent={self.intent or '-'} "
            f"slots={slot_names} verified={self.identity_verified} cues={','.join(self.cue_flags) or '-'} "
            f"turns={len(self.turns)}"
        )


class DialogStateStore:
    """Loads and saves `DialogState` in Redis, one JSON string per call with a TTL."""

    def __init__(
        self,
        *,
        url: str = "redis://127.0.0.1:6379/0",
        client: redis_asyncio.Redis | None = None,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        ttl_s: int = 24 * 3600,
        socket_timeout_s: float = 2.0,
    ) -> None:
        """Create the store; the Redis connection opens on first use.

        Args:
            url: Redis URL, used when no `client` is given.
            client: an existing redis.asyncio client to share; the store then does not close it.
            key_prefix: prefix of the state keys; the key is prefix + call id.
            ttl_s: seconds a state lives after its last write. The key holds personal data.
            socket_timeout_s: Redis socket timeout in seconds.
        """
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be a positive number of seconds, got {ttl_s}")
        self.key_prefix = key_prefix
        self.ttl_s = ttl_s
        self._owns_client = client is None
        self._client = client or redis_asyncio.Redis.from_url(
            url, socket_timeout=socket_timeout_s, socket_connect_timeout=socket_timeout_s
        )

    def key(self, call_id: str) -> str:
        """Return the Redis key of a call's state."""
        return f"{self.key_prefix}{call_id}"

    async def load(self, call_id: str) -> DialogState | None:
        """Return the stored state of `call_id`, or None when there is none (new or expired call)."""
        try:
            raw = await self._client.get(self.key(call_id))
        except RedisError as error:
            raise UpstreamError(f"reading dialog state {self.key(call_id)} from Redis failed: {error}") from error
        if raw is None:
            return None
        return DialogState.from_json(raw)

    async def save(self, state: DialogState) -> None:
        """Write the state and renew its TTL."""
        state.updated_at = time.time()
        key = self.key(state.call_id)
        try:
            await self._client.set(key, state.to_json(), ex=self.ttl_s)
        except RedisError as error:
            raise UpstreamError(f"writing dialog state {key} to Redis failed: {error}") from error
        logger.debug("Saved dialog state: %s", state.log_summary(), extra={"call_id": state.call_id})

    async def delete(self, call_id: str) -> None:
        """Remove a call's state."""
        try:
            await self._client.delete(self.key(call_id))
        except RedisError as error:
            raise UpstreamError(f"deleting dialog state {self.key(call_id)} failed: {error}") from error

    async def close(self) -> None:
        """Close the Redis connection if the store created it."""
        if self._owns_client:
            await self._client.aclose()
