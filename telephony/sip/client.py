"""Requests the bot sends: BYE, REFER (transfer), CANCEL and INVITE for consult calls.

`ClientMixin` is the client half of `SipUserAgent`: it owns the client transactions and
turns their responses and timeouts into events.
"""

from __future__ import annotations

import logging
import secrets
from urllib.parse import quote as url_quote

from telephony.sip import sdp
from telephony.sip.callstate import Call, UserAgentConfig
from telephony.sip.dialog import Dialog, new_branch, new_tag
from telephony.sip.errors import SipError
from telephony.sip.events import (
    REASON_CANCELLED,
    REASON_LOCAL_BYE,
    REASON_REJECTED,
    REASON_TIMEOUT,
    Action,
    Address,
    CallAnswered,
    CallProgress,
    ReferResult,
    SendMessage,
)
from telephony.sip.message import Headers, NameAddr, SipRequest, SipResponse, parse_uri
from telephony.sip.transaction import ClientInviteTransaction, ClientNonInviteTransaction, State


logger = logging.getLogger(__name__)


class ClientMixin:
    config: UserAgentConfig
    calls: dict[str, Call]

    def __init__(self) -> None:
        self._client_tx: dict[tuple[str, str], ClientInviteTransaction | ClientNonInviteTransaction] = {}
        # Transaction key to (Call-ID, purpose): purpose is "invite", "bye", "refer" or "cancel".
        self._client_purpose: dict[tuple[str, str], tuple[str, str]] = {}
        # Outbound calls the application hung up before the callee answered, kept until the
        # INVITE gets its final response so a late 2xx can be acknowledged and ended with BYE.
        self._ended_invite_calls: dict[str, Call] = {}

    # Provided by SipUserAgent.
    def _end(self, call: Call, reason: str, status: int | None = None) -> list[Action]:
        raise NotImplementedError

    def _contact(self, transport: str) -> str:
        raise NotImplementedError

    def _local_offer(self, call: Call, direction: str) -> sdp.SessionDescription:
        raise NotImplementedError

    def _start(
        self, request: SipRequest, address: Address, transport: str, now: float, call_id: str, purpose: str
    ) -> list[Action]:
        key = (request.vias[0].branch or "", request.method)
        transaction: ClientInviteTransaction | ClientNonInviteTransaction
        cls = ClientInviteTransaction if request.method == "INVITE" else ClientNonInviteTransaction
        transaction = cls(request=request, address=address, transport=transport, timers=self.config.timers, now=now)
        self._client_tx[key] = transaction
        self._client_purpose[key] = (call_id, purpose)
        return transaction.start()

    def _send_in_dialog(
        self,
        call: Call,
        method: str,
        now: float,
        *,
        purpose: str,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> list[Action]:
        request = call.dialog.create_request(
            method,
            via_host=self.config.host,
            via_port=self.config.port,
            contact=self._contact(call.dialog.transport),
            headers=headers,
            body=body,
        )
        return self._start(request, call.dialog.next_hop, call.dialog.transport, now, call.call_id, purpose)

    def _invite_pending(self, call: Call) -> bool:
        for key, (call_id, purpose) in self._client_purpose.items():
            transaction = self._client_tx.get(key)
            if call_id == call.call_id and purpose == "invite" and transaction is not None:
                if transaction.state in (State.CALLING, State.PROCEEDING):
                    return True
        return False

    # Application API.

    def hangup(self, call_id: str, *, now: float) -> list[Action]:
        """End a call: BYE once answered, CANCEL for an outbound call still ringing, 480 for an unanswered inbound call."""
        call = self.calls.get(call_id)
        if call is None or call.ended:
            return []
        if call.inbound and call.server_tx is not None and not call.server_tx.final_sent:
            response = self._reject_response(call, 480)
            return call.server_tx.respond(response, now) + self._end(call, REASON_LOCAL_BYE)
        if not call.inbound and not call.confirmed:
            call.cancel_requested = True
            self._ended_invite_calls[call_id] = call
            actions = self._send_cancel(call, now) if call.provisional_seen else []
            return actions + self._end(call, REASON_CANCELLED)
        call.ok_response = None
        return self._send_in_dialog(call, "BYE", now, purpose="bye") + self._end(call, REASON_LOCAL_BYE)

    def _reject_response(self, call: Call, status: int) -> SipResponse:
        raise NotImplementedError

    def refer(
        self,
        call_id: str,
        *,
        target: str,
        now: float,
        replaces_call_id: str | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> list[Action]:
        """Ask the peer to transfer the call to `target` (a sip: or tel: URI) with REFER (RFC 3515).

        With `replaces_call_id` (the Call-ID of the bot's consult call to the agent) the
        Refer-To carries a Replaces header (RFC 3891) for an attended transfer. `headers` are
        added to the REFER itself.
        Raise SipError if `target` is not a valid URI or the consult call is unknown.
        """
        call = self.calls.get(call_id)
        if call is None or call.ended or not call.confirmed:
            return []
        uri = parse_uri(target)
        refer_to = str(uri)
        if replaces_call_id is not None:
            consult = self.calls.get(replaces_call_id)
            if consult is None or not consult.confirmed:
                raise SipError(f"consult call {replaces_call_id!r} is not established; place it with call() first")
            separator = "&" if "?" in refer_to else "?"
            refer_to += f"{separator}Replaces={url_quote(consult.dialog.replaces_value(), safe='')}"
        refer_headers = [
            ("Refer-To", f"<{refer_to}>"),
            ("Referred-By", f"<sip:{self.config.user}@{self.config.host}:{self.config.port}>"),
        ] + list(headers or [])
        logger.info("call %s: sending REFER", call_id)
        return self._send_in_dialog(call, "REFER", now, purpose="refer", headers=refer_headers)

    def call(
        self,
        target: str,
        *,
        destination: Address,
        rtp_address: Address,
        now: float,
        transport: str = "UDP",
        headers: list[tuple[str, str]] | None = None,
    ) -> tuple[str, list[Action]]:
        """Place an outbound call (a consult call to an agent) and return its Call-ID and actions.

        `destination` is the (host, port) of the PBX or agent; no DNS lookup is made.
        """
        uri = parse_uri(target)
        call_id = f"{secrets.token_hex(12)}@{self.config.host}"
        local = NameAddr(uri=parse_uri(f"sip:{self.config.user}@{self.config.host}:{self.config.port}"))
        request = SipRequest(method="INVITE", uri=uri, headers=Headers())
        request.headers.add("Via", f"SIP/2.0/{transport} {self.config.host}:{self.config.port};branch={new_branch()};rport")
        request.headers.add("Max-Forwards", "70")
        request.headers.add("From", str(local.with_tag(new_tag())))
        request.headers.add("To", str(NameAddr(uri=uri)))
        request.headers.add("Call-ID", call_id)
        request.headers.add("CSeq", "1 INVITE")
        request.headers.add("Contact", self._contact(transport))
        request.headers.add("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, NOTIFY")
        for name, value in headers or []:
            request.headers.add(name, value)
        request.headers.add("Content-Type", "application/sdp")
        dialog = Dialog(
            call_id=call_id,
            local_tag=request.from_.tag or "",
            remote_tag="",
            local_party=local,
            remote_party=NameAddr(uri=uri),
            remote_target=uri,
            transport=transport,
            fallback_address=destination,
        )
        call = Call(call_id=call_id, inbound=False, dialog=dialog, invite=request, offer=None, local_rtp=rtp_address)
        call.local_sdp = self._local_offer(call, "sendrecv")
        call.offer = call.local_sdp
        request.body = call.local_sdp.to_bytes()
        self.calls[call_id] = call
        logger.info("placing outbound call %s", call_id)
        return call_id, self._start(request, destination, transport, now, call_id, "invite")

    def _send_cancel(self, call: Call, now: float) -> list[Action]:
        """Build the CANCEL of our INVITE (RFC 3261 section 9.1): same Via branch, Call-ID, From, To and CSeq number."""
        invite = call.invite
        cancel = SipRequest(method="CANCEL", uri=invite.uri, headers=Headers())
        cancel.headers.add("Via", invite.headers.get_all("Via")[0])
        cancel.headers.add("Max-Forwards", "70")
        for name in ("From", "To", "Call-ID"):
            cancel.headers.add(name, invite.headers.get(name) or "")
        cancel.headers.add("CSeq", f"{invite.cseq.number} CANCEL")
        return self._start(cancel, call.dialog.fallback_address, call.dialog.transport, now, call.call_id, "cancel")

    # Responses.

    def _on_response(self, response: SipResponse, now: float) -> list[Action]:
        via = response.vias[0]
        key = (via.branch or "", response.cseq.method)
        transaction = self._client_tx.get(key)
        if transaction is None:
            return self._stray_2xx(response)
        actions, deliver = transaction.on_response(response, now)
        if not deliver:
            return actions
        call_id, purpose = self._client_purpose.get(key, ("", ""))
        call = self.calls.get(call_id)
        if purpose == "invite":
            if call is None:
                call = self._ended_invite_calls.get(call_id)
            if call is not None:
                actions += self._on_invite_response(call, response, now)
        elif purpose == "refer" and call is not None and response.status >= 200:
            final = response.status >= 300
            actions.append(ReferResult(call_id=call_id, status=response.status, reason=response.reason, final=final))
        return actions

    def _stray_2xx(self, response: SipResponse) -> list[Action]:
        """Acknowledge a retransmitted 2xx whose transaction is gone (RFC 3261 section 13.2.2.4)."""
        call = self.calls.get(response.call_id)
        if call is None or call.inbound or call.ack is None or not 200 <= response.status < 300:
            return []
        if response.cseq.method != "INVITE":
            return []
        return [SendMessage(data=call.ack.to_bytes(), address=call.dialog.next_hop, transport=call.dialog.transport)]

    def _on_invite_response(self, call: Call, response: SipResponse, now: float) -> list[Action]:
        status = response.status
        if status < 200:
            if status == 100:
                return []
            call.provisional_seen = True
            if call.cancel_requested:
                return self._send_cancel(call, now)
            return [] if call.ended else [CallProgress(call_id=call.call_id, status=status, reason=response.reason)]
        if status >= 300:
            self._ended_invite_calls.pop(call.call_id, None)
            reason = REASON_CANCELLED if status == 487 else REASON_REJECTED
            return self._end(call, reason, status)
        if call.ack is not None:
            return [SendMessage(data=call.ack.to_bytes(), address=call.dialog.next_hop, transport=call.dialog.transport)]
        call.dialog = Dialog.as_uac(call.invite, response, destination=call.dialog.fallback_address,
                                    transport=call.dialog.transport)
        call.ack = call.dialog.create_request(
            "ACK", via_host=self.config.host, via_port=self.config.port,
            contact=self._contact(call.dialog.transport), cseq=call.invite.cseq.number,
        )
        actions: list[Action] = [
            SendMessage(data=call.ack.to_bytes(), address=call.dialog.next_hop, transport=call.dialog.transport)
        ]
        if call.cancel_requested or call.ended:
            # The callee answered after we hung up: acknowledge, then end with BYE.
            self._ended_invite_calls.pop(call.call_id, None)
            self.calls[call.call_id] = call
            actions += self._send_in_dialog(call, "BYE", now, purpose="bye")
            self.calls.pop(call.call_id, None)
            return actions
        call.confirmed = True
        if response.body and call.offer is not None:
            try:
                call.media = sdp.parse_answer(sdp.parse_sdp(response.body), call.offer)
            except SipError:
                logger.warning("call %s: the 2xx carries no usable SDP answer; sending BYE", call.call_id)
                return actions + self._send_in_dialog(call, "BYE", now, purpose="bye") + self._end(
                    call, REASON_REJECTED, status
                )
        return actions + [CallAnswered(call_id=call.call_id, media=call.media)]

    def _client_timers(self, now: float) -> list[Action]:
        actions: list[Action] = []
        for key, transaction in list(self._client_tx.items()):
            for name, deadline in sorted(transaction.timers.items(), key=lambda item: item[1]):
                if deadline <= now:
                    actions += transaction.on_timer(name, now)
            if not transaction.terminated:
                continue
            call_id, purpose = self._client_purpose.pop(key, ("", ""))
            del self._client_tx[key]
            if not transaction.timed_out:
                continue
            call = self.calls.get(call_id)
            logger.warning("%s transaction of call %s timed out", transaction.request.method, call_id)
            if purpose == "invite":
                self._ended_invite_calls.pop(call_id, None)
                if call is not None:
                    actions += self._end(call, REASON_TIMEOUT, 408)
            elif purpose == "refer" and call is not None:
                actions.append(ReferResult(call_id=call_id, status=408, reason="Request Timeout", final=True))
            elif purpose == "bye" and call is not None:
                actions += self._end(call, REASON_TIMEOUT, 408)
        return actions
