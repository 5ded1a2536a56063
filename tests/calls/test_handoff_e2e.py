"""A fraud caller is handed to a rep live: queue, screen-pop, whisper, and audio both ways."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr

from telephony import g711
from tests.calls.rawphone import RawPhone
from voicebot.services import Services

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]


def clip_mulaw(path: Path) -> bytes:
    samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
    narrowband = soxr.resample(samples.mean(axis=1), rate, 8000)
    return g711.pcm_to_mulaw((np.clip(narrowband, -1, 1) * 32767).astype("<i2").tobytes())


def rms(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0


class PhoneLine:
    """Keeps 20 ms frames flowing like a real line: queued caller audio, else mu-law silence."""

    def __init__(self, phone: RawPhone, *, speed: float = 3.0) -> None:
        self.phone = phone
        self.pending = bytearray()
        self.interval_s = 0.02 / speed
        self.task = asyncio.create_task(self._run(), name="phone-line")

    def say(self, mulaw: bytes) -> None:
        self.pending.extend(mulaw)

    async def _run(self) -> None:
        while True:
            frame = bytes(self.pending[:160]) or b"\xff" * 160
            del self.pending[:160]
            await self.phone.send_mulaw(frame.ljust(160, b"\xff"))
            await asyncio.sleep(self.interval_s)

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.wait({self.task}, timeout=1)


async def test_fraud_call_reaches_rep_with_audio_both_ways(media_url: str, callers_dir: Path, services: Services):
    """fraud_unauthorized.wav → handoff → a fraud rep accepts → whisper, caller audio and rep audio all flow."""
    queue = services.handoff_queue
    rep_id = "rep-" + secrets.token_hex(4)
    await queue.set_presence(rep_id, "available", skills=["fraud"], name="测试坐席")
    try:
        async with RawPhone(media_url) as phone:
            await phone.start()
            line = PhoneLine(phone)
            try:
                line.say(clip_mulaw(callers_dir / "fraud_unauthorized.wav"))
                handoff = await phone.wait_for(lambda m: m.get("type") == "handoff", timeout=60)
                assert handoff["reason"] == "fraud"
                queued = await phone.wait_for(lambda m: m.get("type") == "handoff_queued", timeout=60)
                handoff_id = queued["handoff_id"]

                info = await queue.get(handoff_id)
                assert info.skill == "fraud"
                assert "fraud" in [reason.code for reason in info.reasons]
                assert info.screen_pop.transcript
                assert any(role == "caller" for role, _ in info.screen_pop.transcript)

                rep = queue.rep_endpoint(handoff_id)
                await rep.open()
                # The queue offers the handoff to the available rep on its own schedule, and a
                # rep can only accept an offer. So the test waits for the offer, as the console does.
                for _ in range(300):
                    if (await queue.get(handoff_id)).state == "offered":
                        break
                    await asyncio.sleep(0.1)
                await queue.accept(handoff_id, rep_id)
                await phone.wait_for(lambda m: m.get("type") == "rep_connected", timeout=30)

                # Rep to caller: a tone from the rep arrives as media on the caller's stream.
                media_before = len([m for m in phone.received if m.get("event") == "media"])
                t = np.arange(8000) / 8000
                tone = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2").tobytes()
                for offset in range(0, len(tone), 320):
                    await rep.send_rep_audio(tone[offset : offset + 320])
                    await asyncio.sleep(0.02)
                await asyncio.sleep(0.5)
                rep_media = [m for m in phone.received if m.get("event") == "media"][media_before:]
                heard_by_caller = b"".join(g711.mulaw_to_pcm(ms_payload(m)) for m in rep_media)
                assert rms(heard_by_caller) > 1000

                # Caller to rep: the caller speaks and the rep receives non-silent audio.
                received = bytearray()

                async def collect() -> None:
                    async for pcm in rep.caller_audio():
                        received.extend(pcm)

                collector = asyncio.create_task(collect(), name="rep-collector")
                line.say(clip_mulaw(callers_dir / "faq_annual_fee.wav"))
                await asyncio.sleep(2.5)
                collector.cancel()
                await asyncio.wait({collector}, timeout=1)
                assert rms(bytes(received)) > 300
                await rep.close()
            finally:
                await line.stop()
            await phone.stop()
            await phone.wait_closed()
    finally:
        await queue.remove_rep(rep_id)


def ms_payload(message: dict) -> bytes:
    import base64

    return base64.b64decode(message["media"]["payload"])
