"""Packetizer for outbound G.711 audio: 16-bit PCM frames in, RTP packets out.

Pure state machine. It owns the SSRC, sequence number and timestamp of the outbound stream,
which start at random values as RFC 3550 section 5.1 recommends. The marker bit is set on
the first packet of each talkspurt, that is the first packet after `start_talkspurt()`,
`skip_frame()` or the start of the stream. Pacing in real time is the caller's job (see
`telephony.rtp.session`).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from telephony.g711 import pcm_to_alaw, pcm_to_mulaw
from telephony.rtp.dtmf import telephone_event_packets
from telephony.rtp.packet import (
    DEFAULT_TELEPHONE_EVENT_PAYLOAD_TYPE,
    PAYLOAD_TYPE_PCMA,
    PAYLOAD_TYPE_PCMU,
    RtpPacket,
)
from voicebot.errors import AudioError, ConfigError

SAMPLE_RATE_HZ = 8000
SAMPLE_BYTES = 2
ENCODERS: dict[int, Callable[[bytes], bytes]] = {PAYLOAD_TYPE_PCMU: pcm_to_mulaw, PAYLOAD_TYPE_PCMA: pcm_to_alaw}


def split_frames(pcm: bytes, *, frame_ms: int = 20) -> list[bytes]:
    """Split 16-bit PCM at 8 kHz into frames of frame_ms, padding the last one with silence."""
    if len(pcm) % SAMPLE_BYTES:
        raise AudioError(f"16-bit PCM must have an even number of bytes, got {len(pcm)}; pass whole samples")
    frame_bytes = SAMPLE_RATE_HZ * frame_ms // 1000 * SAMPLE_BYTES
    frames = [pcm[i : i + frame_bytes] for i in range(0, len(pcm), frame_bytes)]
    if frames and len(frames[-1]) < frame_bytes:
        frames[-1] = frames[-1].ljust(frame_bytes, b"\x00")
    return frames


class RtpPacketizer:
    """Builds the RTP packets of one outbound stream, one packet per frame."""

    def __init__(
        self,
        *,
        payload_type: int = PAYLOAD_TYPE_PCMU,
        frame_ms: int = 20,
        ssrc: int | None = None,
        initial_sequence_number: int | None = None,
        initial_timestamp: int | None = None,
        telephone_event_payload_type: int = DEFAULT_TELEPHONE_EVENT_PAYLOAD_TYPE,
    ) -> None:
        if payload_type not in ENCODERS:
            raise ConfigError(
                f"payload type {payload_type} cannot be sent; negotiate PCMU (0) or PCMA (8)"
            )
        if frame_ms not in (10, 20, 30, 40):
            raise ConfigError(f"frame_ms={frame_ms} is not supported; use 10, 20, 30 or 40 ms")
        self.payload_type = payload_type
        self.frame_ms = frame_ms
        self.frame_samples = SAMPLE_RATE_HZ * frame_ms // 1000
        self.telephone_event_payload_type = telephone_event_payload_type
        self.ssrc = secrets.randbits(32) if ssrc is None else ssrc
        self.sequence_number = secrets.randbits(16) if initial_sequence_number is None else initial_sequence_number
        self.timestamp = secrets.randbits(32) if initial_timestamp is None else initial_timestamp
        self.packets_sent = 0
        self.octets_sent = 0
        self._encode = ENCODERS[payload_type]
        self._talkspurt_start = True
        self._silence_payload = self._encode(bytes(self.frame_samples * SAMPLE_BYTES))

    def packetize(self, frame: bytes) -> RtpPacket:
        """Encode one frame of 16-bit PCM (exactly frame_ms) into the next packet."""
        expected = self.frame_samples * SAMPLE_BYTES
        if len(frame) != expected:
            raise AudioError(
                f"frame of {len(frame)} bytes is not {self.frame_ms} ms of 16-bit 8 kHz PCM ({expected} bytes); "
                "use split_frames()"
            )
        return self._next_packet(self._encode(frame))

    def silence(self) -> RtpPacket:
        """Build a packet of encoded silence, which continues the talkspurt."""
        return self._next_packet(self._silence_payload)

    def skip_frame(self) -> None:
        """Advance the timestamp by one frame without a packet, so the next packet starts a talkspurt."""
        self.timestamp = (self.timestamp + self.frame_samples) & 0xFFFFFFFF
        self._talkspurt_start = True

    def start_talkspurt(self) -> None:
        """Set the marker bit on the next packet."""
        self._talkspurt_start = True

    def telephone_event(self, digit: str, *, duration_ms: int = 100, volume_dbm0: int = 10) -> list[RtpPacket]:
        """Build the RFC 4733 packets of one key press starting now, to be sent one frame apart.

        The packets take the stream's next sequence numbers, and the timestamp moves past the
        event, so audio after it continues in order.
        """
        packets = telephone_event_packets(
            digit,
            ssrc=self.ssrc,
            first_sequence_number=self.sequence_number,
            timestamp=self.timestamp,
            payload_type=self.telephone_event_payload_type,
            duration_ms=duration_ms,
            packet_interval_ms=self.frame_ms,
            volume_dbm0=volume_dbm0,
        )
        self.sequence_number = (self.sequence_number + len(packets)) & 0xFFFF
        # One frame of timestamp per packet sent, so that the timestamp keeps pace with real time.
        self.timestamp = (self.timestamp + len(packets) * self.frame_samples) & 0xFFFFFFFF
        self.packets_sent += len(packets)
        self.octets_sent += sum(len(packet.payload) for packet in packets)
        self._talkspurt_start = True
        return packets

    def _next_packet(self, payload: bytes) -> RtpPacket:
        packet = RtpPacket(
            payload_type=self.payload_type,
            sequence_number=self.sequence_number,
            timestamp=self.timestamp,
            ssrc=self.ssrc,
            payload=payload,
            marker=self._talkspurt_start,
        )
        self._talkspurt_start = False
        self.sequence_number = (self.sequence_number + 1) & 0xFFFF
        self.timestamp = (self.timestamp + self.frame_samples) & 0xFFFFFFFF
        self.packets_sent += 1
        self.octets_sent += len(payload)
        return packet
