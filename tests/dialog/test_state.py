"""Dialog state: JSON schema, masking in logs and the Redis store shared by workers."""

from __future__ import annotations

import json

import pytest
import redis.asyncio as redis_asyncio

from voicebot.dialog.state import SCHEMA_VERSION, DialogState, DialogStateStore, SlotValue, StateError, TurnSummary

REDIS_URL = "redis://127.0.0.1:6379/0"


def _state() -> DialogState:
    state = DialogState(call_id="call-1", caller="13800138000", flow_id="lost_card", step_id="confirm_last4")
    state.set_slot("card_last4", SlotValue("6288", 0.95, 2, "speech"))
    state.turns.append(TurnSummary(turn_index=2, intent="inform", confidence=0.5, kind="answer", handler="flow"))
    return state


def test_state_round_trip() -> None:
    """A state survives JSON and keeps its schema version."""
    state = _state()
    restored = DialogState.from_json(state.to_json())
    assert restored == state
    assert json.loads(state.to_json())["schema_version"] == SCHEMA_VERSION


def test_state_newer_schema_rejected() -> None:
    """A state written by a newer version raises StateError naming the version."""
    data = _state().to_dict()
    data["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(StateError, match="schema_version"):
        DialogState.from_dict(data)


def test_state_unknown_field_ignored() -> None:
    """A field this version does not know is ignored."""
    data = _state().to_dict()
    data["added_later"] = 1
    assert DialogState.from_dict(data).call_id == "call-1"


def test_log_summary_has_no_slot_values() -> None:
    """The log form names slots but holds neither their values nor the caller's number."""
    summary = _state().log_summary()
    assert "card_last4" in summary
    assert "6288" not in summary
    assert "13800138000" not in summary


async def test_store_continues_in_other_worker(key_prefix: str) -> None:
    """A state saved by one store is loaded by a second store with its own Redis client."""
    first = DialogStateStore(url=REDIS_URL, key_prefix=key_prefix, ttl_s=60)
    second_client = redis_asyncio.Redis.from_url(REDIS_URL)
    second = DialogStateStore(client=second_client, key_prefix=key_prefix, ttl_s=60)
    try:
        await first.save(_state())
        loaded = await second.load("call-1")
        assert loaded is not None
        assert loaded.step_id == "confirm_last4"
        assert loaded.slots["card_last4"].value == "6288"
        ttl = await second_client.ttl(second.key("call-1"))
        assert 0 < ttl <= 60
        assert await second.load("no-such-call") is None
    finally:
        await first.close()
        await second_client.aclose()
