"""Parser and serialiser tests with RFC 3261 and RFC 4475 style messages."""

from __future__ import annotations

import pytest

from telephony.sip.errors import SipParseError
from telephony.sip.message import (
    SipRequest,
    SipResponse,
    make_response,
    parse_message,
    parse_name_addr,
    parse_uri,
    parse_via,
)
from tests.sip.messages import SDP_OFFER, request

# RFC 4475 section 3.1.1.1 style: compact forms, folding, odd spacing, unknown headers.
WSINV = (
    b"INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0\r\n"
    b"TO :\r\n sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n\r\n"
    b"from   : \"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8\r\n"
    b"MaX-fOrWaRdS: 0068\r\n"
    b"Call-ID: wsinv.ndaksdj@192.0.2.1\r\n"
    b"Content-Length   : 150\r\n"
    b"cseq: 0009\r\n  INVITE\r\n"
    b"Via  : SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw\r\n"
    b"s :\r\n"
    b"NewFangledHeader:   newfangled value\r\n continued newfangled value\r\n"
    b"UnknownHeaderWithUnusualValue: ;;,,;;,;\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Route:\r\n <sip:services.example.com;lr;unknownwith=value;unknown-no-value>\r\n"
    b"v:  SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8  ,\r\n"
    b" SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n z9hG4bK30239\r\n"
    b"m:\"Quoted string \\\"\\\"\" <sip:jdrosen@example.com> ; newparam =\r\n      newvalue ;\r\n"
    b"  secondparam ; q = 0.33\r\n"
    b"\r\n"
    b"v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.3\r\ns=-\r\nc=IN IP4 192.0.2.4\r\n"
    b"t=0 0\r\nm=audio 49217 RTP/AVP 0 12\r\nm=video 3227 RTP/AVP 31\r\na=rtpmap:31 LPC\r\n"
)


def test_torture_whitespace_and_folding() -> None:
    """A message with folding, compact forms and odd spacing parses (RFC 4475 wsinv)."""
    message = parse_message(WSINV)
    assert isinstance(message, SipRequest)
    assert message.method == "INVITE"
    assert message.to.tag == "1918181833n"
    assert message.from_.tag == "98asjd8"
    assert message.cseq.number == 9
    assert [via.branch for via in message.vias] == ["390skdjuw", "z9hG4bK9ikj8", "z9hG4bK30239"]
    assert message.vias[1].transport == "TCP"
    assert message.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert len(message.body) == 150
    assert message.contact is not None
    assert message.contact.params["q"] == "0.33"


def test_compact_forms_expand() -> None:
    """Compact header names map to their full names."""
    data = (
        b"OPTIONS sip:bot@192.0.2.1 SIP/2.0\r\nv: SIP/2.0/UDP h.example.com;branch=z9hG4bKa\r\n"
        b"f: <sip:a@example.com>;tag=1\r\nt: <sip:bot@192.0.2.1>\r\ni: abc\r\nCSeq: 1 OPTIONS\r\n"
        b"k: timer\r\no: refer\r\nr: <sip:x@example.com>\r\nb: <sip:y@example.com>\r\nx: 1800\r\nl: 0\r\n\r\n"
    )
    message = parse_message(data)
    assert message.call_id == "abc"
    assert message.headers.get("Supported") == "timer"
    assert message.headers.get("Event") == "refer"
    assert message.headers.get("Refer-To") == "<sip:x@example.com>"
    assert message.headers.get("Referred-By") == "<sip:y@example.com>"
    assert message.headers.get("Session-Expires") == "1800"


def test_multi_value_headers_split() -> None:
    """Comma lists split into entries, but not inside quotes or angle brackets."""
    extra = 'Contact: "A, B" <sip:a@example.com;p=1,2>, <sip:b@example.com>\r\nAllow: INVITE, ACK,BYE\r\n'
    message = parse_message(request("OPTIONS", extra=extra, content_type=None))
    assert len(message.headers.get_all("Contact")) == 3  # the INVITE helper adds one too
    assert message.headers.get_all("Allow") == ["INVITE", "ACK", "BYE"]
    assert parse_name_addr(message.headers.get_all("Contact")[1], "Contact").display_name == "A, B"


def test_header_names_case_insensitive() -> None:
    """Header lookups ignore case."""
    message = parse_message(request("OPTIONS", content_type=None))
    assert message.headers.get("call-id") == message.headers.get("CALL-ID") == "call-1@192.0.2.10"


def test_uri_forms() -> None:
    """sip, sips and tel URIs parse with user, port, params and headers."""
    uri = parse_uri("sips:alice:secret@[2001:db8::10]:5061;transport=tcp;lr?Subject=hi&Priority=urgent")
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port) == ("sips", "alice", "secret", "[2001:db8::10]", 5061)
    assert uri.params == {"transport": "tcp", "lr": None}
    assert uri.headers == {"Subject": "hi", "Priority": "urgent"}
    tel = parse_uri("tel:+852-2345-6789;phone-context=example.com")
    assert (tel.scheme, tel.host, tel.params["phone-context"]) == ("tel", "+852-2345-6789", "example.com")
    assert str(parse_uri("sip:bot@192.0.2.1:5070;transport=udp")) == "sip:bot@192.0.2.1:5070;transport=udp"


