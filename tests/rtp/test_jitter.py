"""Jitter buffer tests: reordering, loss, duplicates, wrap-around, SSRC change, codecs and concealment."""

import dataclasses

import numpy as np
import pytest

from telephony.g711 import alaw_to_pcm, mulaw_to_pcm, pcm_to_alaw, pcm_to_mulaw
from telephony.rtp.dtmf import telephone_event_packets
from telephony.rtp.jitter import JitterBuffer
from telephony.rtp.packet import RtpPacket
from voicebot.errors import ConfigError

FRAME = 160  # samples in 20 ms at 8 kHz
FRAME_BYTES = 2 * FRAME


def tone_pcm(frames, *, frequency_hz=200.0, amplitude=8000):
    t = np.arange(frames * FRAME) / 8000
    return np.round(amplitude * np.sin(2 * np.pi * frequency_hz * t)).astype("<i2").tobytes()


def stream(frames, *, first_sequence=1000, first_timestamp=0, ssrc=42, payload_type=0, pcm=None):
    """Build consecutive 20 ms packets of a 200 Hz tone."""
    pcm = tone_pcm(frames) if pcm is None else pcm
    encode = pcm_to_mulaw if payload_type == 0 else pcm_to_alaw
    return [
        RtpPacket(
            payload_type=payload_type,
            sequence_number=(first_sequence + i) & 0xFFFF,
            timestamp=(first_timestamp + i * FRAME) & 0xFFFFFFFF,
            ssrc=ssrc,
            payload=encode(pcm[i * FRAME_BYTES : (i + 1) * FRAME_BYTES]),
            marker=i == 0,
        )
        for i in range(frames)
    ]


def rms(pcm):
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples**2))) if len(samples) else 0.0


def feed_all(buffer, packets, arrival_s=0.0):
    for packet in packets:
        buffer.push(packet, arrival_s)


def play(buffer, count, start_s=1.0):
    return [buffer.pop(start_s + i * 0.02) for i in range(count)]


def test_in_order_stream_plays_exactly():
    """An in-order stream plays back as the decoded payloads, frame by frame."""
    buffer = JitterBuffer()
    packets = stream(10)
    feed_all(buffer, packets)
    frames = play(buffer, 10)
    assert frames == [mulaw_to_pcm(packet.payload) for packet in packets]
    assert buffer.stats.received == 10
    assert buffer.stats.lost == 0


def test_every_pop_is_one_frame():
    """pop returns exactly 20 ms of PCM whether buffered, concealed or empty."""
    buffer = JitterBuffer()
    assert len(buffer.pop(0.0)) == FRAME_BYTES
    feed_all(buffer, stream(3))
    for frame in play(buffer, 8):
        assert len(frame) == FRAME_BYTES


def test_reordered_packets_play_in_order():
    """Packets that arrive out of order play in sequence order and are counted as reordered."""
    buffer = JitterBuffer()
    packets = stream(6)
    feed_all(buffer, [packets[i] for i in (0, 2, 1, 4, 3, 5)])
    assert play(buffer, 6) == [mulaw_to_pcm(packet.payload) for packet in packets]
    assert buffer.stats.reordered == 2


def test_first_packets_reordered_before_playout():
    """A packet older than the first one received still plays if it arrives before playout starts."""
    buffer = JitterBuffer()
    packets = stream(4)
    feed_all(buffer, [packets[1], packets[0], packets[2], packets[3]])
    assert play(buffer, 4)[0] == mulaw_to_pcm(packets[0].payload)
    assert buffer.stats.late == 0


def test_duplicates_dropped():
    """A duplicated packet is counted and played once."""
    buffer = JitterBuffer()
    packets = stream(4)
    feed_all(buffer, [packets[0], packets[1], packets[1], packets[2], packets[0], packets[3]])
    assert play(buffer, 4) == [mulaw_to_pcm(packet.payload) for packet in packets]
    assert buffer.stats.duplicates == 2
    assert buffer.stats.received == 4


def test_duplicate_after_playout_not_late():
    """A copy of a packet already played counts as a duplicate, not as late."""
    buffer = JitterBuffer()
    packets = stream(4)
    feed_all(buffer, packets[:2])
    play(buffer, 1)
    buffer.push(packets[0], 1.05)
    assert buffer.stats.duplicates == 1
    assert buffer.stats.late == 0


def test_sequence_wraps_at_65535():
    """Playout continues in order across the 65535 to 0 wrap, with reordering around it."""
    buffer = JitterBuffer()
    packets = stream(8, first_sequence=65532, first_timestamp=2**32 - 3 * FRAME)
    order = [0, 1, 2, 4, 3, 5, 7, 6]
    feed_all(buffer, [packets[i] for i in order])
    assert play(buffer, 8) == [mulaw_to_pcm(packet.payload) for packet in packets]
    assert buffer.stats.lost == 0
    assert buffer.stats.sequence_resets == 0


