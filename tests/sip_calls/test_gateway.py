"""Whole SIP calls: sipp as the caller, the gateway with the real services (Whisper, Smart Turn, FAQ, espeak-ng, Redis)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from telephony.gateway import SipGateway
from tests.sip_calls import harness
from tests.sip_calls.conftest import Ports
from tests.sip_calls.harness import Sipp, bye, capture, invite, pause, play, reinvite, scenario, wait_until
from voicebot.services import Services

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]


def caller(tmp_path: Path, ports: Ports, gateway: SipGateway, xml: str, **kwargs: object) -> Sipp:
    return Sipp(tmp_path, xml, name="caller", media_port=ports.caller_media, local_port=ports.caller_sip,
                target_port=gateway.port, **kwargs)  # type: ignore[arg-type]


async def test_faq_call_gets_spoken_answer(
    gateway_factory, ports: Ports, caller_pcap, greeting_s: float, tmp_path: Path, services: Services
):
    """A caller clip played by sipp over RTP gets a voiced answer of several seconds after it ends."""
    gateway = await gateway_factory()
    pcap, clip_s = caller_pcap("faq_annual_fee")
    xml = scenario("faq", invite(), pause(int(greeting_s * 1000) + 800), play(pcap),
                   pause(int(clip_s * 1000) + 12000), bye(cseq=2))
    sipp = caller(tmp_path, ports, gateway, xml)
    async with capture(tmp_path / "faq.pcap", ports=[ports.caller_media]) as path:
        await sipp.start()
        result = await sipp.wait()
    assert result.returncode == 0, result.output
    frames = harness.rtp_frames(harness.read_capture(path))
    caller_frames = [f for f in frames if f.source_port == ports.caller_media]
    bot_frames = [f for f in frames if f.destination_port == ports.caller_media]
    assert caller_frames, "sipp sent no RTP"
    assert bot_frames, "the bot sent no RTP"
    caller_end = harness.voiced_spans(caller_frames)[-1][1]
    bot_spans = harness.voiced_spans(bot_frames)
    greeting = bot_spans[0]
    assert greeting[1] - greeting[0] > 2.0, bot_spans
    answers = [span for span in bot_spans if span[0] > caller_end]
    assert answers, f"no bot speech after the caller's clip: {bot_spans}"
    answer_s = sum(end - start for start, end in answers)
    assert answer_s > 2.0, answers
    voiced = [f.rms for f in bot_frames if answers[0][0] <= f.time_s <= answers[-1][1]]
    assert sum(voiced) / len(voiced) > harness.VOICED_RMS
    assert await wait_until(lambda: not gateway.calls)


async def test_rfc4733_dtmf_reaches_dialog(gateway_factory, ports: Ports, pcap_dir: Path, tmp_path: Path,
                                          services: Services):
    """Key presses sent as RFC 4733 events by sipp become one keypad turn in the call record."""
    gateway = await gateway_factory()
    pcap = pcap_dir / "dtmf_12hash.pcap"
    harness.dtmf_pcap(pcap, "12#")
    xml = scenario("dtmf", invite(), pause(1000), play(pcap), pause(3000), bye(cseq=2))
    sipp = caller(tmp_path, ports, gateway, xml)
    await sipp.start()
    assert await wait_until(lambda: bool(gateway.calls))
    call_id = next(iter(gateway.calls.values())).call_id
    result = await sipp.wait()
    assert result.returncode == 0, result.output
    assert await wait_until(lambda: not gateway.calls)
    turns = await services.store.list_turns(call_id)
    caller_texts = [t.text for t in turns if t.role == "caller"]
    assert caller_texts == ["[DTMF 2 digits]"]


async def test_sip_info_dtmf_reaches_dialog(gateway_factory, ports: Ports, tmp_path: Path, services: Services):
    """Key presses sent by sipp as SIP INFO (dtmf-relay and dtmf bodies) become one keypad turn in the call record."""
    gateway = await gateway_factory()
    # "#" goes as Signal=11, the RFC 4733 event code some PBXes put into dtmf-relay bodies.
    presses = [
        harness.info_dtmf(digit_body="Signal=1\nDuration=160\n", content_type="application/dtmf-relay", cseq=2),
        harness.info_dtmf(digit_body="2\n", content_type="application/dtmf", cseq=3),
        harness.info_dtmf(digit_body="Signal=11\nDuration=160\n", content_type="application/dtmf-relay", cseq=4),
    ]
    steps = [invite(), pause(1000)]
    for press in presses:
        steps += [press, pause(300)]
    xml = scenario("info-dtmf", *steps, pause(3000), bye(cseq=5))
    sipp = caller(tmp_path, ports, gateway, xml)
    await sipp.start()
    assert await wait_until(lambda: bool(gateway.calls))
    call_id = next(iter(gateway.calls.values())).call_id
    result = await sipp.wait()
    assert result.returncode == 0, result.output
    assert await wait_until(lambda: not gateway.calls)
    turns = await services.store.list_turns(call_id)
    caller_texts = [t.text for t in turns if t.role == "caller"]
    assert caller_texts == ["[DTMF 2 digits]"]


async def test_hold_and_unhold_by_reinvite(gateway_factory, ports: Ports, tmp_path: Path):
    """A sendonly re-INVITE stops the bot's RTP; a sendrecv re-INVITE resumes it."""
    gateway = await gateway_factory()
    xml = scenario("hold", invite(), pause(1000), reinvite(direction="sendonly", cseq=2), pause(2000),
                   reinvite(direction="sendrecv", cseq=3), pause(1500), bye(cseq=4))
    sipp = caller(tmp_path, ports, gateway, xml)
    await sipp.start()
    assert await wait_until(lambda: bool(gateway.calls))
    call = next(iter(gateway.calls.values()))
    assert await wait_until(lambda: call.on_hold)
    await asyncio.sleep(0.1)  # a packet being sent at the moment of the hold may still go out
    sent_at_hold = call.rtp.packetizer.packets_sent
    await asyncio.sleep(0.5)
    assert call.rtp.on_hold
    assert call.rtp.packetizer.packets_sent == sent_at_hold
    assert await wait_until(lambda: not call.on_hold)
    await asyncio.sleep(0.5)
    assert call.rtp.packetizer.packets_sent > sent_at_hold
    result = await sipp.wait()
    assert result.returncode == 0, result.output


