"""SDP parsing and RFC 3264 offer/answer tests."""

from __future__ import annotations

import pytest

from telephony.sip import sdp
from telephony.sip.errors import SdpError, SdpNegotiationError
from tests.sip.messages import SDP_OFFER


def answer(offer_text: str, **kwargs: object) -> tuple[sdp.SessionDescription, sdp.MediaSelection]:
    offer = sdp.parse_sdp(offer_text)
    return sdp.answer_offer(offer, address="192.0.2.1", port=40000, session_id=7, session_version=1, **kwargs)  # type: ignore[arg-type]


def test_parse_offer() -> None:
    """An ordinary PBX offer parses into its fields."""
    offer = sdp.parse_sdp(SDP_OFFER)
    media = offer.media[0]
    assert offer.origin.address == "192.0.2.10"
    assert offer.connection is not None and offer.connection.address == "192.0.2.10"
    assert media.port == 49170
    assert media.formats == ["8", "0", "101"]
    assert media.rtpmap()[101] == ("telephone-event", 8000)
    assert media.fmtp() == {101: "0-15"}
    assert media.ptime_ms() == 20
    assert media.direction() == "sendrecv"


def test_round_trip() -> None:
    """Serialising and reparsing keeps every field."""
    offer = sdp.parse_sdp(SDP_OFFER)
    again = sdp.parse_sdp(offer.to_bytes())
    assert again == offer


def test_answer_follows_offer_order() -> None:
    """The first offered codec we support wins and telephone-event is echoed."""
    body, selection = answer(SDP_OFFER)
    assert selection.codec == "PCMA"
    assert selection.payload_type == 8
    assert selection.telephone_event_pt == 101
    assert (selection.remote_address, selection.remote_port) == ("192.0.2.10", 49170)
    media = body.media[0]
    assert media.formats == ["8", "101"]
    assert media.fmtp() == {101: "0-15"}
    assert media.port == 40000


def test_answer_local_preference() -> None:
    """With prefer_offer_order off, our codec order wins."""
    _, selection = answer(SDP_OFFER, prefer_offer_order=False, codecs=("PCMU", "PCMA"))
    assert selection.codec == "PCMU"


def test_dynamic_payload_type_for_pcmu() -> None:
    """PCMU offered on a dynamic payload type is recognised by its rtpmap."""
    offer = SDP_OFFER.replace("RTP/AVP 8 0 101", "RTP/AVP 96").replace("a=rtpmap:8 PCMA/8000", "a=rtpmap:96 PCMU/8000")
    _, selection = answer(offer)
    assert (selection.codec, selection.payload_type, selection.telephone_event_pt) == ("PCMU", 96, None)


@pytest.mark.parametrize(
    "offered, answered, on_hold",
    [("sendrecv", "sendrecv", False), ("sendonly", "recvonly", True), ("recvonly", "sendonly", False),
     ("inactive", "inactive", True)],
)
def test_answer_directions(offered: str, answered: str, on_hold: bool) -> None:
    """Directions map as RFC 3264 section 6.1 says."""
    body, selection = answer(SDP_OFFER.replace("a=sendrecv", f"a={offered}"))
    assert body.media[0].direction() == answered
    assert selection.on_hold is on_hold


def test_hold_by_zero_address() -> None:
    """c=0.0.0.0 is the RFC 2543 hold."""
    _, selection = answer(SDP_OFFER.replace("c=IN IP4 192.0.2.10", "c=IN IP4 0.0.0.0"))
    assert selection.on_hold


def test_media_level_connection_wins() -> None:
    """A media-level c= overrides the session-level one."""
    offer = SDP_OFFER.replace("a=ptime:20\r\n", "a=ptime:20\r\nc=IN IP4 198.51.100.7\r\n")
    _, selection = answer(offer)
    assert selection.remote_address == "198.51.100.7"


def test_video_answered_with_port_zero() -> None:
    """Extra streams stay in the answer with port 0."""
    offer = SDP_OFFER + "m=video 51372 RTP/AVP 31\r\na=rtpmap:31 H261/90000\r\n"
    body, _ = answer(offer)
    assert [m.media for m in body.media] == ["audio", "video"]
    assert body.media[1].port == 0
    assert body.media[1].formats == ["31"]


def test_no_common_codec_is_488() -> None:
    """An offer with only G.729 raises SdpNegotiationError with status 488."""
    offer = SDP_OFFER.replace("RTP/AVP 8 0 101", "RTP/AVP 18").replace("a=rtpmap:8 PCMA/8000", "a=rtpmap:18 G729/8000")
    offer = offer.replace("a=rtpmap:0 PCMU/8000\r\n", "")
    with pytest.raises(SdpNegotiationError) as info:
        answer(offer)
    assert info.value.status == 488


def test_srtp_only_is_488() -> None:
    """RTP/SAVP streams are refused because voicebot has no SRTP."""
    with pytest.raises(SdpNegotiationError):
        answer(SDP_OFFER.replace("RTP/AVP", "RTP/SAVP"))


def test_event_range_intersection() -> None:
    """A wider event range is cut to the 0-16 we support."""
    body, _ = answer(SDP_OFFER.replace("a=fmtp:101 0-15", "a=fmtp:101 0-15,16,32-40"))
    assert body.media[0].fmtp() == {101: "0-16"}


def test_offer_and_answer_parse() -> None:
    """Our offer, answered by a peer, yields a media selection."""
    offer = sdp.create_offer(address="192.0.2.1", port=40000, session_id=1, session_version=1)
    assert offer.media[0].formats == ["0", "8", "101"]
    peer_answer = sdp.parse_sdp(SDP_OFFER.replace("RTP/AVP 8 0 101", "RTP/AVP 0 101"))
    selection = sdp.parse_answer(peer_answer, offer)
    assert selection.codec == "PCMU"


@pytest.mark.parametrize(
    "text",
    ["", "v=1\r\n", "v=0\r\nm=audio 1 RTP/AVP 0\r\n", "v=0\r\no=a b\r\n", "v=0\r\no=- 1 2 IN IP4 h\r\nxx\r\n",
     "v=0\r\no=- 1 2 IN IP4 h\r\nm=audio 99999 RTP/AVP 0\r\n", "v=0\r\no=- 1 2 IN IP4 h\r\nm=audio 5 RTP/AVP x\r\n",
     "v=0\r\no=- 1 2 IN IP4 h\r\nc=IN IP4\r\n"],
)
def test_malformed_sdp(text: str) -> None:
    """Malformed bodies raise SdpError."""
    with pytest.raises(SdpError):
        sdp.parse_sdp(text)