def test_lost_packet_concealed():
    """A missing packet is counted lost and replaced by one frame of concealment."""
    buffer = JitterBuffer()
    packets = stream(6)
    feed_all(buffer, packets[:2] + packets[3:])
    frames = play(buffer, 6)
    assert frames[3:] == [mulaw_to_pcm(packet.payload) for packet in packets[3:]]
    assert buffer.stats.lost == 1
    assert buffer.stats.concealed_frames == 1
    assert rms(frames[2]) > 0.5 * rms(frames[1])


def test_late_packet_dropped():
    """A packet arriving after its slot was concealed is counted late and not played."""
    buffer = JitterBuffer()
    packets = stream(6)
    feed_all(buffer, packets[:2] + packets[3:])
    play(buffer, 4)
    buffer.push(packets[2], 1.1)
    assert buffer.stats.late == 1
    remaining = play(buffer, 2, start_s=1.2)
    assert remaining == [mulaw_to_pcm(packet.payload) for packet in packets[4:]]


def test_late_packet_raises_target_delay():
    """A late packet adds a frame to the target delay."""
    buffer = JitterBuffer(min_delay_ms=20, max_delay_ms=200)
    packets = stream(6)
    feed_all(buffer, packets[:2] + packets[3:])
    play(buffer, 4)
    before = buffer.target_delay_ms()
    buffer.push(packets[2], 1.1)
    assert buffer.target_delay_ms() >= before + 19


def test_concealment_decays_to_silence():
    """After the stream stops, concealment fades over 60 ms and then plays silence."""
    buffer = JitterBuffer(concealment_ms=60)
    packets = stream(5)
    feed_all(buffer, packets)
    frames = play(buffer, 10)
    last_real = rms(frames[4])
    concealed = [rms(frame) for frame in frames[5:8]]
    assert concealed[0] > 0.3 * last_real
    assert concealed[0] > concealed[1] > concealed[2] > 0
    assert all(rms(frame) == 0 for frame in frames[8:])
    assert buffer.stats.underruns == 1


def test_concealment_repeats_pitch_period():
    """Concealment of a 200 Hz tone continues at 200 Hz (40-sample period)."""
    buffer = JitterBuffer(concealment_ms=60)
    feed_all(buffer, stream(5))
    frames = play(buffer, 6)
    concealed = np.frombuffer(frames[5], dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(concealed * np.hanning(len(concealed)), n=8000))
    assert 180 <= int(np.argmax(spectrum)) <= 220


def test_mulaw_and_alaw_decoded_by_payload_type():
    """Payload type 0 decodes as mu-law and 8 as A-law, and the two codes differ for the same audio."""
    pcm = tone_pcm(2)
    for payload_type, decode in ((0, mulaw_to_pcm), (8, alaw_to_pcm)):
        buffer = JitterBuffer()
        packets = stream(2, payload_type=payload_type, pcm=pcm)
        feed_all(buffer, packets)
        frames = play(buffer, 2)
        assert frames == [decode(packet.payload) for packet in packets]
        assert rms(frames[0]) == pytest.approx(rms(pcm[:FRAME_BYTES]), rel=0.05)
    assert pcm_to_mulaw(pcm) != pcm_to_alaw(pcm)


def test_alaw_payload_as_mulaw_differs():
    """Reading A-law bytes with the mu-law table gives wrong audio, so the payload type matters."""
    pcm = tone_pcm(1)
    assert mulaw_to_pcm(pcm_to_alaw(pcm)) != alaw_to_pcm(pcm_to_alaw(pcm))


def test_comfort_noise_plays_silence():
    """CN packets (payload type 13) are counted and play as silence, not concealment."""
    buffer = JitterBuffer()
    packets = stream(3)
    cn = RtpPacket(payload_type=13, sequence_number=1003, timestamp=3 * FRAME, ssrc=42, payload=b"\x40")
    feed_all(buffer, packets + [cn])
    frames = play(buffer, 6)
    assert buffer.stats.comfort_noise == 1
    assert buffer.stats.lost == 0
    assert all(rms(frame) == 0 for frame in frames[3:])


def test_unknown_payload_type_dropped():
    """Packets of a payload type not negotiated are counted and dropped."""
    buffer = JitterBuffer()
    packet = dataclasses.replace(stream(1)[0], payload_type=18)
    buffer.push(packet, 0.0)
    assert buffer.stats.unknown_payload_type == 1
    assert buffer.stats.unknown_payload_types == {18}
    assert buffer.stats.received == 0


def test_negotiated_dynamic_payload_type():
    """A payload type mapped to PCMA in the constructor decodes as A-law."""
    buffer = JitterBuffer(audio_payload_types={96: "PCMA"})
    packets = [dataclasses.replace(packet, payload_type=96) for packet in stream(2, payload_type=8)]
    feed_all(buffer, packets)
    assert play(buffer, 2) == [alaw_to_pcm(packet.payload) for packet in packets]


