"""The SIP gateway: SIP calls in, one `CallPipeline` per call over RTP, transfers out.

`SipGateway` runs a `SipServer` and turns its events into call actions:

- IncomingCall: bind an RTP session on a free even port, send 180, wait `ring_s`, answer
  200 OK with SDP. At `max_calls` the SIP core answers 503 with Retry-After itself.
- CallAnswered (the caller's ACK): start the call record and the pipeline.
- HoldChanged: pause or resume the bot. DtmfInfo: pass the digit on.
- CallEnded (BYE, CANCEL, timeout): stop the pipeline and close RTP within `hangup_timeout_s`.
- ReferResult and the consult call's events: to the transfer in progress (`transfer.py`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import TYPE_CHECKING

from telephony.gateway.handoff import HandoffContextStore
from telephony.gateway.session import SipCall
from telephony.gateway.settings import SipSettings
from telephony.gateway.transfer import ConsultLeg, run_transfer
from telephony.sip import (
    CallAnswered,
    CallEnded,
    CallProgress,
    DigestAuthenticator,
    DtmfInfo,
    Event,
    HoldChanged,
    IncomingCall,
    MediaChanged,
    ReferResult,
    UserAgentConfig,
)
from telephony.sip.events import Action, REASON_CANCELLED, REASON_REMOTE_BYE
from telephony.sip.transport import SipServer
from telephony.sip.uas import SipUserAgent
from voicebot.errors import ConfigError, OverloadedError

if TYPE_CHECKING:
    from voicebot.pipeline.dialog import HandoffRequestInfo
    from voicebot.services import Services

logger = logging.getLogger(__name__)

# SIP core end reasons mapped to the end reasons of the call record.
END_REASONS = {REASON_REMOTE_BYE: "caller_hung_up", REASON_CANCELLED: "cancelled"}
CLOSE_TIMEOUT_S = 5.0


class SipGateway:
    """Answers SIP calls with the voicebot; create it with `start_sip_gateway()`."""

    def __init__(self, services: Services, settings: SipSettings) -> None:
        self.services = services
        self.settings = settings
        self.handoffs = HandoffContextStore(url=services.settings.redis_url, ttl_s=settings.handoff_ttl_s)
        self.language = settings.language or services.settings.default_language
        if self.language not in services.settings.languages:
            raise ConfigError(
                f"SIP language {self.language!r} is not one of {','.join(services.settings.languages)}; "
                "set VOICEBOT_SIP_LANGUAGE to one of them"
            )
        self.calls: dict[str, SipCall] = {}
        self._consults: dict[str, ConsultLeg] = {}
        self._setup_tasks: dict[str, asyncio.Task[None]] = {}
        self._rep_cycle = itertools.cycle(settings.rep_uris) if settings.rep_uris else None
        digest = None
        if settings.digest_users:
            digest = DigestAuthenticator(realm=settings.digest_realm, credentials=dict(settings.digest_users))
        self._server = SipServer(
            config=UserAgentConfig(
                host=settings.host,
                port=settings.port,
                codecs=settings.codecs,
                allowed_networks=settings.allowed_networks,
                digest=digest,
                capacity_available=lambda: len(self.calls) < settings.max_calls,
                retry_after_s=settings.retry_after_s,
            ),
            on_event=self._on_event,
            udp="udp" in settings.transports,
            tcp="tcp" in settings.transports,
        )

    async def start(self) -> None:
        await self._server.start()
        mode = self.settings.transfer_mode
        if mode == "warm":
            mode = f"warm ({self.settings.warm_transfer_connect})"
        logger.info("SIP gateway on %s:%d: max %d calls, %s transfers", self.settings.host, self.port,
                    self.settings.max_calls, mode)

    async def close(self) -> None:
        """Hang up every call, wait for them to close, then stop the SIP server."""
        for task in list(self._setup_tasks.values()):
            task.cancel()
        calls = list(self.calls.values())
        for call in calls:
            call.hang_up("shutdown")
        if calls:
            await asyncio.wait([asyncio.ensure_future(c.closed.wait()) for c in calls], timeout=CLOSE_TIMEOUT_S)
        await self._server.close()
        await self.handoffs.close()

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def agent(self) -> SipUserAgent:
        return self._server.agent

    def now(self) -> float:
        return self._server.now()

    def execute(self, actions: list[Action]) -> None:
        self._server.execute(actions)

    def next_rep_uri(self) -> str:
        """Return the next rep URI, round robin."""
        if self._rep_cycle is None:
            raise ConfigError("warm transfer needs rep URIs; set VOICEBOT_SIP_REP_URIS")
        return next(self._rep_cycle)

    def register_consult(self, leg: ConsultLeg) -> None:
        self._consults[leg.call_id] = leg

    def forget_consult(self, call_id: str) -> None:
        self._consults.pop(call_id, None)

    # Events from the SIP core; this runs on the loop and must not block.

    def _on_event(self, event: Event) -> None:
        leg = self._consults.get(event.call_id)
        if leg is not None:
            self._on_consult_event(leg, event)
            return
        if isinstance(event, IncomingCall):
            self._on_incoming(event)
            return
        call = self.calls.get(event.call_id)
        if call is None:
            return
        if isinstance(event, CallAnswered):
            call.spawn(call.start_pipeline(event.media), name="sip-start")
        elif isinstance(event, CallEnded):
            self._stop_setup(call.sip_call_id)
            call.close(END_REASONS.get(event.reason, event.reason.replace("-", "_")))
        elif isinstance(event, HoldChanged):
            call.apply_media(event.media)
            call.set_hold(event.on_hold)
        elif isinstance(event, MediaChanged):
            call.apply_media(event.media)
        elif isinstance(event, DtmfInfo):
            call.push_digit(event.digit)
        elif isinstance(event, ReferResult):
            try:
                call.refer_results.put_nowait(event)
            except asyncio.QueueFull:
                logger.warning("REFER result dropped: queue full", extra={"call_id": call.call_id})

    def _on_consult_event(self, leg: ConsultLeg, event: Event) -> None:
        if isinstance(event, CallEnded):
            leg.ended = True
            if leg.bridged_call is not None:
                leg.bridged_call.hang_up("rep_hung_up")
        if isinstance(event, (CallAnswered, CallEnded, CallProgress)):
            try:
                leg.events.put_nowait(event)
            except asyncio.QueueFull:
                logger.warning("consult call event dropped: queue full")

    def _on_incoming(self, event: IncomingCall) -> None:
        settings = self.settings
        media = event.media
        call = SipCall(
            self.services,
            incoming=event,
            rtp_options={
                "local_host": settings.host,
                "port_range": settings.rtp_port_range,
                "payload_type": media.payload_type if media is not None else 0,
                "telephone_event_payload_type": (media.telephone_event_pt if media is not None else None) or 101,
            },
            language=self.language,
            centre=settings.centre,
            hangup_timeout_s=settings.hangup_timeout_s,
            send_bye=lambda: self.execute(self.agent.hangup(event.call_id, now=self.now())),
            on_handoff=self._handoff,
            on_closed=self._forget_call,
        )
        self.calls[event.call_id] = call
        task = asyncio.ensure_future(self._answer(call, event))
        task.set_name(f"sip-answer-{call.call_id[:8]}")
        self._setup_tasks[event.call_id] = task
        task.add_done_callback(lambda _: self._setup_tasks.pop(event.call_id, None))

    async def _answer(self, call: SipCall, event: IncomingCall) -> None:
        self.execute(self.agent.ring(event.call_id, now=self.now()))
        try:
            address = await call.rtp.start()
        except (OverloadedError, ConfigError) as e:
            logger.error("SIP call %s rejected with 503: %s", event.call_id, e, extra={"call_id": call.call_id})
            self.execute(self.agent.reject(event.call_id, status=503, now=self.now(),
                                           retry_after_s=self.settings.retry_after_s))
            return
        if event.media is not None:
            call.apply_media(event.media)
        if self.settings.ring_s > 0:
            await asyncio.sleep(self.settings.ring_s)
        self.execute(self.agent.answer(event.call_id, rtp_address=address, now=self.now()))

    def _stop_setup(self, sip_call_id: str) -> None:
        task = self._setup_tasks.pop(sip_call_id, None)
        if task is not None and not task.done():
            task.cancel()

    def _forget_call(self, call: SipCall) -> None:
        self.calls.pop(call.sip_call_id, None)

    async def _handoff(self, call: SipCall, info: HandoffRequestInfo) -> None:
        await run_transfer(self, call, info)


async def start_sip_gateway(services: Services, sip_settings: SipSettings) -> SipGateway:
    """Start the SIP gateway with loaded services; stop it with `await gateway.close()`."""
    gateway = SipGateway(services, sip_settings)
    await gateway.start()
    return gateway
