"""Transfers of a SIP call to a person: blind (REFER to a queue) and warm (consult call, whisper, connect).

A warm transfer connects the caller to the rep in one of two ways (`warm_transfer_connect`):

- "bridge" (the default): the gateway relays the two legs' media. The caller's PBX then needs
  no REFER support, and the bot can take the call back if the rep's leg fails at any point.
  The cost is that the audio keeps flowing through the gateway (one decode and encode per
  direction) until one side hangs up.
- "replaces": the attended transfer of RFC 5589. A REFER to the caller carries
  `Refer-To: <rep-uri?Replaces=...>` naming the consult dialog (RFC 3891), so the caller's
  side calls the rep and the rep's UA swaps the bot's leg for the new one. The gateway hangs
  up its legs once a NOTIFY reports 200. When the caller's side rejects the REFER, reports a
  failure or does not finish within `refer_timeout_s`, the gateway bridges the media instead,
  so the transfer still happens.

The handoff headers are on the consult INVITE in both cases.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import soxr

from telephony.gateway.handoff import (
    HANDOFF_ID_HEADER,
    REASON_HEADER,
    build_context,
    header_reason,
    new_handoff_id,
)
from telephony.rtp.sender import RtpPacketizer
from telephony.rtp.session import RtpSession, RtpSessionClosedError
from telephony.sip.errors import SipError
from telephony.sip.events import CallAnswered, CallEnded, CallProgress, Event, ReferResult
from telephony.sip.message import parse_uri
from voicebot.errors import KnowledgeBaseError, OverloadedError, UpstreamError
from voicebot.handoff.models import REASON_LABELS

if TYPE_CHECKING:
    from telephony.gateway.gateway import SipGateway
    from telephony.gateway.session import SipCall
    from voicebot.pipeline.dialog import HandoffRequestInfo

logger = logging.getLogger(__name__)

# Spoken when a transfer fails and no `transfer_failed` message is configured.
TRANSFER_FAILED_FALLBACK = {
    "zh": "抱歉，人工客服暂时无法接通。我会继续为您服务，请问还有什么可以帮您？",
    "yue": "唔好意思，人工客服暂时未能接通。我会继续为你服务，请问仲有咩可以帮到你？",
    "en": "Sorry, no agent is available right now. I can keep helping you. What else can I do for you?",
}
LANGUAGE_NAMES = {"zh": "普通话", "yue": "粤语", "en": "英语"}
EVENT_QUEUE_SIZE = 32
WHISPER_RATE_HZ = 8000
# Wait after the whisper's last frame is sent, so the rep's jitter buffer plays it out before the caller speaks.
WHISPER_TAIL_S = 0.3


@dataclass
class ConsultLeg:
    """The bot's outbound call to a rep: its RTP session and the SIP events of its dialog."""

    call_id: str
    rtp: RtpSession
    events: asyncio.Queue[Event] = field(default_factory=lambda: asyncio.Queue(maxsize=EVENT_QUEUE_SIZE))
    # Set by the RTP send task once the whisper's last frame has been sent.
    whisper_sent: asyncio.Event = field(default_factory=asyncio.Event)
    ended: bool = False
    # The caller's call once the legs are bridged; the rep hanging up then ends it too.
    bridged_call: SipCall | None = None


def transfer_failed_text(call: SipCall) -> str:
    messages = call.services.messages
    if "transfer_failed" in messages.keys():
        return messages.render("transfer_failed", call.language)
    return TRANSFER_FAILED_FALLBACK.get(call.language, TRANSFER_FAILED_FALLBACK["zh"])


def whisper_text(info: HandoffRequestInfo) -> str:
    """Return the summary the rep hears before the caller is connected; it carries no personal data."""
    reason = REASON_LABELS.get(info.reason, info.reason)
    language = LANGUAGE_NAMES.get(info.language, info.language)
    return f"转接来电：{reason}，{language}。"


async def run_transfer(gateway: SipGateway, call: SipCall, info: HandoffRequestInfo) -> None:
    """Hand `call` to a person as the settings say; on failure the caller hears a message and the bot carries on."""
    settings = gateway.settings
    handoff_id = new_handoff_id()
    mode = settings.transfer_mode
    context = build_context(handoff_id, info, sip_call_id=call.sip_call_id, mode=mode)
    try:
        await gateway.handoffs.save(context)
    except UpstreamError as e:
        # The transfer still goes ahead: a rep without the context is better than no rep.
        logger.error("handoff %s: context not stored: %s", handoff_id, e, extra={"call_id": call.call_id})
    headers = [(HANDOFF_ID_HEADER, handoff_id), (REASON_HEADER, header_reason(info.reason))]
    logger.info("handoff %s: %s transfer, reason %s", handoff_id, mode, header_reason(info.reason),
                extra={"call_id": call.call_id})
    if mode == "warm" and settings.rep_uris:
        done = await warm_transfer(gateway, call, info, headers=headers)
    elif settings.queue_uri:
        done = await blind_transfer(gateway, call, headers=headers)
    else:
        logger.error("handoff %s: no transfer target; set VOICEBOT_SIP_QUEUE_URI or VOICEBOT_SIP_REP_URIS",
                     handoff_id, extra={"call_id": call.call_id})
        done = False
    if not done:
        await call.say(transfer_failed_text(call))


