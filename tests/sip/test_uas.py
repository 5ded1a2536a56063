"""SipUserAgent core tests: byte strings in, actions out, with a fake clock."""

from __future__ import annotations

import hashlib

from telephony.sip import (
    CallAnswered,
    CallEnded,
    DigestAuthenticator,
    DtmfInfo,
    HoldChanged,
    IncomingCall,
    MediaChanged,
    SendMessage,
    SipUserAgent,
)
from telephony.sip.message import SipRequest, SipResponse, parse_message
from tests.sip.messages import PEER, SDP_OFFER, agent, events, request, sent, statuses

RTP = ("192.0.2.1", 40000)


def start_call(ua: SipUserAgent, now: float = 0.0, **kwargs: object) -> IncomingCall:
    actions = ua.receive(request("INVITE", body=SDP_OFFER, **kwargs), PEER, "UDP", now)  # type: ignore[arg-type]
    assert statuses(actions) == [100]
    return events(actions, IncomingCall)[0]


def answered_call(ua: SipUserAgent) -> tuple[IncomingCall, str]:
    """Answer a call and ACK it; return the event and our To tag."""
    call = start_call(ua)
    ok = sent(ua.answer(call.call_id, rtp_address=RTP, now=0.1))[0]
    assert isinstance(ok, SipResponse)
    tag = ok.to.tag or ""
    actions = ua.receive(request("ACK", branch="z9hG4bK-ack-1", to_tag=tag, content_type=None), PEER, "UDP", 0.2)
    assert events(actions, CallAnswered)
    return call, tag


def test_invite_answer_ack_bye() -> None:
    """A whole inbound call: 100, 180, 200 with SDP, ACK, BYE."""
    ua = agent()
    call = start_call(ua)
    assert call.media is not None
    assert call.media.codec == "PCMA"
    assert call.from_uri == "sip:+85223456789@192.0.2.10"
    assert statuses(ua.ring(call.call_id, now=0.05)) == [180]
    ok = sent(ua.answer(call.call_id, rtp_address=RTP, now=0.1))[0]
    assert isinstance(ok, SipResponse)
    assert ok.status == 200
    assert ok.content_type == "application/sdp"
    assert b"m=audio 40000 RTP/AVP 8 101" in ok.body
    assert ok.contact is not None
    tag = ok.to.tag
    ack = ua.receive(request("ACK", branch="z9hG4bK-ack", to_tag=tag, content_type=None), PEER, "UDP", 0.2)
    assert events(ack, CallAnswered)[0].media.codec == "PCMA"
    bye = ua.receive(request("BYE", branch="z9hG4bK-bye", cseq=2, to_tag=tag, content_type=None), PEER, "UDP", 5.0)
    assert statuses(bye) == [200]
    assert events(bye, CallEnded)[0].reason == "remote-bye"
    assert ua.calls == {}


def test_2xx_retransmitted_until_ack() -> None:
    """The UAS core resends 200 at T1, 2T1, 4T1 ... capped at T2 until the ACK (section 13.3.1.4)."""
    ua = agent()
    call = start_call(ua)
    ok = sent(ua.answer(call.call_id, rtp_address=RTP, now=0.0))[0]
    times = []
    now = 0.0
    while len(times) < 6:
        now = ua.next_deadline() or 0.0
        if statuses(ua.tick(now)) == [200]:
            times.append(now)
    assert times == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5]
    ack = request("ACK", branch="z9hG4bK-ack", to_tag=ok.to.tag, content_type=None)
    assert events(ua.receive(ack, PEER, "UDP", now), CallAnswered)
    assert all(not isinstance(a, SendMessage) for a in ua.tick(now + 10))


def test_no_ack_sends_bye() -> None:
    """Without an ACK for 64*T1 the core sends BYE and ends the call."""
    ua = agent()
    call = start_call(ua)
    ua.answer(call.call_id, rtp_address=RTP, now=0.0)
    actions = ua.tick(32.0)
    messages = sent(actions)
    assert [m.method for m in messages if isinstance(m, SipRequest)] == ["BYE"]
    assert events(actions, CallEnded)[0].reason == "ack-timeout"


