"""Builders of SIP test messages, written the way a PBX or SBC sends them."""

from __future__ import annotations

from telephony.sip import SipUserAgent, UserAgentConfig
from telephony.sip.events import Action, SendMessage
from telephony.sip.message import SipRequest, SipResponse, parse_message

PEER = ("192.0.2.10", 5060)
SDP_OFFER = (
    "v=0\r\n"
    "o=pbx 2890844526 2890844526 IN IP4 192.0.2.10\r\n"
    "s=call\r\n"
    "c=IN IP4 192.0.2.10\r\n"
    "t=0 0\r\n"
    "m=audio 49170 RTP/AVP 8 0 101\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-15\r\n"
    "a=ptime:20\r\n"
    "a=sendrecv\r\n"
)


def agent(**overrides: object) -> SipUserAgent:
    settings: dict[str, object] = {"host": "192.0.2.1", "port": 5060}
    settings.update(overrides)
    return SipUserAgent(config=UserAgentConfig(**settings))  # type: ignore[arg-type]


def request(
    method: str,
    *,
    call_id: str = "call-1@192.0.2.10",
    branch: str = "z9hG4bK-inv-1",
    cseq: int = 1,
    cseq_method: str | None = None,
    to_tag: str | None = None,
    from_tag: str = "caller-tag",
    body: str = "",
    content_type: str | None = "application/sdp",
    extra: str = "",
    uri: str = "sip:bot@192.0.2.1",
) -> bytes:
    to = "<sip:bot@192.0.2.1>" + (f";tag={to_tag}" if to_tag else "")
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/UDP 192.0.2.10:5060;branch={branch}",
        "Max-Forwards: 70",
        f"From: \"Caller\" <sip:+85223456789@192.0.2.10>;tag={from_tag}",
        f"To: {to}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {cseq_method or method}",
        "Contact: <sip:pbx@192.0.2.10:5060>",
    ]
    if body and content_type:
        lines.append(f"Content-Type: {content_type}")
    lines.append(f"Content-Length: {len(body.encode())}")
    text = "\r\n".join(lines) + "\r\n" + extra + "\r\n" + body
    return text.encode()


def sent(actions: list[Action]) -> list[SipRequest | SipResponse]:
    """Parse every message the core asked to send, in order."""
    return [parse_message(a.data) for a in actions if isinstance(a, SendMessage)]


def statuses(actions: list[Action]) -> list[int]:
    return [m.status for m in sent(actions) if isinstance(m, SipResponse)]


def events(actions: list[Action], kind: type) -> list:
    return [a for a in actions if isinstance(a, kind)]
