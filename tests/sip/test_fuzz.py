"""Property-based fuzzing: the SIP and SDP parsers and the core raise nothing but typed errors."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telephony.sip import sdp
from telephony.sip.errors import SdpError, SipError, SipParseError
from telephony.sip.message import parse_message
from tests.sip.messages import PEER, SDP_OFFER, agent, request

VALID_MESSAGES = [
    request("INVITE", body=SDP_OFFER),
    request("OPTIONS", content_type=None),
    request("BYE", to_tag="t1", content_type=None),
    b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\n"
    b"To: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
]
# Bytes that matter to the grammar, so mutations hit delimiters more often than random bytes would.
SPECIAL = [b":", b";", b",", b"<", b">", b'"', b"\\", b"@", b"=", b"/", b" ", b"\t", b"\r\n", b"\r\n ", b"\x00",
           b"\xff", b"[", b"]", b"?", b"&", b"%", b"99999999999", b"-1", b"", b"sip:", b"tel:"]
FUZZ = settings(max_examples=int(os.environ.get("SIP_FUZZ_EXAMPLES", "400")), deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def mutated(draw: st.DrawFn, sources: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(sources)))
    for _ in range(draw(st.integers(1, 6))):
        position = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["insert", "delete", "replace"]))
        chunk = draw(st.one_of(st.sampled_from(SPECIAL), st.binary(min_size=1, max_size=4)))
        if kind == "insert":
            data[position:position] = chunk
        elif kind == "delete":
            data[position : position + draw(st.integers(1, 12))] = b""
        else:
            data[position : position + len(chunk)] = chunk
    return bytes(data)


@FUZZ
@given(st.binary(max_size=600))
def test_parser_random_bytes(data: bytes) -> None:
    """Random bytes either parse or raise SipParseError."""
    try:
        parse_message(data)
    except SipParseError:
        pass


@FUZZ
@given(mutated(VALID_MESSAGES))
def test_parser_mutations(data: bytes) -> None:
    """Mutated valid messages either parse (and reserialise) or raise SipParseError."""
    try:
        message = parse_message(data)
    except SipParseError:
        return
    message.to_bytes()


@FUZZ
@given(mutated([SDP_OFFER.encode()]))
def test_sdp_mutations(data: bytes) -> None:
    """Mutated SDP either parses and negotiates or raises a typed SIP error."""
    try:
        offer = sdp.parse_sdp(data)
        sdp.answer_offer(offer, address="192.0.2.1", port=4000, session_id=1, session_version=1)
    except (SdpError, SipError):
        pass


@FUZZ
@given(st.text(max_size=300))
def test_sdp_random_text(text: str) -> None:
    """Random text either parses as SDP or raises SdpError."""
    try:
        sdp.parse_sdp(text)
    except SdpError:
        pass


@FUZZ
@given(st.lists(mutated(VALID_MESSAGES), min_size=1, max_size=4))
def test_core_never_raises(messages: list[bytes]) -> None:
    """The user agent core turns any input sequence into actions without raising."""
    ua = agent()
    now = 0.0
    for data in messages:
        ua.receive(data, PEER, "UDP", now)
        now += 1.0
        ua.tick(now)