def test_addr_spec_params_belong_to_header() -> None:
    """Without angle brackets, ;tag belongs to the header, not to the URI (RFC 3261 section 20.10)."""
    name_addr = parse_name_addr("sip:alice@example.com;tag=abc", "From")
    assert name_addr.tag == "abc"
    assert name_addr.uri.params == {}


def test_via_received_rport() -> None:
    """Via parameters received, rport and branch parse."""
    via = parse_via("SIP/2.0/UDP 10.0.0.1:5062;received=192.0.2.9;rport=40000;branch=z9hG4bKx")
    assert via.params["received"] == "192.0.2.9"
    assert via.params["rport"] == "40000"
    assert via.sent_by == ("10.0.0.1", 5062)


def test_udp_body_truncated_is_400() -> None:
    """A Content-Length larger than the datagram body means truncation (RFC 3261 section 18.3)."""
    data = request("INVITE", body=SDP_OFFER).replace(b"Content-Length: ", b"Content-Length: 9")
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    assert info.value.status == 400
    assert "truncated" in str(info.value)


def test_extra_body_bytes_dropped() -> None:
    """Bytes past Content-Length are discarded."""
    message = parse_message(request("INVITE", body="v=0\r\n") + b"garbage")
    assert message.body == b"v=0\r\n"


@pytest.mark.parametrize(
    "data, status",
    [
        (b"INVITE sip:bot@192.0.2.1 SIP/7.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n", 505),
        (b"INVITE http://example.com/ SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n", 416),
        (b"INVITE sip:bot@192.0.2.1 SIP/2.0\r\n\r\n", 400),
        (b"INVITE  sip:bot@192.0.2.1  SIP/2.0\r\n\r\n", 400),
        (b"\xff\xfe\r\n\r\n", 400),
        (b"SIP/2.0 99 Odd\r\n\r\n", 400),
        (b"no blank line", 400),
        (b"X" * 70_000, 513),
    ],
)
def test_malformed_start_lines(data: bytes, status: int) -> None:
    """Broken start lines raise SipParseError with the right status."""
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    assert info.value.status == status


@pytest.mark.parametrize(
    "replace, by",
    [
        (b"CSeq: 1 INVITE", b"CSeq: 1 BYE"),
        (b"CSeq: 1 INVITE", b"CSeq: 99999999999 INVITE"),
        (b"CSeq: 1 INVITE", b"CSeq: -1 INVITE"),
        (b"Max-Forwards: 70", b"Max-Forwards: seventy"),
        (b"Call-ID: call-1@192.0.2.10", b"Call-ID: "),
        (b"Via: SIP/2.0/UDP 192.0.2.10:5060", b"Via: SIP/2.0/UDP 192.0.2.10:99999"),
        (b"Via: SIP/2.0/UDP", b"Via: HTTP/1.1/UDP"),
        (b"To: <sip:bot@192.0.2.1>", b"To: <sip:bot@192.0.2.1"),
        (b"From: \"Caller\"", b"From: \"Caller"),
        (b"Content-Length: 0", b"Content-Length: 0\r\nContent-Length: 5"),
        (b"Content-Length: 0", b"Content-Length: -3"),
        (b"Via: SIP/2.0/UDP", b" Via: SIP/2.0/UDP"),
    ],
)
def test_malformed_headers(replace: bytes, by: bytes) -> None:
    """Each broken mandatory header raises SipParseError."""
    data = request("INVITE", content_type=None)
    assert replace in data
    with pytest.raises(SipParseError):
        parse_message(data.replace(replace, by, 1))


def test_header_limit() -> None:
    """More header lines than the limit raise SipParseError."""
    extra = "".join(f"X-Filler-{i}: {i}\r\n" for i in range(120))
    with pytest.raises(SipParseError, match="more than 100"):
        parse_message(request("OPTIONS", extra=extra, content_type=None))


def test_round_trip_and_response() -> None:
    """A parsed request serialises and reparses; a response copies the right headers."""
    message = parse_message(request("INVITE", body=SDP_OFFER))
    assert isinstance(message, SipRequest)
    again = parse_message(message.to_bytes())
    assert again.body == message.body
    response = make_response(message, 486, to_tag="t1")
    parsed = parse_message(response.to_bytes())
    assert isinstance(parsed, SipResponse)
    assert parsed.status == 486
    assert parsed.reason == "Busy Here"
    assert parsed.to.tag == "t1"
    assert parsed.cseq.method == "INVITE"


def test_leading_crlf_and_bare_lf() -> None:
    """Leading CRLFs are ignored and bare-LF line ends are accepted."""
    data = b"\r\n\r\n" + request("OPTIONS", content_type=None).replace(b"\r\n", b"\n")
    assert parse_message(data).headers.get("CSeq") == "1 OPTIONS"
