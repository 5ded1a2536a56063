"""SIP user agent core: answers calls, sends BYE, REFER and consult INVITEs, with no I/O.

`SipUserAgent.receive(data, source, transport, now)` takes one message and returns a list of
actions (`SendMessage` and application events, see `telephony.sip.events`). The application
replies with `ring()`, `answer()`, `reject()`, `hangup()`, `refer()` or `call()`, each of which
also returns actions. Time is an argument everywhere: the adapter calls `tick(now)` when
`next_deadline()` passes, so tests drive retransmission timers with a fake clock.

Methods the application calls for a call that has ended (a CANCEL or BYE can always win the
race against the application) return an empty list instead of raising.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from typing import Callable

from telephony.sip import sdp
from telephony.sip.client import ClientMixin
from telephony.sip.dialog import BRANCH_COOKIE, Dialog, new_tag
from telephony.sip.errors import SipError, SipParseError
from telephony.sip.events import (
    REASON_ACK_TIMEOUT,
    REASON_CANCELLED,
    REASON_LOCAL_BYE,
    REASON_REJECTED,
    REASON_REMOTE_BYE,
    Action,
    Address,
    CallAnswered,
    CallEnded,
    DtmfInfo,
    HoldChanged,
    IncomingCall,
    MediaChanged,
    ReferResult,
    SendMessage,
)
from telephony.sip.message import (
    SipRequest,
    SipResponse,
    make_response,
    parse_message,
    quote,
)
from telephony.sip.callstate import Call, UserAgentConfig
from telephony.sip.transaction import ServerInviteTransaction, ServerNonInviteTransaction, State

logger = logging.getLogger(__name__)

ALLOWED_METHODS = ("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO", "NOTIFY")
# Option tags we implement; a Require with any other tag gets 420 (RFC 3261 section 8.2.2.3).
SUPPORTED_EXTENSIONS: tuple[str, ...] = ()
DTMF_DIGITS = "0123456789*#ABCD"
# RFC 4733 event codes 10 and 11 are * and #; some PBXes send them as Signal=10/11 in INFO.
_DTMF_EVENT_CODES = {str(code): digit for code, digit in enumerate(DTMF_DIGITS)}


def _is_on_hold(media: sdp.MediaSelection | None) -> bool:
    return media is not None and media.on_hold


class SipUserAgent(ClientMixin):
    """Pure SIP user agent core; see the module docstring for the calling contract."""

    def __init__(self, *, config: UserAgentConfig) -> None:
        self.config = config
        self._networks = [ipaddress.ip_network(net, strict=False) for net in config.allowed_networks]
        self.calls: dict[str, Call] = {}
        self._server_tx: dict[tuple[str, ...], ServerInviteTransaction | ServerNonInviteTransaction] = {}
        super().__init__()

    # Inbound messages.

    def receive(self, data: bytes, source: Address, transport: str, now: float, *, datagram: bool = True) -> list[Action]:
        """Handle one message from `source`; malformed input yields an error response, not an exception."""
        if not data.strip(b"\r\n"):
            return []  # CRLF keep-alive (RFC 5626 section 4.4.1)
        if self._networks and not self._source_allowed(source[0]):
            logger.info("dropped SIP message from %s: not in allowed_networks", source[0])
            return []
        try:
            message = parse_message(
                data,
                datagram=datagram,
                max_message_bytes=self.config.max_message_bytes,
                max_headers=self.config.max_headers,
            )
        except SipParseError as e:
            logger.info("rejected malformed SIP message of %d bytes from %s with %d", len(data), source[0], e.status)
            return self._reject_unparsed(data, e, source, transport)
        if isinstance(message, SipResponse):
            return self._on_response(message, now)
        try:
            return self._on_request(message, source, transport, now)
        except SipError as e:
            # Checks deeper than the parser (an SDP body, a header only some methods need).
            logger.info("rejected SIP %s from %s with %d", message.method, source[0], e.status)
            if message.method == "ACK":
                return []
            response = self._response(message, e.status, e.reason, warning=str(e))
            return self._send_via_transaction(message, response, source, transport, now)

    def _source_allowed(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self._networks)

    def _reject_unparsed(self, data: bytes, error: SipParseError, source: Address, transport: str) -> list[Action]:
        """Answer an unparseable request with its error status, echoing whatever headers are readable."""
        head = data.lstrip(b"\r\n").split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
        lines = head.split("\n")
        if not lines or lines[0].upper().startswith("SIP/") or lines[0].startswith("ACK "):
            return []  # responses and ACKs never get a response
        response = SipResponse(status=error.status, reason=error.reason)
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            name = name.strip().lower()
            if colon and name in ("via", "v", "from", "f", "to", "t", "call-id", "i", "cseq"):
                response.headers.add(name, value.strip().replace("\r", ""))
        if not response.headers.get_all("Via"):
            return []  # without a Via nobody can match the response; answering would only reflect traffic
        response.headers.add("Warning", f"399 {self.config.host} {self._warning_text(str(error))}")
        return [SendMessage(data=response.to_bytes(), address=source, transport=transport)]

    @staticmethod
    def _warning_text(text: str) -> str:
        return quote("".join(c if 32 <= ord(c) < 127 else "?" for c in text)[:200])

    def _response_address(self, request: SipRequest, source: Address, transport: str) -> Address:
        """Return the address for responses (RFC 3261 section 18.2.2 and RFC 3581 rport)."""
        if transport.upper() != "UDP":
            return source
        via = request.vias[0]
        if "rport" in via.params or "received" in via.params:
            return source
        return via.sent_by

    def _mark_received(self, request: SipRequest, source: Address) -> None:
        """Add received and rport to the top Via (RFC 3261 section 18.2.1, RFC 3581)."""
        via = request.vias[0]
        params = dict(via.params)
        if via.host.strip("[]") != source[0]:
            params["received"] = source[0]
        if "rport" in params:
            params["rport"] = str(source[1])
        if params == via.params:
            return
        values = request.headers.get_all("Via")
        request.headers.remove("Via")
        request.headers.add("Via", str(type(via)(transport=via.transport, host=via.host, port=via.port, params=params)))
        for value in values[1:]:
            request.headers.add("Via", value)

    @staticmethod
    def _transaction_key(request: SipRequest, method: str) -> tuple[str, ...]:
        via = request.vias[0]
        branch = via.branch or ""
        sent_by = f"{via.sent_by[0]}:{via.sent_by[1]}"
        if branch.startswith(BRANCH_COOKIE):
            return (branch, sent_by, method)
        # RFC 2543 peers have no unique branch; match on the dialog and sequence fields instead.
        return (request.call_id, request.from_.tag or "", str(request.cseq.number), sent_by, method)

    def _response(
        self,
        request: SipRequest,
        status: int,
        reason: str | None = None,
        *,
        to_tag: str | None = None,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
        warning: str | None = None,
    ) -> SipResponse:
        extra = [("Server", self.config.server_name)] + list(headers or [])
        if warning is not None:
            extra.append(("Warning", f"399 {self.config.host} {self._warning_text(warning)}"))
        if to_tag is None and request.to.tag is None and status > 100:
            to_tag = new_tag()
        return make_response(request, status, reason, to_tag=to_tag, headers=extra, body=body)

    def _send_via_transaction(
        self, request: SipRequest, response: SipResponse, source: Address, transport: str, now: float
    ) -> list[Action]:
        key = self._transaction_key(request, request.method)
        transaction = self._server_tx.get(key)
        if transaction is None:
            address = self._response_address(request, source, transport)
            cls = ServerInviteTransaction if request.method == "INVITE" else ServerNonInviteTransaction
            transaction = cls(request=request, address=address, transport=transport, timers=self.config.timers)
            self._server_tx[key] = transaction
        return transaction.respond(response, now)

    def _on_request(self, request: SipRequest, source: Address, transport: str, now: float) -> list[Action]:
        self._mark_received(request, source)
        method = request.method
        key = self._transaction_key(request, "INVITE" if method == "ACK" else method)
        existing = self._server_tx.get(key)
        if existing is not None and not existing.terminated:
            if method != "ACK" or existing.state is State.COMPLETED:
                return existing.on_request(request, now)
        if method == "ACK":
            return self._on_ack(request, now)
        if method == "CANCEL":
            return self._on_cancel(request, source, transport, now)

        def reply(status: int, **kwargs: object) -> list[Action]:
            response = self._response(request, status, **kwargs)  # type: ignore[arg-type]
            return self._send_via_transaction(request, response, source, transport, now)

        allow = ("Allow", ", ".join(ALLOWED_METHODS))
        if method not in ALLOWED_METHODS:
            return reply(405, headers=[allow])
        required = [
            tag.strip() for value in request.headers.get_all("Require") for tag in value.split(",") if tag.strip()
        ]
        unsupported = [tag for tag in required if tag not in SUPPORTED_EXTENSIONS]
        if unsupported:
            return reply(420, headers=[("Unsupported", ", ".join(unsupported))])
        if method == "OPTIONS":
            return reply(200, headers=self._capability_headers())
        if request.to.tag is None:
            if method == "INVITE":
                return self._on_new_invite(request, source, transport, now, reply)
            return reply(481)
        call = self.calls.get(request.call_id)
        if call is None or call.ended or request.to.tag != call.dialog.local_tag:
            return reply(481)
        if call.dialog.remote_cseq is not None and request.cseq.number < call.dialog.remote_cseq:
            return reply(500, reason="CSeq Out Of Order", headers=[("Retry-After", "1")])
        call.dialog.remote_cseq = request.cseq.number
        if method == "BYE":
            return self._on_bye(call, request, now, reply)
        if method == "INVITE":
            return self._on_reinvite(call, request, source, transport, now, reply)
        if method == "INFO":
            return self._on_info(call, request, reply)
        return self._on_notify(call, request, reply)

    def _capability_headers(self) -> list[tuple[str, str]]:
        return [
            ("Allow", ", ".join(ALLOWED_METHODS)),
            ("Accept", "application/sdp"),
            ("Accept-Encoding", "identity"),
            ("Accept-Language", "en"),
        ]

    def _check_sdp_body(self, request: SipRequest) -> sdp.SessionDescription | None:
        """Parse an INVITE body; raise SipError 415 for a body that is not plain SDP."""
        if not request.body:
            return None
        encodings = [e.strip().lower() for e in request.headers.get_all("Content-Encoding")]
        if request.content_type != "application/sdp" or any(e != "identity" for e in encodings):
            raise SipError(
                f"body of type {request.content_type or 'none'!r} is not supported; send application/sdp",
                status=415,
                reason="Unsupported Media Type",
            )
        return sdp.parse_sdp(request.body)

    def _negotiate(self, call_offer: sdp.SessionDescription, call: Call | None, rtp: Address) -> tuple[
        sdp.SessionDescription, sdp.MediaSelection
    ]:
        return sdp.answer_offer(
            call_offer,
            address=rtp[0],
            port=rtp[1],
            session_id=call.session_id if call else 0,
            session_version=call.session_version if call else 0,
            codecs=self.config.codecs,
            prefer_offer_order=self.config.prefer_offer_order,
            telephone_event=self.config.telephone_event,
            ptime_ms=self.config.ptime_ms,
            username=self.config.user,
        )

    def _on_new_invite(
        self, request: SipRequest, source: Address, transport: str, now: float, reply: Callable[..., list[Action]]
    ) -> list[Action]:
        if request.call_id in self.calls:
            # Same Call-ID without a To tag and a new branch: a merged or looped request
            # (RFC 3261 section 8.2.2.2).
            return reply(482)
        digest = self.config.digest
        if digest is not None:
            authorised, stale = digest.verify(request, now)
            if not authorised:
                return reply(digest.status, headers=[(digest.challenge_header, digest.challenge(now, stale=stale))])
        if self.config.capacity_available is not None and not self.config.capacity_available():
            logger.warning("rejected a new call with 503: capacity_available() returned False")
            return reply(503, headers=[("Retry-After", str(self.config.retry_after_s))])
        offer = self._check_sdp_body(request)
        media = None
        if offer is not None:
            # Negotiate now to reject an impossible offer with 488 before the application sees
            # it; the answer is rebuilt with the real RTP port in answer().
            _, media = self._negotiate(offer, None, (self.config.host, 9))
        dialog = Dialog.as_uas(request, local_tag=new_tag(), source=source, transport=transport)
        call = Call(call_id=request.call_id, inbound=True, dialog=dialog, invite=request, offer=offer, media=media)
        actions = reply(100)
        call.server_tx = self._server_tx[self._transaction_key(request, "INVITE")]  # type: ignore[assignment]
        self.calls[call.call_id] = call
        logger.info("incoming call %s from %s", call.call_id, source[0])
        actions.append(
            IncomingCall(
                call_id=call.call_id,
                offer=offer,
                media=media,
                from_uri=str(request.from_.uri),
                to_uri=str(request.to.uri),
                headers=tuple(request.headers),
                source=source,
                transport=transport,
            )
        )
        return actions

    def _contact(self, transport: str) -> str:
        suffix = "" if transport.upper() == "UDP" else f";transport={transport.lower()}"
        return f"<sip:{self.config.user}@{self.config.host}:{self.config.port}{suffix}>"

    def _dialog_response(self, call: Call, request: SipRequest, status: int, body: bytes = b"") -> SipResponse:
        headers = [("Contact", self._contact(call.dialog.transport))]
        if 200 <= status < 300:
            headers += [("Allow", ", ".join(ALLOWED_METHODS)), ("Supported", "")]
            headers = [(n, v) for n, v in headers if v]
        if request is call.invite:
            headers += [("Record-Route", value) for value in request.headers.get_all("Record-Route")]
        if body:
            headers.append(("Content-Type", "application/sdp"))
        return self._response(request, status, to_tag=call.dialog.local_tag, headers=headers, body=body)

    # Application API for inbound calls.

    def ring(self, call_id: str, *, now: float, status: int = 180) -> list[Action]:
        """Send a provisional response (180 Ringing by default) for an unanswered inbound call."""
        call = self.calls.get(call_id)
        if call is None or call.ended or call.server_tx is None or call.server_tx.final_sent:
            return []
        return call.server_tx.respond(self._dialog_response(call, call.invite, status), now)

    def answer(self, call_id: str, *, rtp_address: Address, now: float) -> list[Action]:
        """Accept an inbound call with 200 OK whose SDP names our RTP `rtp_address` (host, port)."""
        call = self.calls.get(call_id)
        if call is None or call.ended or call.server_tx is None or call.server_tx.final_sent:
            logger.debug("answer(%s) ignored: the call has ended or was answered", call_id)
            return []
        call.local_rtp = rtp_address
        if call.offer is not None:
            call.local_sdp, call.media = self._negotiate(call.offer, call, rtp_address)
        else:
            call.local_sdp = self._local_offer(call, "sendrecv")
            call.offer_in_ok = True
        response = self._dialog_response(call, call.invite, 200, body=call.local_sdp.to_bytes())
        logger.info("answered call %s", call_id)
        return self._send_ok(call, response, call.server_tx, now)

    def _local_offer(self, call: Call, direction: str) -> sdp.SessionDescription:
        assert call.local_rtp is not None
        return sdp.create_offer(
            address=call.local_rtp[0],
            port=call.local_rtp[1],
            session_id=call.session_id,
            session_version=call.session_version,
            codecs=self.config.codecs,
            telephone_event_pt=sdp.DEFAULT_TELEPHONE_EVENT_PT if self.config.telephone_event else None,
            direction=direction,
            ptime_ms=self.config.ptime_ms,
            username=self.config.user,
        )

    def _send_ok(self, call: Call, response: SipResponse, transaction: ServerInviteTransaction, now: float) -> list[
        Action
    ]:
        actions = transaction.respond(response, now)
        call.ok_response = response.to_bytes()
        call.ok_cseq = response.cseq.number
        call.ok_interval_s = self.config.timers.t1_s
        if not transaction.reliable:
            call.timers["2xx"] = now + call.ok_interval_s
        call.timers["2xx-timeout"] = now + self.config.timers.timeout_s
        return actions

    def reject(self, call_id: str, *, status: int, now: float, retry_after_s: int | None = None) -> list[Action]:
        """Refuse an unanswered inbound call with a 3xx-6xx `status` (486 Busy Here, 603 Decline ...)."""
        if not 300 <= status <= 699:
            raise ValueError(f"reject status {status} must be a 3xx-6xx final response code")
        call = self.calls.get(call_id)
        if call is None or call.ended or call.server_tx is None or call.server_tx.final_sent:
            return []
        headers = [("Retry-After", str(retry_after_s))] if retry_after_s is not None else []
        response = self._response(call.invite, status, to_tag=call.dialog.local_tag, headers=headers)
        actions = call.server_tx.respond(response, now)
        return actions + self._end(call, REASON_REJECTED, status)

    def _reject_response(self, call: Call, status: int) -> SipResponse:
        return self._response(call.invite, status, to_tag=call.dialog.local_tag)

    def _end(self, call: Call, reason: str, status: int | None = None) -> list[Action]:
        if call.ended:
            return []
        call.ended = True
        call.timers.clear()
        self.calls.pop(call.call_id, None)
        logger.info("call %s ended: %s", call.call_id, reason)
        return [CallEnded(call_id=call.call_id, reason=reason, status=status)]

    # In-dialog requests from the peer.

    def _on_ack(self, request: SipRequest, now: float) -> list[Action]:
        call = self.calls.get(request.call_id)
        if call is None or call.ended or request.to.tag != call.dialog.local_tag:
            return []  # an ACK for nothing we know is dropped (RFC 3261 section 17.2.3)
        if call.ok_response is None or request.cseq.number != call.ok_cseq:
            return []
        call.ok_response = None
        call.timers.pop("2xx", None)
        call.timers.pop("2xx-timeout", None)
        actions: list[Action] = []
        previous = call.media
        if call.offer_in_ok:
            call.offer_in_ok = False
            answer = sdp.parse_sdp(request.body) if request.body else None
            if answer is None or call.local_sdp is None:
                return self._hangup_confirmed(call, now, reason=REASON_REJECTED)
            call.media = sdp.parse_answer(answer, call.local_sdp)
        if not call.confirmed:
            call.confirmed = True
            return [CallAnswered(call_id=call.call_id, media=call.media)]
        if call.media is not None and call.media != previous:
            actions += self._media_events(call, previous)
        return actions

    def _media_events(self, call: Call, previous: sdp.MediaSelection | None) -> list[Action]:
        assert call.media is not None
        events: list[Action] = []
        if _is_on_hold(call.media) != _is_on_hold(previous):
            events.append(
                HoldChanged(call_id=call.call_id, on_hold=call.media.on_hold, direction=call.media.direction,
                            media=call.media)
            )
        keys = ("remote_address", "remote_port", "codec", "payload_type", "telephone_event_pt")
        if previous is None or any(getattr(call.media, k) != getattr(previous, k) for k in keys):
            events.append(MediaChanged(call_id=call.call_id, media=call.media))
        return events

    def _on_cancel(self, request: SipRequest, source: Address, transport: str, now: float) -> list[Action]:
        invite_tx = self._server_tx.get(self._transaction_key(request, "INVITE"))
        if not isinstance(invite_tx, ServerInviteTransaction):
            response = self._response(request, 481)
            return self._send_via_transaction(request, response, source, transport, now)
        call = self.calls.get(request.call_id)
        to_tag = call.dialog.local_tag if call else None
        ok = self._response(request, 200, to_tag=to_tag)
        actions = self._send_via_transaction(request, ok, source, transport, now)
        if invite_tx.final_sent:
            return actions  # the 2xx or error won the race; a BYE ends an answered call
        actions += invite_tx.respond(self._response(invite_tx.request, 487, to_tag=to_tag), now)
        if call is not None:
            actions += self._end(call, REASON_CANCELLED, 487)
        return actions

    def _on_bye(self, call: Call, request: SipRequest, now: float, reply: Callable[..., list[Action]]) -> list[Action]:
        actions = reply(200)
        if call.server_tx is not None and not call.server_tx.final_sent:
            # BYE on an early dialog: the INVITE ends with 487 (RFC 3261 section 15.1.2).
            response = self._response(call.invite, 487, to_tag=call.dialog.local_tag)
            actions += call.server_tx.respond(response, now)
        return actions + self._end(call, REASON_REMOTE_BYE)

    def _on_reinvite(
        self,
        call: Call,
        request: SipRequest,
        source: Address,
        transport: str,
        now: float,
        reply: Callable[..., list[Action]],
    ) -> list[Action]:
        if call.ok_response is not None or call.local_rtp is None or self._invite_pending(call):
            # An INVITE exchange is still open on this dialog (RFC 3261 section 14.2).
            return reply(491)
        offer = self._check_sdp_body(request)
        previous = call.media
        if offer is not None:
            answer_sdp, media = self._negotiate(offer, call, call.local_rtp)
            call.session_version += 1
            answer_sdp.origin.session_version = call.session_version
            call.local_sdp, call.media, call.offer = answer_sdp, media, offer
        else:
            call.session_version += 1
            call.local_sdp = self._local_offer(call, "sendrecv")
            call.offer_in_ok = True
        contact = request.contact
        if contact is not None:
            call.dialog.remote_target = contact.uri
        transaction = ServerInviteTransaction(
            request=request,
            address=self._response_address(request, source, transport),
            transport=transport,
            timers=self.config.timers,
        )
        self._server_tx[self._transaction_key(request, "INVITE")] = transaction
        response = self._dialog_response(call, request, 200, body=call.local_sdp.to_bytes())
        actions = self._send_ok(call, response, transaction, now)
        if offer is not None:
            actions += self._media_events(call, previous) if call.media != previous else []
        return actions

    def _on_info(self, call: Call, request: SipRequest, reply: Callable[..., list[Action]]) -> list[Action]:
        if not request.body:
            return reply(200)
        kind = request.content_type
        text = request.body.decode("utf-8", "replace")
        duration_ms: int | None = None
        if kind == "application/dtmf-relay":
            fields = {}
            for line in text.splitlines():
                name, _, value = line.partition("=")
                fields[name.strip().lower()] = value.strip()
            signal = fields.get("signal", "")
            duration = fields.get("duration", "")
            duration_ms = int(duration) if duration.isdigit() and len(duration) < 7 else None
        elif kind == "application/dtmf":
            signal = text.strip()
        else:
            return reply(415, headers=[("Accept", "application/dtmf-relay, application/dtmf")])
        digit = _DTMF_EVENT_CODES.get(signal, signal.upper())
        if len(digit) != 1 or digit not in DTMF_DIGITS:
            return reply(400, warning="INFO carries no DTMF digit 0-9, *, #, A-D")
        return reply(200) + [DtmfInfo(call_id=call.call_id, digit=digit, duration_ms=duration_ms)]

    def _on_notify(self, call: Call, request: SipRequest, reply: Callable[..., list[Action]]) -> list[Action]:
        event = (request.headers.get("Event") or "").partition(";")[0].strip().lower()
        if event != "refer":
            return reply(489, reason="Bad Event", headers=[("Allow-Events", "refer")])
        match = re.match(r"^SIP/2\.0\s+([1-6]\d\d)\s*([^\r\n]*)", request.body.decode("utf-8", "replace"))
        if request.content_type != "message/sipfrag" or not match:
            return reply(400, warning="NOTIFY for refer needs a message/sipfrag body with a status line")
        state = (request.headers.get("Subscription-State") or "").partition(";")[0].strip().lower()
        status = int(match.group(1))
        final = state == "terminated" or status >= 200
        return reply(200) + [ReferResult(call_id=call.call_id, status=status, reason=match.group(2), final=final)]

    # Timers.

    def next_deadline(self) -> float | None:
        """Earliest time `tick()` has work to do, or None when no timer runs."""
        deadlines = [d for tx in self._server_tx.values() for d in tx.timers.values()]
        deadlines += [d for tx in self._client_tx.values() for d in tx.timers.values()]
        deadlines += [d for call in self.calls.values() for d in call.timers.values()]
        return min(deadlines, default=None)

    def tick(self, now: float) -> list[Action]:
        """Fire every timer whose deadline is at or before `now`."""
        actions: list[Action] = []
        for key, transaction in list(self._server_tx.items()):
            for name, deadline in sorted(transaction.timers.items(), key=lambda item: item[1]):
                if deadline <= now:
                    actions += transaction.on_timer(name, now)
            if transaction.terminated:
                del self._server_tx[key]
        for call in list(self.calls.values()):
            actions += self._call_timers(call, now)
        actions += self._client_timers(now)
        return actions

    def _call_timers(self, call: Call, now: float) -> list[Action]:
        timeout = call.timers.get("2xx-timeout")
        if timeout is not None and timeout <= now:
            # No ACK for 64*T1: the dialog is confirmed but the session ends (section 13.3.1.4).
            logger.warning("call %s: no ACK for the 2xx within %.1f s; sending BYE", call.call_id,
                           self.config.timers.timeout_s)
            call.ok_response = None
            return self._hangup_confirmed(call, now, reason=REASON_ACK_TIMEOUT)
        retransmit = call.timers.get("2xx")
        if retransmit is None or retransmit > now or call.ok_response is None:
            return []
        call.ok_interval_s = min(2 * call.ok_interval_s, self.config.timers.t2_s)
        call.timers["2xx"] = now + call.ok_interval_s
        address = call.server_tx.address if call.server_tx else call.dialog.fallback_address
        return [SendMessage(data=call.ok_response, address=address, transport=call.dialog.transport)]

    def _hangup_confirmed(self, call: Call, now: float, *, reason: str = REASON_LOCAL_BYE) -> list[Action]:
        actions = self._send_in_dialog(call, "BYE", now, purpose="bye")
        return actions + self._end(call, reason)