def test_unsupported_encoding_rejected():
    """An encoding without a decoder is a configuration error naming the payload type."""
    with pytest.raises(ConfigError, match="payload type 9"):
        JitterBuffer(audio_payload_types={9: "G722"})


def test_telephone_events_yield_digit_without_loss():
    """Telephone-event packets between audio yield one digit and no lost packets."""
    buffer = JitterBuffer()
    audio = stream(3)
    events = telephone_event_packets("5", ssrc=42, first_sequence_number=1003, timestamp=3 * FRAME)
    after = stream(3, first_sequence=1003 + len(events), first_timestamp=(3 + len(events)) * FRAME)
    digits = [buffer.push(packet, 0.0) for packet in audio + events + after]
    assert [digit.digit for digit in digits if digit is not None] == ["5"]
    frames = play(buffer, 12)
    assert buffer.stats.lost == 0
    assert buffer.stats.telephone_events == len(events)
    assert mulaw_to_pcm(after[0].payload) in frames


def test_ssrc_change_resets_stream():
    """A new SSRC starts a new stream: old packets are flushed and its own sequence numbers apply."""
    buffer = JitterBuffer()
    first = stream(3, ssrc=1)
    second = stream(3, ssrc=2, first_sequence=40000, first_timestamp=123456)
    feed_all(buffer, first)
    play(buffer, 3)
    feed_all(buffer, second, arrival_s=1.1)
    frames = play(buffer, 6, start_s=1.2)
    expected = [mulaw_to_pcm(packet.payload) for packet in second]
    assert frames[: len(expected)] == expected
    assert buffer.stats.ssrc_changes == 1
    assert buffer.stats.lost == 0


def test_sequence_jump_restarts_stream():
    """A sequence jump beyond 3000 is a restarted sender, not 3000 lost packets."""
    buffer = JitterBuffer()
    feed_all(buffer, stream(3))
    play(buffer, 3)
    restarted = stream(3, first_sequence=20000, first_timestamp=999999)
    feed_all(buffer, restarted, arrival_s=1.1)
    frames = play(buffer, 3, start_s=1.2)
    assert frames == [mulaw_to_pcm(packet.payload) for packet in restarted]
    assert buffer.stats.sequence_resets == 1
    assert buffer.stats.lost == 0


def test_timestamp_jump_does_not_inflate_jitter():
    """A sender timestamp jump leaves the jitter estimate near zero."""
    buffer = JitterBuffer()
    packets = stream(5) + stream(5, first_sequence=1005, first_timestamp=10**8)
    for index, packet in enumerate(packets):
        buffer.push(packet, index * 0.02)
    assert buffer.stats.jitter_ms < 1.0


def test_jitter_estimate_follows_rfc3550():
    """Alternating 10 ms early and late arrivals converge toward a jitter of about 20 ms."""
    buffer = JitterBuffer()
    for index, packet in enumerate(stream(400)):
        offset = 0.01 if index % 2 else -0.01
        buffer.push(packet, index * 0.02 + offset)
        buffer.pop(index * 0.02)
    assert 15.0 < buffer.stats.jitter_ms <= 20.0
    assert buffer.stats.target_delay_ms > 60.0


def test_target_delay_within_limits():
    """The target delay stays within min and max however large the jitter."""
    buffer = JitterBuffer(min_delay_ms=40, max_delay_ms=120)
    assert buffer.target_delay_ms() == 40
    for index, packet in enumerate(stream(200)):
        buffer.push(packet, index * 0.02 + (0.3 if index % 2 else 0.0))
    assert buffer.target_delay_ms() == 120


def test_waits_for_target_delay_before_playing():
    """Playout starts after the oldest packet has waited the target delay, not before."""
    buffer = JitterBuffer(min_delay_ms=60)
    packet = stream(1)[0]
    buffer.push(packet, 10.0)
    assert rms(buffer.pop(10.02)) == 0
    assert buffer.pop(10.07) == mulaw_to_pcm(packet.payload)


def test_excess_delay_shrinks_in_silence():
    """A burst far above the target delay is trimmed by dropping quiet frames."""
    buffer = JitterBuffer(min_delay_ms=20, max_delay_ms=200)
    silence = bytes(30 * FRAME_BYTES)
    feed_all(buffer, stream(30, pcm=silence), arrival_s=0.0)
    play(buffer, 10)
    assert buffer.stats.dropped_frames > 0
    assert buffer.stats.delay_ms < 30 * 20 - 10 * 20


def test_delay_never_exceeds_max_for_long():
    """A buffer flooded with speech drops frames until its delay is near max_delay_ms."""
    buffer = JitterBuffer(min_delay_ms=20, max_delay_ms=100)
    feed_all(buffer, stream(40))
    play(buffer, 20)
    assert buffer.stats.delay_ms <= 100 + 20