def test_non_2xx_retransmitted_and_ack_absorbed() -> None:
    """A 486 is resent by Timer G until the ACK, which the transaction absorbs."""
    ua = agent()
    call = start_call(ua)
    actions = ua.reject(call.call_id, status=486, now=0.0)
    assert statuses(actions) == [486]
    assert events(actions, CallEnded)[0].status == 486
    assert statuses(ua.tick(0.5)) == [486]
    assert statuses(ua.tick(1.5)) == [486]
    ack = request("ACK", to_tag=sent(actions)[0].to.tag, content_type=None)  # same branch as the INVITE
    assert ua.receive(ack, PEER, "UDP", 1.6) == []
    assert statuses(ua.tick(3.5)) == []


def test_timer_h_ends_transaction() -> None:
    """Without an ACK, Timer H (64*T1) stops the retransmissions of the 486."""
    ua = agent()
    call = start_call(ua)
    ua.reject(call.call_id, status=486, now=0.0)
    resent = 0
    while (deadline := ua.next_deadline()) is not None:
        resent += len(statuses(ua.tick(deadline)))
    assert deadline is None
    assert 7 <= resent <= 11


def test_invite_retransmission_gets_last_response() -> None:
    """A retransmitted INVITE gets the last provisional response again, with no new event."""
    ua = agent()
    call = start_call(ua)
    ua.ring(call.call_id, now=0.1)
    actions = ua.receive(request("INVITE", body=SDP_OFFER), PEER, "UDP", 0.5)
    assert statuses(actions) == [180]
    assert not events(actions, IncomingCall)


def test_tcp_has_no_retransmission() -> None:
    """Over TCP the 486 is sent once and the transaction ends at once (Timer I is zero)."""
    ua = agent()
    data = request("INVITE", body=SDP_OFFER).replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP")
    call = events(ua.receive(data, PEER, "TCP", 0.0), IncomingCall)[0]
    ua.reject(call.call_id, status=486, now=0.0)
    assert statuses(ua.tick(0.5)) == []


def test_cancel_before_answer() -> None:
    """CANCEL gets 200, the INVITE gets 487, and the application sees CallEnded."""
    ua = agent()
    call = start_call(ua)
    ua.ring(call.call_id, now=0.1)
    actions = ua.receive(request("CANCEL", content_type=None), PEER, "UDP", 0.2)
    messages = sent(actions)
    assert [(m.status, m.cseq.method) for m in messages] == [(200, "CANCEL"), (487, "INVITE")]
    assert events(actions, CallEnded)[0].reason == "cancelled"
    assert ua.answer(call.call_id, rtp_address=RTP, now=0.3) == []
    ack = request("ACK", to_tag=messages[1].to.tag, content_type=None)
    assert ua.receive(ack, PEER, "UDP", 0.4) == []


def test_cancel_after_answer_race() -> None:
    """A CANCEL that crosses our 200 gets 200 and leaves the call up."""
    ua = agent()
    call = start_call(ua)
    ua.answer(call.call_id, rtp_address=RTP, now=0.1)
    actions = ua.receive(request("CANCEL", content_type=None), PEER, "UDP", 0.15)
    assert statuses(actions) == [200]
    assert not events(actions, CallEnded)
    assert call.call_id in ua.calls


def test_cancel_unknown_is_481() -> None:
    """CANCEL matching no INVITE gets 481."""
    assert statuses(agent().receive(request("CANCEL", content_type=None), PEER, "UDP", 0.0)) == [481]


def reinvite(ua: SipUserAgent, tag: str, direction: str, cseq: int, now: float) -> list:
    body = SDP_OFFER.replace("a=sendrecv", f"a={direction}")
    return ua.receive(request("INVITE", branch=f"z9hG4bK-re-{cseq}", cseq=cseq, to_tag=tag, body=body), PEER, "UDP",
                      now)


