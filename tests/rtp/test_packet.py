"""RTP packet tests: round trips, malformed datagrams and RTCP recognition, with no socket."""

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telephony.rtp.packet import RtpError, RtpExtension, RtpPacket, is_rtcp, parse_rtp
from voicebot.errors import ProtocolError


def test_minimal_packet_round_trip():
    """A plain packet serialises to 12 header bytes plus payload and parses back equal."""
    packet = RtpPacket(
        payload_type=0, sequence_number=65535, timestamp=0xFFFFFFFF, ssrc=0x12345678, payload=b"\xff" * 160
    )
    data = packet.to_bytes()
    assert len(data) == 12 + 160
    assert data[0] == 0x80
    assert parse_rtp(data) == packet


def test_full_packet_round_trip():
    """Marker, CSRCs, extension and padding survive a round trip."""
    packet = RtpPacket(
        payload_type=8,
        sequence_number=7,
        timestamp=160,
        ssrc=1,
        payload=b"\xd5" * 80,
        marker=True,
        csrcs=(1, 2, 0xFFFFFFFF),
        extension=RtpExtension(profile=0xBEDE, data=b"\x10\x01\x00\x00"),
        padding=4,
    )
    data = packet.to_bytes()
    assert data[0] == 0x80 | 0x20 | 0x10 | 3
    assert data[1] == 0x80 | 8
    assert data[-1] == 4
    parsed = parse_rtp(data)
    assert parsed == packet
    assert parsed.payload == b"\xd5" * 80


def test_header_fields_from_known_bytes():
    """Fields are read from network byte order at the RFC 3550 offsets."""
    data = bytes.fromhex("80e1 0102 00000a00 deadbeef".replace(" ", "")) + b"xy"
    packet = parse_rtp(data)
    assert packet.marker is True
    assert packet.payload_type == 0x61
    assert packet.sequence_number == 0x0102
    assert packet.timestamp == 0x0A00
    assert packet.ssrc == 0xDEADBEEF
    assert packet.payload == b"xy"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "shorter than the 12-byte"),
        (b"\x80\x00" + bytes(9), "shorter than the 12-byte"),
        (b"\x40\x00" + bytes(10), "version 1"),
        (b"\x00\x00" + bytes(10), "version 0"),
        (b"\x82\x00" + bytes(10) + bytes(4), "2 CSRCs"),
        (b"\x90\x00" + bytes(10) + b"\x00\x01", "inside its header"),
        (b"\x90\x00" + bytes(10) + b"\x00\x01\x00\x02" + bytes(4), "announces 2 words"),
        (b"\xa0\x00" + bytes(10) + b"ab\x00", "padding length byte is 0"),
        (b"\xa0\x00" + bytes(10) + b"ab\x09", "padding of 9 bytes"),
        (b"\x80\xc8" + bytes(10), "is RTCP"),
    ],
)
def test_malformed_packet_raises_rtp_error(data, message):
    """Each kind of malformed datagram raises RtpError naming the problem."""
    with pytest.raises(RtpError, match=message):
        parse_rtp(data)


def test_rtp_error_is_protocol_error():
    """RtpError belongs to the voicebot error tree."""
    assert issubclass(RtpError, ProtocolError)


def test_padding_may_fill_whole_payload():
    """Padding that covers all bytes after the header leaves an empty payload."""
    data = b"\xa0\x00" + bytes(10) + b"\x00\x00\x03"
    assert parse_rtp(data).payload == b""


@pytest.mark.parametrize(
    "fields",
    [
        {"payload_type": 128},
        {"sequence_number": 65536},
        {"timestamp": -1},
        {"ssrc": 1 << 32},
        {"csrcs": tuple(range(16))},
        {"padding": 256},
    ],
)
def test_out_of_range_fields_rejected(fields):
    """Building a packet with a field out of range raises RtpError."""
    values = {"payload_type": 0, "sequence_number": 0, "timestamp": 0, "ssrc": 0, **fields}
    with pytest.raises(RtpError):
        RtpPacket(**values)


def test_extension_needs_whole_words():
    """Extension data must be a multiple of 4 bytes."""
    with pytest.raises(RtpError, match="multiple of 4"):
        RtpExtension(profile=1, data=b"abc")


@pytest.mark.parametrize("packet_type", [200, 201, 202, 203, 204])
def test_rtcp_types_recognised(packet_type):
    """Muxed RTCP sender and receiver reports, SDES, BYE and APP are recognised."""
    report = struct.pack("!BBH", 0x81, packet_type, 1) + bytes(4)
    assert is_rtcp(report)


def test_rtp_is_not_rtcp():
    """An RTP packet, even with the marker bit, is not taken for RTCP."""
    assert not is_rtcp(RtpPacket(payload_type=0, sequence_number=1, timestamp=1, ssrc=1, marker=True).to_bytes())
    assert not is_rtcp(b"\x80")


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=200))
def test_parser_raises_only_rtp_error(data):
    """Arbitrary bytes either parse or raise RtpError, never another exception."""
    try:
        parse_rtp(data)
    except RtpError:
        pass


@settings(max_examples=2000, deadline=None)
@given(
    header=st.tuples(st.integers(0, 15), st.integers(0, 255), st.integers(0, 65535)),
    tail=st.binary(max_size=120),
)
def test_parser_on_version_2_headers(header, tail):
    """Version 2 headers with random flags and lengths parse, or raise RtpError only."""
    low_bits, second, sequence = header
    first = 0x80 | (low_bits & 0x30) | (low_bits & 0x0F)
    data = struct.pack("!BBH", first, second, sequence) + bytes(8) + tail
    try:
        packet = parse_rtp(data)
    except RtpError:
        return
    assert parse_rtp(packet.to_bytes()) == packet


@settings(max_examples=500, deadline=None)
@given(
    payload_type=st.integers(0, 127),
    sequence_number=st.integers(0, 65535),
    timestamp=st.integers(0, 2**32 - 1),
    ssrc=st.integers(0, 2**32 - 1),
    payload=st.binary(max_size=64),
    marker=st.booleans(),
    csrcs=st.lists(st.integers(0, 2**32 - 1), max_size=15).map(tuple),
    padding=st.integers(0, 255),
)
def test_any_valid_packet_round_trips(payload_type, sequence_number, timestamp, ssrc, payload, marker, csrcs, padding):
    """Every packet that builds and is not RTCP-shaped parses back equal."""
    packet = RtpPacket(payload_type, sequence_number, timestamp, ssrc, payload, marker, csrcs, None, padding)
    data = packet.to_bytes()
    if is_rtcp(data):
        with pytest.raises(RtpError):
            parse_rtp(data)
        return
    assert parse_rtp(data) == packet
