"""RTP session tests on real UDP sockets bound to 127.0.0.1."""

import asyncio
import os
from pathlib import Path

import numpy as np
import pytest

from telephony.rtp.packet import RtpPacket, parse_rtp
from telephony.rtp.pcap import load_wav_pcm
from telephony.rtp.session import RtpSession, RtpSessionClosedError
from voicebot.errors import OverloadedError

pytestmark = pytest.mark.timeout(30)

REPO = Path(__file__).resolve().parents[2]
SHARED_SPEECH = Path(os.environ.get("VOICEBOT_SHARED_SPEECH", REPO.parent / "shared" / "speech"))
FRAME_BYTES = 320


def caller_clip() -> Path:
    clips = sorted((SHARED_SPEECH / "callers").glob("*.wav"))
    if not clips:
        pytest.skip(f"no caller clips in {SHARED_SPEECH / 'callers'}; set VOICEBOT_SHARED_SPEECH to the speech folder")
    return min(clips, key=lambda path: path.stat().st_size)


def rms(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples**2))) if len(samples) else 0.0


class UdpSink(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.datagrams: list[tuple[bytes, tuple[str, int]]] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.datagrams.append((data, addr))


async def open_sink():
    loop = asyncio.get_running_loop()
    return await loop.create_datagram_endpoint(UdpSink, local_addr=("127.0.0.1", 0))


async def test_loopback_caller_clip():
    """A caller clip sent between two sessions arrives with its duration and energy."""
    pcm = load_wav_pcm(caller_clip())
    async with RtpSession(payload_type=0, send_silence_when_idle=False) as caller, RtpSession() as bot:
        caller.set_remote(*bot.local_address)
        bot.set_remote(*caller.local_address)
        await caller.send_audio(pcm)
        received = bytearray()
        frames_expected = len(pcm) // FRAME_BYTES + 15
        async for frame in bot.frames():
            received += frame
            if len(received) >= frames_expected * FRAME_BYTES:
                break
        stats = bot.jitter_buffer.stats

    sent_frames = -(-len(pcm) // FRAME_BYTES)
    assert stats.received == sent_frames
    assert stats.lost == 0
    voiced = [rms(received[i : i + FRAME_BYTES]) > 100 for i in range(0, len(received), FRAME_BYTES)]
    assert sum(voiced) >= 0.5 * sum(rms(pcm[i : i + FRAME_BYTES]) > 100 for i in range(0, len(pcm), FRAME_BYTES))
    assert rms(bytes(received)) == pytest.approx(rms(pcm), rel=0.2)


async def test_paced_sending_and_marker():
    """Queued audio goes out one 20 ms packet at a time, the first with the marker bit."""
    transport, sink = await open_sink()
    try:
        async with RtpSession(send_silence_when_idle=False) as session:
            session.set_remote(*transport.get_extra_info("sockname"))
            await session.send_audio(bytes(5 * FRAME_BYTES))
            while session.queued_ms:
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.05)
        packets = [parse_rtp(data) for data, _ in sink.datagrams]
        assert len(packets) == 5
        assert [packet.marker for packet in packets] == [True, False, False, False, False]
        sequence_numbers = [packet.sequence_number for packet in packets]
        assert [(b - a) & 0xFFFF for a, b in zip(sequence_numbers, sequence_numbers[1:])] == [1, 1, 1, 1]
        assert [(b.timestamp - a.timestamp) & 0xFFFFFFFF for a, b in zip(packets, packets[1:])] == [160] * 4
        assert session.send_timing.packets > 0
    finally:
        transport.close()


async def test_idle_sends_silence():
    """With send_silence_when_idle an idle session sends encoded silence."""
    transport, sink = await open_sink()
    try:
        async with RtpSession(send_silence_when_idle=True, payload_type=8) as session:
            session.set_remote(*transport.get_extra_info("sockname"))
            while len(sink.datagrams) < 3:
                await asyncio.sleep(0.02)
        packet = parse_rtp(sink.datagrams[0][0])
        assert packet.payload_type == 8
        assert packet.payload == b"\xd5" * 160
    finally:
        transport.close()


async def test_no_send_after_close():
    """After close() returns no further datagram arrives."""
    transport, sink = await open_sink()
    try:
        session = RtpSession(send_silence_when_idle=True)
        await session.start()
        session.set_remote(*transport.get_extra_info("sockname"))
        while not sink.datagrams:
            await asyncio.sleep(0.01)
        await session.close()
        assert not [task for task in asyncio.all_tasks() if task.get_name().startswith("rtp-send")]
        count = len(sink.datagrams)
        await asyncio.sleep(0.1)
        assert len(sink.datagrams) == count
        with pytest.raises(RtpSessionClosedError):
            await session.send_audio(bytes(FRAME_BYTES))
    finally:
        transport.close()


async def test_clear_drops_queued_audio():
    """clear() drops queued frames for barge-in and reports how many."""
    async with RtpSession(send_silence_when_idle=False) as session:
        session.hold(True)
        await session.send_audio(bytes(10 * FRAME_BYTES))
        assert session.queued_ms == 200
        assert session.clear() == 10
        assert session.queued_ms == 0


async def test_hold_pauses_sending():
    """A held session sends nothing and keeps its queued audio."""
    transport, sink = await open_sink()
    try:
        async with RtpSession(send_silence_when_idle=True) as session:
            session.set_remote(*transport.get_extra_info("sockname"))
            session.hold(True)
            await session.send_audio(bytes(3 * FRAME_BYTES))
            await asyncio.sleep(0.1)
            assert sink.datagrams == []
            assert session.queued_ms == 60
            session.hold(False)
            while len(sink.datagrams) < 3:
                await asyncio.sleep(0.02)
        assert parse_rtp(sink.datagrams[0][0]).marker is True
    finally:
        transport.close()


async def test_full_queue_policy():
    """send_audio_nowait raises OverloadedError when the frames do not fit, queueing none of them."""
    async with RtpSession(max_queued_frames=4) as session:
        session.hold(True)
        session.send_audio_nowait(bytes(3 * FRAME_BYTES))
        with pytest.raises(OverloadedError, match="room for 1 frames"):
            session.send_audio_nowait(bytes(2 * FRAME_BYTES))
        assert session.queued_ms == 60


async def test_send_audio_waits_for_room():
    """send_audio waits while the queue is full and finishes as frames are sent."""
    transport, _ = await open_sink()
    try:
        async with RtpSession(max_queued_frames=2, send_silence_when_idle=False) as session:
            session.set_remote(*transport.get_extra_info("sockname"))
            await asyncio.wait_for(session.send_audio(bytes(6 * FRAME_BYTES)), timeout=5)
            assert session.packetizer.packets_sent >= 4
    finally:
        transport.close()


async def test_dtmf_between_sessions():
    """A key press sent by one session arrives once in the other's DTMF queue."""
    async with RtpSession(send_silence_when_idle=True) as caller, RtpSession() as bot:
        caller.set_remote(*bot.local_address)
        bot.set_remote(*caller.local_address)
        await caller.send_dtmf("7")
        digit = await asyncio.wait_for(bot.dtmf_digits.get(), timeout=5)
        await asyncio.sleep(0.2)
        assert digit.digit == "7"
        assert bot.dtmf_digits.empty()


async def test_foreign_source_rejected_after_latching():
    """Once latched, packets from another address are counted and dropped."""
    intruder_transport, _ = await open_sink()
    try:
        async with RtpSession(send_silence_when_idle=True) as caller, RtpSession() as bot:
            caller.set_remote(*bot.local_address)
            bot.set_remote(*caller.local_address)
            while bot.jitter_buffer.stats.received == 0:
                await asyncio.sleep(0.01)
            packet = RtpPacket(payload_type=0, sequence_number=1, timestamp=1, ssrc=99, payload=b"\xff" * 160)
            intruder_transport.sendto(packet.to_bytes(), bot.local_address)
            while bot.counters.foreign_source == 0:
                await asyncio.sleep(0.01)
            assert bot.jitter_buffer.stats.ssrc_changes == 0
    finally:
        intruder_transport.close()


async def test_latching_follows_actual_source():
    """With symmetric RTP the session sends to where packets come from, not the SDP port."""
    async with RtpSession(send_silence_when_idle=True) as caller, RtpSession() as bot:
        caller.set_remote(*bot.local_address)
        bot.set_remote("127.0.0.1", 9)  # SDP announced a port the caller does not use
        while bot.jitter_buffer.stats.received == 0:
            await asyncio.sleep(0.01)
        assert bot.remote == caller.local_address
        while caller.jitter_buffer.stats.received == 0:
            await asyncio.sleep(0.01)


async def test_rtcp_and_garbage_counted():
    """Muxed RTCP and malformed datagrams are counted and do not reach the jitter buffer."""
    transport, _ = await open_sink()
    try:
        async with RtpSession(symmetric_rtp=False) as session:
            session.set_remote(*transport.get_extra_info("sockname"))
            transport.sendto(b"\x81\xc9\x00\x01" + bytes(4), session.local_address)
            transport.sendto(b"\x80\x00", session.local_address)
            while session.counters.rtcp + session.counters.invalid < 2:
                await asyncio.sleep(0.01)
            assert session.counters.rtcp == 1
            assert session.counters.invalid == 1
            assert session.jitter_buffer.stats.received == 0
    finally:
        transport.close()


async def test_port_range_binds_even_port():
    """A configured port range binds an even port inside it."""
    async with RtpSession(port_range=(40000, 40100)) as session:
        port = session.local_address[1]
        assert 40000 <= port <= 40100
        assert port % 2 == 0