def test_reinvite_hold_and_resume() -> None:
    """re-INVITE sendonly puts us on hold (we answer recvonly); sendrecv resumes."""
    ua = agent()
    call, tag = answered_call(ua)
    actions = reinvite(ua, tag, "sendonly", 2, 1.0)
    ok = sent(actions)[0]
    assert ok.status == 200
    assert b"a=recvonly" in ok.body
    assert b"o=voicebot" in ok.body
    hold = events(actions, HoldChanged)[0]
    assert hold.on_hold
    assert hold.direction == "recvonly"
    ua.receive(request("ACK", branch="z9hG4bK-ack-2", cseq=2, to_tag=tag, content_type=None), PEER, "UDP", 1.1)
    actions = reinvite(ua, tag, "sendrecv", 3, 2.0)
    assert b"a=sendrecv" in sent(actions)[0].body
    assert not events(actions, HoldChanged)[0].on_hold
    assert not events(actions, MediaChanged)


def test_reinvite_while_pending_is_491() -> None:
    """A second re-INVITE before the ACK of the first gets 491."""
    ua = agent()
    _, tag = answered_call(ua)
    reinvite(ua, tag, "sendonly", 2, 1.0)
    assert statuses(reinvite(ua, tag, "sendrecv", 3, 1.1)) == [491]


def test_reinvite_bad_codec_keeps_call() -> None:
    """A re-INVITE with no common codec gets 488 and the call stays up."""
    ua = agent()
    call, tag = answered_call(ua)
    body = SDP_OFFER.replace("RTP/AVP 8 0 101", "RTP/AVP 18")
    actions = ua.receive(request("INVITE", branch="z9hG4bK-re", cseq=2, to_tag=tag, body=body), PEER, "UDP", 1.0)
    assert statuses(actions) == [488]
    assert call.call_id in ua.calls


def test_info_dtmf() -> None:
    """INFO with dtmf-relay and dtmf bodies yields DtmfInfo."""
    ua = agent()
    call, tag = answered_call(ua)
    relay = request("INFO", branch="z9hG4bK-i1", cseq=2, to_tag=tag, body="Signal=5\r\nDuration=160\r\n",
                    content_type="application/dtmf-relay")
    actions = ua.receive(relay, PEER, "UDP", 1.0)
    assert statuses(actions) == [200]
    assert events(actions, DtmfInfo) == [DtmfInfo(call_id=call.call_id, digit="5", duration_ms=160)]
    plain = request("INFO", branch="z9hG4bK-i2", cseq=3, to_tag=tag, body="#", content_type="application/dtmf")
    assert events(ua.receive(plain, PEER, "UDP", 1.1), DtmfInfo)[0].digit == "#"
    other = request("INFO", branch="z9hG4bK-i3", cseq=4, to_tag=tag, body="x", content_type="text/plain")
    assert statuses(ua.receive(other, PEER, "UDP", 1.2)) == [415]


def test_refer_and_notify() -> None:
    """REFER goes out with Refer-To; its 202 and the NOTIFY sipfrags become ReferResults."""
    ua = agent()
    call, tag = answered_call(ua)
    refer = sent(ua.refer(call.call_id, target="sip:agent@192.0.2.20", now=1.0))[0]
    assert isinstance(refer, SipRequest)
    assert refer.method == "REFER"
    assert refer.headers.get("Refer-To") == "<sip:agent@192.0.2.20>"
    assert refer.from_.tag == tag
    response = SipResponse(status=202, reason="Accepted", headers=refer.headers.copy())
    response.headers.remove("Contact")
    results = ua.receive(response.to_bytes(), PEER, "UDP", 1.1)
    assert results[0].status == 202
    assert not results[0].final
    notify = request("NOTIFY", branch="z9hG4bK-n1", cseq=2, to_tag=tag, body="SIP/2.0 200 OK\r\n",
                     content_type="message/sipfrag", extra="Event: refer\r\nSubscription-State: terminated\r\n")
    actions = ua.receive(notify, PEER, "UDP", 2.0)
    assert statuses(actions) == [200]
    final = actions[-1]
    assert (final.status, final.final) == (200, True)


def test_refer_timeout() -> None:
    """An unanswered REFER reports 408 after Timer F."""
    ua = agent()
    call, _ = answered_call(ua)
    ua.refer(call.call_id, target="sip:agent@192.0.2.20", now=1.0)
    results = [a for a in ua.tick(33.0) if not isinstance(a, SendMessage)]
    assert results[0].status == 408
    assert results[0].final