async def test_caller_hang_up_ends_call(gateway_factory, ports: Ports, tmp_path: Path, services: Services):
    """A BYE during the greeting stops the pipeline, closes RTP and saves the end of the record."""
    gateway = await gateway_factory()
    sipp = caller(tmp_path, ports, gateway, scenario("hangup", invite(), pause(1500), bye(cseq=2)))
    await sipp.start()
    assert await wait_until(lambda: bool(gateway.calls))
    call = next(iter(gateway.calls.values()))
    result = await sipp.wait()
    assert result.returncode == 0, result.output
    await asyncio.wait_for(call.closed.wait(), timeout=10)
    assert not gateway.calls
    record = await services.store.get_call(call.call_id)
    assert record is not None
    assert record.end_reason == "caller_hung_up"
    assert record.call_sid == call.sip_call_id


async def test_cancel_while_ringing(gateway_factory, ports: Ports, tmp_path: Path):
    """A CANCEL during the ring time gets 200 and 487, and the gateway frees the call."""
    gateway = await gateway_factory(ring_s=2.0)
    sipp = caller(tmp_path, ports, gateway, scenario("cancel", harness.cancel_after_ringing()))
    await sipp.start()
    result = await sipp.wait()
    assert result.returncode == 0, result.output
    assert await wait_until(lambda: not gateway.calls)


async def test_no_common_codec_gets_488(gateway_factory, ports: Ports, tmp_path: Path):
    """An offer with only G.729 is rejected with 488 and no call is created."""
    gateway = await gateway_factory()
    xml = scenario("codec", invite(payload_types="18", expect="488"))
    sipp = caller(tmp_path, ports, gateway, xml)
    await sipp.start()
    result = await sipp.wait()
    assert result.returncode == 0, result.output
    assert not gateway.calls
