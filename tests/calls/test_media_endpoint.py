"""The media-stream endpoint on the wire: protocol errors, capacity, silence, noise and DTMF."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from telephony import g711
from telephony import mediastream as ms
from tests.calls.rawphone import RawPhone
from voicebot.config import Settings
from voicebot.server import running_server
from voicebot.services import Services

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]


async def test_garbage_json_closes_with_error(media_url: str, services: Services):
    """A message that is not JSON gets an error event and a 1008 close naming the problem; the call is recorded."""
    async with RawPhone(media_url) as phone:
        await phone.start()
        await phone.send_raw("{this is not json")
        code, reason = await phone.wait_closed()
    assert code == 1008
    assert "not valid JSON" in reason
    errors = [m for m in phone.received if m.get("type") == "error"]
    assert errors and "not valid JSON" in errors[0]["message"]
    call = await services.store.get_call(phone.call_id)
    assert call is not None
    assert call.end_reason == "protocol_error"


async def test_media_before_start_rejected(media_url: str):
    """Media before `start` closes the socket with 1008 and says to send start first."""
    async with RawPhone(media_url) as phone:
        await phone.send_raw(ms.inbound_media_message("MZ1", b"\xff" * 160, sequence_number=1, chunk=1, timestamp_ms=0))
        code, reason = await phone.wait_closed()
    assert code == 1008
    assert "before 'start'" in reason


async def test_bad_base64_mid_call_rejected(media_url: str):
    """A media payload that is not base64 ends the call with a clear reason."""
    async with RawPhone(media_url) as phone:
        await phone.start()
        await phone.send_raw(json.dumps({"event": "media", "streamSid": phone.stream_sid, "media": {"payload": "%%%"}}))
        code, reason = await phone.wait_closed()
    assert code == 1008
    assert "base64" in reason


async def test_binary_frame_rejected(media_url: str):
    """A binary WebSocket frame is refused: media streams carry JSON text."""
    async with RawPhone(media_url) as phone:
        await phone.start()
        await phone.send_raw(b"\x00\x01\x02")
        code, reason = await phone.wait_closed()
    assert code == 1008
    assert "binary" in reason


async def test_calls_over_capacity_refused(services: Services):
    """With max_calls=1 a second call is refused with close code 1013 while the first goes on."""
    settings = Settings(port=0, max_calls=1)
    limited = Services(**{**services.__dict__, "settings": settings})
    async with running_server(settings, limited) as (url, _):
        media_url = url.replace("http://", "ws://") + "/media"
        async with RawPhone(media_url) as first:
            await first.start()
            async with RawPhone(media_url) as second:
                code, reason = await second.wait_closed()
            assert code == 1013
            assert "max_calls" in reason
            await first.stop()


@pytest.mark.parametrize("kind", ["near_silence", "white_noise"])
async def test_silence_and_noise_give_no_turn(media_url: str, services: Services, kind: str):
    """Near-silence and white noise on the line produce no caller turn and no reply."""
    rng = np.random.default_rng(7)
    seconds = 4
    if kind == "near_silence":
        samples = rng.normal(0, 30, 8000 * seconds)  # about -60 dBFS
    else:
        samples = rng.normal(0, 3000, 8000 * seconds)  # about -20 dBFS
    pcm = np.clip(samples, -32768, 32767).astype("<i2").tobytes()
    async with RawPhone(media_url) as phone:
        await phone.start()
        await phone.send_mulaw(g711.pcm_to_mulaw(pcm), frame_interval_s=0.005)
        await phone.send_mulaw(b"\xff" * 8000 * 2, frame_interval_s=0.005)  # 2 s of line silence
        await asyncio.sleep(1.0)
        await phone.stop()
        await phone.wait_closed()
    assert not [m for m in phone.received if m.get("type") == "user"]
    turns = await services.store.list_turns(phone.call_id)
    assert [t.role for t in turns] == ["bot"]  # the greeting only


async def test_dtmf_accepted_without_logging_digits(media_url: str, services: Services, caplog: pytest.LogCaptureFixture):
    """DTMF digits are accepted on the stream and never written to the log."""
    async with RawPhone(media_url) as phone:
        await phone.start()
        for digit in "6288":
            await phone.send_raw(ms.dtmf_message(phone.stream_sid, digit, sequence_number=99))
        await phone.stop()
        await phone.wait_closed()
    assert "6288" not in caplog.text
    assert not [m for m in phone.received if m.get("type") == "error"]
