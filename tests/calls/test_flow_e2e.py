"""Multi-turn flows through the real service: spoken caller clips, keypad digits, confirmation, a banking action."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from telephony import mediastream as ms
from tests.calls.rawphone import RawPhone
from tests.calls.test_handoff_e2e import PhoneLine, clip_mulaw
from voicebot.services import Services

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]

SEED_CALLER = "13800138000"  # customer C001 of the banking simulator, card ending 6288


async def next_reply(phone: RawPhone, after: int) -> dict[str, Any]:
    """Wait for the bot reply (and its reply_done) to a caller turn numbered above `after`."""
    reply = await phone.wait_for(lambda m: m.get("type") == "bot" and m.get("turn", 0) > after, timeout=60)
    await phone.wait_for(lambda m: m.get("type") == "reply_done" and m.get("turn") == reply["turn"], timeout=60)
    return reply


async def test_lost_card_flow_freezes_card(media_url: str, callers_dir: Path, services: Services):
    """flow_lost_card, the last four digits (spoken, then keyed), confirm_yes: the card is frozen, then fraud goes to a rep."""
    await services.banking.seed()
    async with RawPhone(media_url, params={"caller": SEED_CALLER}) as phone:
        await phone.start()
        line = PhoneLine(phone)
        try:
            greeting = await next_reply(phone, after=-1)
            line.say(clip_mulaw(callers_dir / "flow_lost_card.wav"))
            ask_digits = await next_reply(phone, after=greeting["turn"])
            assert ask_digits["topic"] == "lost_card"
            assert "后四位" in ask_digits["text"]

            # Whisper mishears the spoken digits on the phone path, so the caller keys them in.
            line.say(clip_mulaw(callers_dir / "slot_card_last4.wav"))
            reply = await next_reply(phone, after=ask_digits["turn"])
            if "6288" not in reply["text"] and "六二八八" not in reply["text"]:
                for digit in "6288#":
                    await phone.send_raw(ms.dtmf_message(phone.stream_sid, digit, sequence_number=1))
                reply = await next_reply(phone, after=reply["turn"])
            assert "六二八八" in reply["text"] or "6288" in reply["text"]

            line.say(clip_mulaw(callers_dir / "confirm_yes.wav"))
            after_confirm = await next_reply(phone, after=reply["turn"])
            if after_confirm["kind"] != "handoff":
                # "对，没错" can come out empty on 8 kHz audio; the caller says it again.
                line.say(clip_mulaw(callers_dir / "confirm_yes.wav"))
                after_confirm = await next_reply(phone, after=after_confirm["turn"])
        finally:
            await line.stop()
        await phone.stop()
        await phone.wait_closed()

    assert await services.banking.card_status("K1001") == "frozen"
    # The simulator's customer has a payment in Dubai while living in Shanghai: after the
    # freeze the flow hands the call to a fraud rep.
    assert after_confirm["kind"] == "handoff"
    turns = await services.store.list_turns(phone.call_id)
    assert any(t.role == "bot" and t.topic == "lost_card" for t in turns)
    assert "6288" not in "".join(t.text for t in turns if t.role == "caller")


async def test_address_change_flow_verifies_first(media_url: str, callers_dir: Path, services: Services):
    """flow_address_change asks for the card's last four digits before it collects the new address."""
    await services.banking.seed()
    async with RawPhone(media_url, params={"caller": SEED_CALLER}) as phone:
        await phone.start()
        line = PhoneLine(phone)
        try:
            greeting = await next_reply(phone, after=-1)
            line.say(clip_mulaw(callers_dir / "flow_address_change.wav"))
            ask_digits = await next_reply(phone, after=greeting["turn"])
            assert ask_digits["topic"] == "address_change"
            assert "后四位" in ask_digits["text"]
            for digit in "6288#":
                await phone.send_raw(ms.dtmf_message(phone.stream_sid, digit, sequence_number=1))
            reply = await next_reply(phone, after=ask_digits["turn"])
            assert "六二八八" in reply["text"] or "6288" in reply["text"]
            line.say(clip_mulaw(callers_dir / "confirm_yes.wav"))
            ask_address = await next_reply(phone, after=reply["turn"])
            if "地址" not in ask_address["text"]:
                line.say(clip_mulaw(callers_dir / "confirm_yes.wav"))
                ask_address = await next_reply(phone, after=ask_address["turn"])
            assert "地址" in ask_address["text"]
        finally:
            await line.stop()
        await phone.stop()
        await phone.wait_closed()
