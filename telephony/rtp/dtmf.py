"""RFC 4733 telephone-events (DTMF over RTP): a receiver that yields one digit per key press, and a sender.

Payload, 4 bytes: event (8 bits), E end flag (1), R reserved (1), volume in -dBm0 (6),
duration in timestamp units (16). All packets of one key press carry the same RTP timestamp,
the start of the event. The sender repeats updates every packet interval with a growing duration,
sets the marker bit on the first, and sends the final packet with E = 1 three times (RFC 4733
section 2.5.1.4), so a receiver sees many packets per press and must key them by timestamp.

Events 0-15 are the DTMF keys 0-9, *, #, A-D (RFC 4733 section 3.2). Other events (flash,
fax and modem tones) are counted and ignored.
"""

from __future__ import annotations

import logging
import struct
from collections import deque
from dataclasses import dataclass

from telephony.rtp.packet import DEFAULT_TELEPHONE_EVENT_PAYLOAD_TYPE, RtpError, RtpPacket

logger = logging.getLogger(__name__)

DTMF_EVENT_DIGITS = "0123456789*#ABCD"
TELEPHONE_EVENT_PAYLOAD_BYTES = 4
MAX_EVENT_DURATION = 0xFFFF  # timestamp units. Longer presses are split into segments (section 2.5.1.3).
# Key presses remembered for duplicate detection. Redundant packets of one press arrive within
# a few hundred milliseconds, so the last 32 presses are plenty.
REMEMBERED_EVENTS = 32