async def blind_transfer(gateway: SipGateway, call: SipCall, *, headers: list[tuple[str, str]]) -> bool:
    """REFER the caller to the queue URI; on a final NOTIFY 2xx send BYE (RFC 5589) and return True."""
    settings = gateway.settings
    assert settings.queue_uri is not None
    # URI headers in Refer-To are copied into the INVITE the caller's side sends (RFC 3515 section 2.1).
    separator = "&" if "?" in settings.queue_uri else "?"
    target = settings.queue_uri + separator + "&".join(f"{name}={value}" for name, value in headers)
    _drain_refer_results(call)
    gateway.execute(gateway.agent.refer(call.sip_call_id, target=target, headers=headers, now=gateway.now()))
    result = await _await_refer_result(call, timeout_s=settings.refer_timeout_s, label="blind transfer")
    if result is None or not 200 <= result.status < 300:
        return False
    call.hang_up("transferred")
    return True


def _drain_refer_results(call: SipCall) -> None:
    """Drop results of an earlier REFER of this call, so the next wait gets only the new one's."""
    while not call.refer_results.empty():
        call.refer_results.get_nowait()


async def _await_refer_result(call: SipCall, *, timeout_s: float, label: str) -> ReferResult | None:
    """Return the final result of the REFER in progress (response >= 300 or the last NOTIFY), or None on timeout."""
    extra = {"call_id": call.call_id}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        try:
            result = await asyncio.wait_for(call.refer_results.get(), timeout=max(0.0, deadline - loop.time()))
        except asyncio.TimeoutError:
            logger.warning("%s: no final NOTIFY within %.0f s", label, timeout_s, extra=extra)
            return None
        logger.info("%s progress: %d %s", label, result.status, "final" if result.final else "", extra=extra)
        if result.final:
            return result


async def warm_transfer(
    gateway: SipGateway, call: SipCall, info: HandoffRequestInfo, *, headers: list[tuple[str, str]]
) -> bool:
    """Call a rep, whisper the summary to the rep only, then connect the caller to the rep; False if not reached."""
    settings = gateway.settings
    rep_uri = gateway.next_rep_uri()
    uri = parse_uri(rep_uri)
    destination = (uri.host, uri.port or 5060)
    whisper_sent = asyncio.Event()
    rtp = RtpSession(local_host=settings.host, port_range=settings.rtp_port_range,
                     on_mark=lambda name: whisper_sent.set())
    await rtp.start()
    consult_id, actions = gateway.agent.call(
        rep_uri, destination=destination, rtp_address=rtp.local_address, now=gateway.now(), headers=headers
    )
    leg = ConsultLeg(call_id=consult_id, rtp=rtp, whisper_sent=whisper_sent)
    gateway.register_consult(leg)
    gateway.execute(actions)
    extra = {"call_id": call.call_id}
    try:
        answered = await _await_answer(gateway, leg, timeout_s=settings.consult_timeout_s, extra=extra)
        if answered is None:
            await _close_leg(gateway, leg)
            return False
        if answered.media is not None:
            rtp.set_remote(answered.media.remote_address, answered.media.remote_port)
            rtp.packetizer = RtpPacketizer(
                payload_type=answered.media.payload_type,
                telephone_event_payload_type=answered.media.telephone_event_pt or 101,
            )
        await _whisper(gateway, leg, whisper_text(info), language=info.language)
        if leg.ended:
            logger.info("the rep hung up during the whisper", extra=extra)
            await _close_leg(gateway, leg)
            return False
        if call.end_reason is not None:
            await _close_leg(gateway, leg)  # the caller hung up during the whisper
            return True
        if settings.warm_transfer_connect == "replaces":
            outcome = await _transfer_by_replaces(gateway, call, leg, rep_uri=rep_uri, extra=extra)
            if outcome is not None:
                return outcome
        leg.bridged_call = call
        await call.bridge(rtp, reason="transferred")
        call.spawn(_rep_to_caller(gateway, call, leg), name="sip-bridge")
        return True
    except BaseException:
        await _close_leg(gateway, leg)
        raise


