"""`voicebot call --keys` against the real service: keypad digits fill the slot a dialog flow asks for."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import pytest

from telephony.softphone import add_call_arguments, run_call_command
from voicebot.services import Services

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]

SEED_CALLER = "13800138000"  # customer C001 of the banking simulator, card ending 6288
SPEED = 3.0  # caller audio and key gaps 3x faster than real time, as in the other call tests


async def test_lost_card_keys_read_back(
    media_url: str, callers_dir: Path, services: Services, capsys: pytest.CaptureFixture[str]
):
    """flow_lost_card, then --keys 6288#: the bot reads the four digits back for confirmation."""
    await services.banking.seed()
    parser = argparse.ArgumentParser()
    add_call_arguments(parser)
    args = parser.parse_args(
        [
            media_url,
            "--wav", str(callers_dir / "flow_lost_card.wav"),
            "--keys", "6288#",
            "--param", f"caller={SEED_CALLER}",
            "--speed", str(SPEED),
            "--turn-timeout", "60",
            "--json",
        ]
    )  # fmt: skip

    # run_call_command starts its own event loop, so it runs in a thread beside the service.
    code = await asyncio.to_thread(run_call_command, args)

    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = [json.loads(line) for line in captured.out.splitlines() if line.strip()]
    events = [line["event"] for line in lines]
    assert events[-1] == "summary"
    assert lines[-1]["turns"] == 2
    assert {"event": "keys", "digits": "6288#"} in lines
    keys_at = events.index("keys")
    bots_before_keys = [line for line in lines[:keys_at] if line["event"] == "bot"]
    bots_after_keys = [line for line in lines[keys_at:] if line["event"] == "bot"]
    transcripts = [line["text"] for line in lines if line["event"] == "user"]
    # The greeting and the reply to the spoken request. NOTE: when a pause inside the clip ends
    # the turn and the caller goes on, the merged turn gets a new reply, but the sideband has
    # already sent the dropped reply's bot event, so one extra bot event may come first.
    assert 2 <= len(bots_before_keys) <= 3, lines
    assert bots_before_keys[-1]["topic"] == "lost_card", f"flow_lost_card transcribed as {transcripts!r}"
    assert "后四位" in bots_before_keys[-1]["text"]
    assert len(bots_after_keys) == 1, lines
    read_back = bots_after_keys[0]["text"]
    assert "六二八八" in read_back or "6288" in read_back, read_back

    # The service records keypad turns by their length only.
    call_id = lines[-1]["call_id"]
    assert isinstance(call_id, str)
    turns = await services.store.list_turns(call_id)
    caller_texts = [t.text for t in turns if t.role == "caller"]
    assert len(caller_texts) == 2
    assert "6288" not in "".join(caller_texts)