_PAYLOAD = struct.Struct("!BBH")


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One decoded telephone-event payload."""

    event: int
    end: bool
    volume: int  # -dBm0, 0-63
    duration: int  # timestamp units since the event started

    def to_bytes(self) -> bytes:
        return _PAYLOAD.pack(self.event, (0x80 if self.end else 0) | (self.volume & 0x3F), self.duration)


@dataclass(frozen=True, slots=True)
class DtmfDigit:
    """A key press as the receiver reports it, once per press."""

    digit: str
    ssrc: int
    timestamp: int  # RTP timestamp of the event start


def parse_telephone_event(payload: bytes) -> TelephoneEvent:
    """Decode the first 4 bytes of a telephone-event payload. Raises RtpError when it is shorter."""
    if len(payload) < TELEPHONE_EVENT_PAYLOAD_BYTES:
        raise RtpError(
            f"telephone-event payload of {len(payload)} bytes is shorter than {TELEPHONE_EVENT_PAYLOAD_BYTES}"
        )
    event, flags, duration = _PAYLOAD.unpack_from(payload)
    return TelephoneEvent(event=event, end=bool(flags & 0x80), volume=flags & 0x3F, duration=duration)


class DtmfReceiver:
    """Turns telephone-event packets into digits: one per key press, reported on the first packet seen.

    Reporting on the first packet seen, whatever its kind, means a press whose start packets
    were lost is still reported (from an update or an end packet). Every later packet with the
    same SSRC and timestamp belongs to the same press and is ignored.
    """

    def __init__(self) -> None:
        self.digits_reported = 0
        self.duplicate_packets = 0
        self.ignored_events = 0  # events other than 0-15
        self.invalid_packets = 0
        self._seen: deque[tuple[int, int]] = deque(maxlen=REMEMBERED_EVENTS)
        # (ssrc, timestamp, event, last duration, ended) of the newest press, to join long-press segments.
        self._current: tuple[int, int, int, int, bool] | None = None

    def feed(self, packet: RtpPacket) -> DtmfDigit | None:
        """Process one telephone-event packet and return the digit when it starts a new key press."""
        try:
            event = parse_telephone_event(packet.payload)
        except RtpError:
            self.invalid_packets += 1
            logger.debug("dropped a telephone-event packet with a %d-byte payload", len(packet.payload))
            return None

        key = (packet.ssrc, packet.timestamp)
        if key in self._seen:
            self.duplicate_packets += 1
            self._update_current(packet, event)
            return None
        continuation = self._is_next_segment(packet, event)
        self._seen.append(key)
        self._current = (packet.ssrc, packet.timestamp, event.event, event.duration, event.end)
        if continuation:
            return None
        if event.event >= len(DTMF_EVENT_DIGITS):
            self.ignored_events += 1
            return None
        self.digits_reported += 1
        return DtmfDigit(digit=DTMF_EVENT_DIGITS[event.event], ssrc=packet.ssrc, timestamp=packet.timestamp)

    def _update_current(self, packet: RtpPacket, event: TelephoneEvent) -> None:
        if self._current is None:
            return
        ssrc, timestamp, code, duration, ended = self._current
        if (ssrc, timestamp) == (packet.ssrc, packet.timestamp):
            self._current = (ssrc, timestamp, code, max(duration, event.duration), ended or event.end)

    def _is_next_segment(self, packet: RtpPacket, event: TelephoneEvent) -> bool:
        # A press longer than 65535 timestamp units continues in a new segment whose timestamp is
        # the old one plus the old duration, without the marker bit (RFC 4733 section 2.5.1.3).
        if self._current is None or packet.marker:
            return False
        ssrc, timestamp, code, duration, ended = self._current
        return (
            ssrc == packet.ssrc
            and code == event.event
            and not ended
            and duration == MAX_EVENT_DURATION
            and (timestamp + duration) & 0xFFFFFFFF == packet.timestamp
        )


def telephone_event_packets(
    digit: str,
    *,
    ssrc: int,
    first_sequence_number: int,
    timestamp: int,
    payload_type: int = DEFAULT_TELEPHONE_EVENT_PAYLOAD_TYPE,
    duration_ms: int = 100,
    packet_interval_ms: int = 20,
    volume_dbm0: int = 10,
    end_repeats: int = 3,
    clock_rate_hz: int = 8000,
) -> list[RtpPacket]:
    """Build the packets of one key press: updates every packet interval, then `end_repeats` end packets.

    All packets carry `timestamp`, the event start; sequence numbers count up from
    `first_sequence_number` and wrap at 65536. Send them one packet interval apart.
    """
    if len(digit) != 1 or digit not in DTMF_EVENT_DIGITS:
        raise RtpError(f"DTMF digit {digit!r} is not one of 0-9, *, #, A-D")
    if packet_interval_ms <= 0 or duration_ms < packet_interval_ms:
        raise RtpError(
            f"duration {duration_ms} ms and packet interval {packet_interval_ms} ms are invalid; "
            "the interval must be positive and not longer than the duration"
        )
    total = duration_ms * clock_rate_hz // 1000
    if total > MAX_EVENT_DURATION:
        max_ms = MAX_EVENT_DURATION * 1000 // clock_rate_hz
        raise RtpError(f"duration {duration_ms} ms exceeds one event segment; use at most {max_ms} ms")
    if not 0 <= volume_dbm0 <= 63:
        raise RtpError(f"volume {volume_dbm0} -dBm0 is out of range; use 0-63")
    if end_repeats < 1:
        raise RtpError(f"end_repeats {end_repeats} must be at least 1 so that the receiver sees the end")

    step = packet_interval_ms * clock_rate_hz // 1000
    durations = list(range(step, total, step))
    event = DTMF_EVENT_DIGITS.index(digit)
    payloads = [TelephoneEvent(event, False, volume_dbm0, d).to_bytes() for d in durations]
    payloads += [TelephoneEvent(event, True, volume_dbm0, total).to_bytes()] * end_repeats
    return [
        RtpPacket(
            payload_type=payload_type,
            sequence_number=(first_sequence_number + i) & 0xFFFF,
            timestamp=timestamp,
            ssrc=ssrc,
            payload=payload,
            marker=i == 0,
        )
        for i, payload in enumerate(payloads)
    ]