async def _transfer_by_replaces(gateway: SipGateway, call: SipCall, leg: ConsultLeg, *, rep_uri: str,
                                extra: dict[str, str]) -> bool | None:
    """Transfer with REFER and Replaces; return True or False as `warm_transfer` does, or None to bridge instead."""
    failure = await _refer_with_replaces(gateway, call, leg, rep_uri=rep_uri)
    if failure is None:
        call.hang_up("transferred")
        await _close_leg(gateway, leg)
        return True
    if call.end_reason is not None:
        await _close_leg(gateway, leg)  # the caller hung up while the REFER was pending
        return True
    if leg.ended:
        logger.warning("REFER with Replaces failed (%s) and the rep's leg has ended; the call returns to the bot",
                       failure, extra=extra)
        await _close_leg(gateway, leg)
        return False
    logger.warning("REFER with Replaces failed (%s); bridging the media instead", failure, extra=extra)
    return None


async def _refer_with_replaces(gateway: SipGateway, call: SipCall, leg: ConsultLeg, *, rep_uri: str) -> str | None:
    """Send the caller a REFER to `rep_uri` that replaces the consult dialog; return None on a NOTIFY 2xx, else why not.

    Replaces names the consult dialog from the rep's side (RFC 3891): the Call-ID, to-tag = the
    rep's tag and from-tag = the bot's tag.
    """
    settings = gateway.settings
    _drain_refer_results(call)
    try:
        actions = gateway.agent.refer(call.sip_call_id, target=rep_uri, replaces_call_id=leg.call_id,
                                      now=gateway.now())
    except SipError as e:
        return f"REFER not sent: {e}"
    if not actions:
        return "REFER not sent: the caller's dialog has ended"
    gateway.execute(actions)
    result = await _await_refer_result(call, timeout_s=settings.refer_timeout_s, label="REFER with Replaces")
    if result is None:
        return f"no final NOTIFY within {settings.refer_timeout_s:g} s"
    if 200 <= result.status < 300:
        return None
    # Only the status: the reason phrase is peer-controlled text, which the logs leave out.
    return f"the caller's side reported {result.status}"


async def _await_answer(gateway: SipGateway, leg: ConsultLeg, *, timeout_s: float,
                        extra: dict[str, str]) -> CallAnswered | None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        try:
            event = await asyncio.wait_for(leg.events.get(), timeout=max(0.0, deadline - loop.time()))
        except asyncio.TimeoutError:
            logger.info("consult call not answered within %.0f s; cancelling it", timeout_s, extra=extra)
            return None
        if isinstance(event, CallProgress):
            continue
        if isinstance(event, CallAnswered):
            return event
        if isinstance(event, CallEnded):
            logger.info("consult call failed: %s %s", event.reason, event.status, extra=extra)
            return None


async def _whisper(gateway: SipGateway, leg: ConsultLeg, text: str, *, language: str) -> None:
    synthesizer = gateway.services.synthesizer
    pcm = await synthesizer.synthesize(text, language)
    source_rate = getattr(synthesizer, "sample_rate", 16000)
    samples = np.frombuffer(pcm, dtype=np.int16)
    resampled = soxr.resample(samples, source_rate, WHISPER_RATE_HZ) if source_rate != WHISPER_RATE_HZ else samples
    try:
        await leg.rtp.send_audio(np.clip(resampled, -32768, 32767).astype(np.int16).tobytes())
        await leg.rtp.send_mark("whisper-end")
    except RtpSessionClosedError:
        return
    # The send queue drains in real time; the extra seconds cover a rep who holds the call meanwhile.
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(leg.whisper_sent.wait(), timeout=len(resampled) / WHISPER_RATE_HZ + 5.0)
    await asyncio.sleep(WHISPER_TAIL_S)


async def _rep_to_caller(gateway: SipGateway, call: SipCall, leg: ConsultLeg) -> None:
    try:
        async for pcm in leg.rtp.frames():
            try:
                call.rtp.send_audio_nowait(pcm)
            except OverloadedError:
                pass  # the caller's send queue is full only when the clocks drift apart; drop a frame
    finally:
        await _close_leg(gateway, leg)


async def _close_leg(gateway: SipGateway, leg: ConsultLeg) -> None:
    if not leg.ended:
        leg.ended = True
        gateway.execute(gateway.agent.hangup(leg.call_id, now=gateway.now()))
    gateway.forget_consult(leg.call_id)
    await leg.rtp.close()