def test_options_ping() -> None:
    """OPTIONS gets 200 with Allow and Accept."""
    response = sent(agent().receive(request("OPTIONS", content_type=None), PEER, "UDP", 0.0))[0]
    assert response.status == 200
    assert "INVITE" in response.headers.get_all("Allow")
    assert response.headers.get("Accept") == "application/sdp"


def test_error_statuses() -> None:
    """Unknown methods, extensions, dialogs and bodies get 405, 420, 481, 415 and 488."""
    ua = agent()
    assert statuses(ua.receive(request("SUBSCRIBE", content_type=None), PEER, "UDP", 0.0)) == [405]
    required = request("INVITE", branch="z9hG4bK-2", call_id="c2", body=SDP_OFFER, extra="Require: 100rel\r\n")
    responses = sent(ua.receive(required, PEER, "UDP", 0.0))
    assert responses[0].status == 420
    assert responses[0].headers.get("Unsupported") == "100rel"
    bye = request("BYE", branch="z9hG4bK-3", call_id="c3", to_tag="nope", content_type=None)
    assert statuses(ua.receive(bye, PEER, "UDP", 0.0)) == [481]
    text = request("INVITE", branch="z9hG4bK-4", call_id="c4", body="hello", content_type="text/plain")
    assert statuses(ua.receive(text, PEER, "UDP", 0.0)) == [415]
    g729 = SDP_OFFER.replace("RTP/AVP 8 0 101", "RTP/AVP 18")
    bad = request("INVITE", branch="z9hG4bK-5", call_id="c5", body=g729)
    assert statuses(ua.receive(bad, PEER, "UDP", 0.0)) == [488]


def test_malformed_request_gets_400_with_warning() -> None:
    """A request that fails to parse gets 400 naming the problem."""
    data = request("INVITE", body=SDP_OFFER).replace(b"CSeq: 1 INVITE", b"CSeq: one INVITE")
    actions = agent().receive(data, PEER, "UDP", 0.0)
    assert isinstance(actions[0], SendMessage)
    response = actions[0].data  # it echoes the broken CSeq, so it does not parse either
    assert response.startswith(b"SIP/2.0 400 Bad Request\r\n")
    assert b"Warning: 399 192.0.2.1 \"invalid CSeq" in response
    assert b"Call-ID: call-1@192.0.2.10" in response
    assert agent().receive(b"\xff\x00garbage", PEER, "UDP", 0.0) == []


def test_capacity_full_is_503() -> None:
    """A full capacity callback turns a new INVITE into 503 with Retry-After."""
    ua = agent(capacity_available=lambda: False, retry_after_s=15)
    response = sent(ua.receive(request("INVITE", body=SDP_OFFER), PEER, "UDP", 0.0))[0]
    assert response.status == 503
    assert response.headers.get("Retry-After") == "15"


def test_allow_list_drops_strangers() -> None:
    """A source outside allowed_networks gets no response at all."""
    ua = agent(allowed_networks=("10.0.0.0/8",))
    assert ua.receive(request("INVITE", body=SDP_OFFER), PEER, "UDP", 0.0) == []
    assert statuses(ua.receive(request("OPTIONS", content_type=None), ("10.1.2.3", 5060), "UDP", 0.0)) == [200]


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def test_digest_challenge_and_verify() -> None:
    """An INVITE without credentials gets 401; the right MD5 response is accepted, a wrong one is not."""
    digest = DigestAuthenticator(realm="bank", credentials={"pbx": "s3cret"})
    ua = agent(digest=digest)
    challenge = sent(ua.receive(request("INVITE", body=SDP_OFFER), PEER, "UDP", 100.0))[0]
    assert challenge.status == 401
    header = challenge.headers.get("WWW-Authenticate") or ""
    nonce = header.split('nonce="')[1].split('"')[0]
    uri = "sip:bot@192.0.2.1"
    ha1, ha2 = md5("pbx:bank:s3cret"), md5(f"INVITE:{uri}")
    good = md5(f"{ha1}:{nonce}:00000001:abc:auth:{ha2}")
    auth = (f'Authorization: Digest username="pbx", realm="bank", nonce="{nonce}", uri="{uri}", '
            f'response="{good}", qop=auth, nc=00000001, cnonce="abc", algorithm=MD5\r\n')
    bad = auth.replace(good, "0" * 32)
    rejected = ua.receive(request("INVITE", branch="z9hG4bK-2", cseq=2, body=SDP_OFFER, extra=bad), PEER, "UDP", 101.0)
    assert statuses(rejected) == [401]
    accepted = ua.receive(request("INVITE", branch="z9hG4bK-3", cseq=3, body=SDP_OFFER, extra=auth), PEER, "UDP", 101.0)
    assert statuses(accepted) == [100]
    assert events(accepted, IncomingCall)
    stale = ua.receive(request("INVITE", branch="z9hG4bK-4", call_id="c9", body=SDP_OFFER, extra=auth), PEER, "UDP",
                       1000.0)
    assert "stale=true" in (sent(stale)[0].headers.get("WWW-Authenticate") or "")


