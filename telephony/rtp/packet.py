"""RTP packets (RFC 3550 section 5.1): parse and build, with strict validation.

Fixed header, 12 bytes, network byte order:

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    |V=2|P|X|  CC   |M|     PT      |       sequence number         |
    |                           timestamp                           |
    |           synchronization source (SSRC) identifier            |
    |            contributing source (CSRC) identifiers             |  CC entries
    |      header extension (profile, length in 32-bit words)       |  when X = 1

Padding (P = 1) ends the packet, and its last byte is the padding length, that byte included.
`parse_rtp` raises `RtpError` on any malformed input and nothing else.

RTCP can share the RTP port (RFC 5761). Its second byte is the packet type: 200 SR,
201 RR, 202 SDES, 203 BYE, 204 APP. `is_rtcp` recognises these so that a receiver can skip
them, because their byte would otherwise read as marker 1 and payload type 72-76.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from voicebot.errors import ProtocolError

RTP_VERSION = 2
RTP_HEADER_BYTES = 12
MAX_CSRC_COUNT = 15
# RTCP packet types that RFC 5761 section 4 tells a muxing receiver to look for.
RTCP_PACKET_TYPES = range(200, 205)
# Static payload types of RFC 3551 table 4 that voicebot handles.
PAYLOAD_TYPE_PCMU = 0
PAYLOAD_TYPE_PCMA = 8
PAYLOAD_TYPE_CN = 13
# telephone-event (RFC 4733) has a dynamic payload type set in SDP. 101 is the common choice.
DEFAULT_TELEPHONE_EVENT_PAYLOAD_TYPE = 101

_FIXED_HEADER = struct.Struct("!BBHII")
_EXTENSION_HEADER = struct.Struct("!HH")


class RtpError(ProtocolError):
    """A datagram that is not a valid RTP packet, or packet fields out of range."""


@dataclass(frozen=True, slots=True)
class RtpExtension:
    """Header extension: a 16-bit profile id and data of whole 32-bit words."""

    profile: int
    data: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.profile <= 0xFFFF:
            raise RtpError(f"extension profile {self.profile} is out of range; use 0-65535")
        if len(self.data) % 4:
            raise RtpError(
                f"extension data of {len(self.data)} bytes is not a multiple of 4; pad it to whole 32-bit words"
            )
        if len(self.data) // 4 > 0xFFFF:
            raise RtpError(f"extension data of {len(self.data)} bytes exceeds 65535 words")


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet. `padding` is the number of padding bytes, 0 for none."""

    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    extension: RtpExtension | None = None
    padding: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.payload_type <= 127:
            raise RtpError(f"payload type {self.payload_type} is out of range; use 0-127")
        if not 0 <= self.sequence_number <= 0xFFFF:
            raise RtpError(f"sequence number {self.sequence_number} is out of range; use 0-65535")
        if not 0 <= self.timestamp <= 0xFFFFFFFF:
            raise RtpError(f"timestamp {self.timestamp} is out of range; use 0 to 2**32-1")
        if not 0 <= self.ssrc <= 0xFFFFFFFF:
            raise RtpError(f"SSRC {self.ssrc} is out of range; use 0 to 2**32-1")
        if len(self.csrcs) > MAX_CSRC_COUNT:
            raise RtpError(f"{len(self.csrcs)} CSRCs exceed the maximum of {MAX_CSRC_COUNT}")
        for csrc in self.csrcs:
            if not 0 <= csrc <= 0xFFFFFFFF:
                raise RtpError(f"CSRC {csrc} is out of range; use 0 to 2**32-1")
        if not 0 <= self.padding <= 255:
            raise RtpError(f"padding of {self.padding} bytes is out of range; use 0-255")

    def to_bytes(self) -> bytes:
        """Serialise the packet. Padding bytes are zero except the final length byte."""
        first = (RTP_VERSION << 6) | (0x20 if self.padding else 0) | (0x10 if self.extension else 0)
        first |= len(self.csrcs)
        second = (0x80 if self.marker else 0) | self.payload_type
        parts = [_FIXED_HEADER.pack(first, second, self.sequence_number, self.timestamp, self.ssrc)]
        parts.extend(struct.pack("!I", csrc) for csrc in self.csrcs)
        if self.extension is not None:
            parts.append(_EXTENSION_HEADER.pack(self.extension.profile, len(self.extension.data) // 4))
            parts.append(self.extension.data)
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes([self.padding]))
        return b"".join(parts)


def is_rtcp(data: bytes) -> bool:
    """Return True for a datagram whose version is 2 and whose packet type is an RTCP type (200-204)."""
    return len(data) >= 2 and data[0] >> 6 == RTP_VERSION and data[1] in RTCP_PACKET_TYPES


def parse_rtp(data: bytes) -> RtpPacket:
    """Parse one datagram as an RTP packet. Raises RtpError, naming the field, when it is malformed."""
    if len(data) < RTP_HEADER_BYTES:
        raise RtpError(f"datagram of {len(data)} bytes is shorter than the {RTP_HEADER_BYTES}-byte RTP header")
    first, second, sequence_number, timestamp, ssrc = _FIXED_HEADER.unpack_from(data)
    version = first >> 6
    if version != RTP_VERSION:
        raise RtpError(f"RTP version {version} is not supported; RFC 3550 packets have version 2")
    if second in RTCP_PACKET_TYPES:
        raise RtpError(f"packet type {second} is RTCP, not RTP; check is_rtcp() before parse_rtp()")

    offset = RTP_HEADER_BYTES
    csrc_count = first & 0x0F
    end_of_csrcs = offset + 4 * csrc_count
    if len(data) < end_of_csrcs:
        raise RtpError(f"header announces {csrc_count} CSRCs but the datagram ends after {len(data)} bytes")
    csrcs = struct.unpack_from(f"!{csrc_count}I", data, offset)
    offset = end_of_csrcs

    extension = None
    if first & 0x10:
        if len(data) < offset + _EXTENSION_HEADER.size:
            raise RtpError(f"extension bit is set but the datagram ends after {len(data)} bytes, inside its header")
        profile, words = _EXTENSION_HEADER.unpack_from(data, offset)
        offset += _EXTENSION_HEADER.size
        if len(data) < offset + 4 * words:
            raise RtpError(
                f"extension announces {words} words but only {len(data) - offset} bytes follow its header"
            )
        extension = RtpExtension(profile=profile, data=bytes(data[offset : offset + 4 * words]))
        offset += 4 * words

    end = len(data)
    padding = 0
    if first & 0x20:
        padding = data[-1]
        if padding == 0:
            raise RtpError("padding bit is set but the padding length byte is 0; it counts itself, so at least 1")
        if padding > end - offset:
            raise RtpError(f"padding of {padding} bytes is longer than the {end - offset} bytes after the header")
        end -= padding

    return RtpPacket(
        payload_type=second & 0x7F,
        sequence_number=sequence_number,
        timestamp=timestamp,
        ssrc=ssrc,
        payload=bytes(data[offset:end]),
        marker=bool(second & 0x80),
        csrcs=tuple(csrcs),
        extension=extension,
        padding=padding,
    )
