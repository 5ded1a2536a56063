"""Audio bridge through real Redis pub/sub between two queue clients."""

from __future__ import annotations

import asyncio
import struct

import pytest

from voicebot.handoff.bridge import (
    KIND_AUDIO,
    CallBridgeEndpoint,
    RepBridgeEndpoint,
    encode_message,
    frame_bytes,
)

pytestmark = pytest.mark.timeout(30)

RATE_HZ = 8000
FRAME = frame_bytes(RATE_HZ)


def numbered_frame(number: int) -> bytes:
    """A 20 ms frame whose samples all equal `number`, so order can be checked."""
    return struct.pack(f"<{FRAME // 2}h", *([number] * (FRAME // 2)))


def frame_number(frame: bytes) -> int:
    return struct.unpack_from("<h", frame)[0]


async def collect(iterator, count: int) -> list[bytes]:  # type: ignore[no-untyped-def]
    """Read `count` frames from an endpoint iterator."""
    frames = []
    async for frame in iterator:
        frames.append(frame)
        if len(frames) == count:
            break
    return frames


async def test_bridge_round_trip(make_queue) -> None:  # type: ignore[no-untyped-def]
    """Whisper, caller audio and rep audio cross between two processes in order."""
    async with make_queue() as call_process, make_queue() as console_process:
        call = call_process.call_endpoint("h1", sample_rate_hz=RATE_HZ)
        rep = console_process.rep_endpoint("h1", sample_rate_hz=RATE_HZ)
        assert isinstance(call, CallBridgeEndpoint)
        assert isinstance(rep, RepBridgeEndpoint)
        async with call, rep:
            assert await call.wait_rep_ready(timeout_s=5)
            whisper = b"".join(numbered_frame(100 + i) for i in range(3))
            assert await call.send_whisper(whisper[:-10]) == 3
            caller_audio = b"".join(numbered_frame(i) for i in range(5))
            # Split mid-frame: the endpoint keeps the partial frame for the next call.
            assert await call.send_caller_audio(caller_audio[:500]) == 1
            assert await call.send_caller_audio(caller_audio[500:]) == 4
            received = await asyncio.wait_for(collect(rep.caller_audio(), 8), timeout=10)
            assert [frame_number(frame) for frame in received] == [100, 101, 102, 0, 1, 2, 3, 4]
            assert received[2][-10:] == b"\x00" * 10

            assert await rep.send_rep_audio(numbered_frame(7) + numbered_frame(8)) == 2
            from_rep = await asyncio.wait_for(collect(call.rep_audio(), 2), timeout=10)
            assert [frame_number(frame) for frame in from_rep] == [7, 8]


async def test_full_queue_drops_oldest(make_queue) -> None:  # type: ignore[no-untyped-def]
    """With nobody reading, only the newest frames are kept."""
    async with make_queue() as queue:
        async with queue.call_endpoint("h2", sample_rate_hz=RATE_HZ) as call, queue.rep_endpoint(
            "h2", sample_rate_hz=RATE_HZ, max_queued_frames=5
        ) as rep:
            for number in range(20):
                await call.send_caller_audio(numbered_frame(number))
            while rep.frames_received < 20:
                await asyncio.sleep(0.02)
            assert rep.frames_dropped == 15
            kept = await asyncio.wait_for(collect(rep.caller_audio(), 5), timeout=10)
            assert [frame_number(frame) for frame in kept] == [15, 16, 17, 18, 19]


async def test_rep_close_ends_call_audio(make_queue) -> None:  # type: ignore[no-untyped-def]
    """When the rep side closes, the call side's iterator finishes."""
    async with make_queue() as queue:
        async with queue.call_endpoint("h3", sample_rate_hz=RATE_HZ) as call:
            rep = queue.rep_endpoint("h3", sample_rate_hz=RATE_HZ)
            await rep.open()
            await rep.send_rep_audio(numbered_frame(1))
            await rep.close()
            frames = await asyncio.wait_for(collect(call.rep_audio(), 99), timeout=10)
            assert [frame_number(frame) for frame in frames] == [1]
            assert call.peer_ended


async def test_wrong_rate_dropped(make_queue) -> None:  # type: ignore[no-untyped-def]
    """Frames at another sample rate are dropped, not played at the wrong speed."""
    async with make_queue() as queue:
        async with queue.rep_endpoint("h4", sample_rate_hz=RATE_HZ) as rep, queue.call_endpoint(
            "h4", sample_rate_hz=RATE_HZ
        ) as call:
            wide = frame_bytes(16000)
            await queue.binary_client.publish(call.send_channel, encode_message(KIND_AUDIO, 16000, b"\x01" * wide))
            await call.send_caller_audio(numbered_frame(3))
            frames = await asyncio.wait_for(collect(rep.caller_audio(), 1), timeout=10)
            assert [frame_number(frame) for frame in frames] == [3]
            assert rep.frames_received == 1


async def test_caller_audio_held_during_whisper(make_queue) -> None:  # type: ignore[no-untyped-def]
    """Caller audio sent while the whisper plays does not reach the rep."""
    async with make_queue() as queue:
        async with queue.rep_endpoint("h5", sample_rate_hz=RATE_HZ) as rep, queue.call_endpoint(
            "h5", sample_rate_hz=RATE_HZ
        ) as call:
            whisper_task = asyncio.create_task(call.send_whisper(numbered_frame(50) * 10))
            while call.frames_sent < 2:
                await asyncio.sleep(0.005)
            assert await call.send_caller_audio(numbered_frame(1)) == 0
            await whisper_task
            assert call.caller_frames_held == 1
            assert await call.send_caller_audio(numbered_frame(2)) == 1
            frames = await asyncio.wait_for(collect(rep.caller_audio(), 11), timeout=10)
            assert [frame_number(frame) for frame in frames] == [50] * 10 + [2]


async def test_handshake_when_rep_opens_first(make_queue) -> None:  # type: ignore[no-untyped-def]
    """The call side gets READY even when the rep side subscribed before it."""
    async with make_queue() as queue:
        async with queue.rep_endpoint("h6", sample_rate_hz=RATE_HZ), queue.call_endpoint(
            "h6", sample_rate_hz=RATE_HZ
        ) as call:
            assert await call.wait_rep_ready(timeout_s=5)


async def test_handshake_times_out_without_rep(make_queue) -> None:  # type: ignore[no-untyped-def]
    """Without a rep endpoint wait_rep_ready returns False."""
    async with make_queue() as queue:
        async with queue.call_endpoint("h7", sample_rate_hz=RATE_HZ) as call:
            assert not await call.wait_rep_ready(timeout_s=0.3)