def test_merged_request_is_482() -> None:
    """A second INVITE with the same Call-ID and no To tag on a new branch gets 482."""
    ua = agent()
    start_call(ua)
    again = request("INVITE", branch="z9hG4bK-other", body=SDP_OFFER)
    assert statuses(ua.receive(again, PEER, "UDP", 0.1)) == [482]


def test_out_of_order_cseq_is_500() -> None:
    """An in-dialog request with a lower CSeq gets 500."""
    ua = agent()
    _, tag = answered_call(ua)
    bye = request("BYE", branch="z9hG4bK-b", cseq=0, to_tag=tag, content_type=None)
    assert statuses(ua.receive(bye, PEER, "UDP", 1.0)) == [500]


def test_hangup_sends_bye() -> None:
    """hangup() on an answered call sends BYE and ends the call."""
    ua = agent()
    call, tag = answered_call(ua)
    actions = ua.hangup(call.call_id, now=1.0)
    bye = sent(actions)[0]
    assert isinstance(bye, SipRequest)
    assert bye.method == "BYE"
    assert bye.to.tag == "caller-tag"
    assert bye.from_.tag == tag
    assert events(actions, CallEnded)[0].reason == "local-bye"
    assert sent(ua.tick(1.5))  # Timer E resends the BYE until a response arrives


def test_rport_and_received() -> None:
    """Responses go to the source address when the Via asks for rport (RFC 3581)."""
    ua = agent()
    data = request("OPTIONS", content_type=None).replace(b"branch=z9hG4bK-inv-1", b"branch=z9hG4bK-inv-1;rport")
    action = ua.receive(data, ("198.51.100.5", 40001), "UDP", 0.0)[0]
    assert isinstance(action, SendMessage)
    assert action.address == ("198.51.100.5", 40001)
    via = parse_message(action.data).vias[0]
    assert via.params["received"] == "198.51.100.5"
    assert via.params["rport"] == "40001"


def callee_response(invite: SipRequest, status: int, *, to_tag: str = "callee", body: str = "") -> bytes:
    """Build the callee's response to an INVITE the bot sent."""
    response = SipResponse(status=status, reason="X", headers=invite.headers.copy())
    for name in ("Contact", "Content-Type", "Max-Forwards", "Allow"):
        response.headers.remove(name)
    response.headers.set("To", f"{invite.headers.get('To')};tag={to_tag}")
    response.headers.add("Contact", "<sip:agent@192.0.2.20:5060>")
    if body:
        response.headers.add("Content-Type", "application/sdp")
        response.body = body.encode()
    return response.to_bytes()


def test_outbound_call_answered() -> None:
    """A consult call: INVITE with our offer, 180, 200 with an answer, then our ACK on a new branch."""
    ua = agent()
    call_id, actions = ua.call("sip:agent@192.0.2.20", destination=("192.0.2.20", 5060), rtp_address=RTP, now=0.0)
    invite = sent(actions)[0]
    assert isinstance(invite, SipRequest)
    assert invite.method == "INVITE"
    assert b"m=audio 40000 RTP/AVP 0 8 101" in invite.body
    assert [m.method for m in sent(ua.tick(0.5))] == ["INVITE"]  # Timer A
    progress = ua.receive(callee_response(invite, 180), ("192.0.2.20", 5060), "UDP", 0.6)
    assert progress[0].status == 180
    assert sent(ua.tick(1.5)) == []  # no retransmission after a provisional response
    ok = callee_response(invite, 200, body=SDP_OFFER.replace("RTP/AVP 8 0 101", "RTP/AVP 0 101"))
    actions = ua.receive(ok, ("192.0.2.20", 5060), "UDP", 2.0)
    ack = sent(actions)[0]
    assert isinstance(ack, SipRequest)
    assert ack.method == "ACK"
    assert ack.vias[0].branch != invite.vias[0].branch
    assert ack.to.tag == "callee"
    assert events(actions, CallAnswered)[0].media.codec == "PCMU"
    again = ua.receive(ok, ("192.0.2.20", 5060), "UDP", 2.5)
    assert [m.method for m in sent(again)] == ["ACK"]  # a retransmitted 2xx gets the ACK again
    assert ua.calls[call_id].dialog.replaces_value() == f"{call_id};to-tag=callee;from-tag={invite.from_.tag}"


def test_outbound_call_rejected_acked() -> None:
    """A 486 to our INVITE is acknowledged on the INVITE's branch and ends the call."""
    ua = agent()
    _, actions = ua.call("sip:agent@192.0.2.20", destination=("192.0.2.20", 5060), rtp_address=RTP, now=0.0)
    invite = sent(actions)[0]
    result = ua.receive(callee_response(invite, 486), ("192.0.2.20", 5060), "UDP", 0.3)
    ack = sent(result)[0]
    assert ack.method == "ACK"
    assert ack.vias[0].branch == invite.vias[0].branch
    assert events(result, CallEnded)[0].status == 486


def test_outbound_call_timer_b() -> None:
    """An INVITE nobody answers ends with a timeout after Timer B (64*T1)."""
    ua = agent()
    ua.call("sip:agent@192.0.2.20", destination=("192.0.2.20", 5060), rtp_address=RTP, now=0.0)
    sends = 0
    ended: list[CallEnded] = []
    while (deadline := ua.next_deadline()) is not None:
        actions = ua.tick(deadline)
        sends += len(sent(actions))
        ended += events(actions, CallEnded)
    assert sends == 6  # retransmissions at 0.5, 1.5, 3.5, 7.5, 15.5 and 31.5 s
    assert ended[0].reason == "timeout"


def test_outbound_cancel_after_ringing() -> None:
    """hangup() during ringing sends CANCEL on the INVITE's branch; the 487 is acknowledged."""
    ua = agent()
    call_id, actions = ua.call("sip:agent@192.0.2.20", destination=("192.0.2.20", 5060), rtp_address=RTP, now=0.0)
    invite = sent(actions)[0]
    ua.receive(callee_response(invite, 180), ("192.0.2.20", 5060), "UDP", 0.1)
    actions = ua.hangup(call_id, now=0.2)
    cancel = sent(actions)[0]
    assert cancel.method == "CANCEL"
    assert cancel.vias[0].branch == invite.vias[0].branch
    assert events(actions, CallEnded)[0].reason == "cancelled"
    result = ua.receive(callee_response(invite, 487), ("192.0.2.20", 5060), "UDP", 0.3)
    assert [m.method for m in sent(result)] == ["ACK"]
    assert not events(result, CallEnded)


def test_attended_transfer_refer_to_has_replaces() -> None:
    """refer() with a consult call puts an escaped Replaces into Refer-To (RFC 3891)."""
    ua = agent()
    call, _ = answered_call(ua)
    consult_id, actions = ua.call("sip:agent@192.0.2.20", destination=("192.0.2.20", 5060), rtp_address=RTP, now=1.0)
    ok = callee_response(sent(actions)[0], 200, body=SDP_OFFER)
    ua.receive(ok, ("192.0.2.20", 5060), "UDP", 1.5)
    refer = sent(ua.refer(call.call_id, target="sip:agent@192.0.2.20", now=2.0, replaces_call_id=consult_id))[0]
    refer_to = refer.headers.get("Refer-To") or ""
    assert refer_to.startswith("<sip:agent@192.0.2.20?Replaces=")
    assert "%3Bto-tag%3Dcallee%3Bfrom-tag%3D" in refer_to
