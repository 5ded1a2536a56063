"""Transfers of SIP calls: REFER to a queue, and consult calls to a rep that answers or is busy, all against sipp."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from urllib.parse import unquote

import aiohttp
import pytest
from aiohttp import web

from telephony.gateway import SipGateway, add_sip_routes
from tests.sip_calls import harness
from tests.sip_calls.conftest import Ports
from tests.sip_calls.harness import Sipp, accept_refer, bye, capture, invite, pause, play, scenario, wait_until
from voicebot.services import Services

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(150)]


def caller(tmp_path: Path, ports: Ports, gateway: SipGateway, xml: str) -> Sipp:
    return Sipp(tmp_path, xml, name="caller", media_port=ports.caller_media, local_port=ports.caller_sip,
                target_port=gateway.port, timeout_s=90)


def rep(tmp_path: Path, ports: Ports, xml: str) -> Sipp:
    return Sipp(tmp_path, xml, name="rep", media_port=ports.rep_media, local_port=ports.rep_sip,
                target_port=None, timeout_s=90)


async def fetch_handoff(gateway: SipGateway, handoff_id: str) -> tuple[int, dict]:
    app = web.Application()
    add_sip_routes(app, gateway)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/handoffs/{handoff_id}") as response:
                return response.status, await response.json()
    finally:
        await runner.cleanup()


async def test_blind_transfer_refer_accepted(gateway_factory, ports: Ports, caller_pcap, greeting_s: float,
                                             tmp_path: Path):
    """A caller asking for a person gets REFER with handoff headers; after NOTIFY 200 the bot sends BYE."""
    gateway = await gateway_factory(transfer_mode="blind", queue_uri="sip:queue@127.0.0.1:5999")
    pcap, _ = caller_pcap("human_request")
    xml = scenario("refer", invite(), pause(int(greeting_s * 1000) + 800), play(pcap), accept_refer(cseq=2))
    sipp = caller(tmp_path, ports, gateway, xml)
    await sipp.start()
    result = await sipp.wait(timeout_s=120)
    assert result.returncode == 0, result.output
    match = re.search(r"handoff-id ([0-9a-f]{32}) reason (\S+)", result.log)
    assert match, result.log
    status, context = await fetch_handoff(gateway, match.group(1))
    assert status == 200
    assert context["reason"] == match.group(2)
    assert context["mode"] == "blind"
    assert context["language"] == "zh"
    assert [turn["role"] for turn in context["transcript"]][:2] == ["bot", "caller"]
    # sipp exits once it has sent 200 OK for the bot's BYE, and the call's pipeline may still be closing.
    assert await wait_until(lambda: not gateway.calls)


async def test_handoff_endpoint_unknown_id(gateway_factory):
    """An unknown handoff id gets 404 with a message."""
    gateway = await gateway_factory()
    status, body = await fetch_handoff(gateway, "0" * 32)
    assert status == 404
    assert "not found" in body["error"]


async def test_warm_transfer_bridges_rep(gateway_factory, ports: Ports, caller_pcap, greeting_s: float,
                                         tmp_path: Path):
    """A consult call to a rep who answers: the rep hears the whisper, then the caller hears the rep."""
    gateway = await gateway_factory(transfer_mode="warm", rep_uris=(f"sip:rep@127.0.0.1:{ports.rep_sip}",))
    request_pcap, _ = caller_pcap("human_request")
    rep_pcap, rep_clip_s = caller_pcap("faq_late_payment")
    rep_sipp = rep(tmp_path, ports, scenario("rep", harness.rep_answers(pcap=rep_pcap, pause_before_play_ms=9000)))
    caller_xml = scenario("warm", invite(), pause(int(greeting_s * 1000) + 800), play(request_pcap),
                          pause(32000), bye(cseq=2))
    caller_sipp = caller(tmp_path, ports, gateway, caller_xml)
    async with capture(tmp_path / "warm.pcap", ports=[ports.caller_media, ports.rep_media]) as path:
        await rep_sipp.start()
        await caller_sipp.start()
        caller_result = await caller_sipp.wait(timeout_s=120)
        rep_result = await rep_sipp.wait(timeout_s=30)
    assert caller_result.returncode == 0, caller_result.output
    assert rep_result.returncode == 0, rep_result.output
    assert re.search(r"handoff-id [0-9a-f]{32}", rep_result.log), rep_result.log
    frames = harness.rtp_frames(harness.read_capture(path))
    rep_voice = harness.voiced_spans([f for f in frames if f.source_port == ports.rep_media])
    to_rep = harness.voiced_spans([f for f in frames if f.destination_port == ports.rep_media])
    to_caller = harness.voiced_spans([f for f in frames if f.destination_port == ports.caller_media])
    assert rep_voice, "the rep's sipp sent no voiced RTP"
    rep_start, rep_end = rep_voice[0][0], rep_voice[-1][1]
    whisper = [span for span in to_rep if span[1] <= rep_start]
    assert whisper, f"no whisper reached the rep before it spoke: {to_rep}"
    bridged = [span for span in to_caller if rep_start <= span[0] <= rep_end]
    assert bridged, f"the rep's voice did not reach the caller: rep {rep_voice}, caller got {to_caller}"
    assert sum(end - start for start, end in bridged) > rep_clip_s / 2
    assert await wait_until(lambda: not gateway.calls)


async def test_warm_transfer_busy_returns_to_bot(gateway_factory, ports: Ports, caller_pcap, greeting_s: float,
                                                 tmp_path: Path):
    """A rep who answers 486: the caller hears the bot again and the call carries on until the caller's BYE."""
    gateway = await gateway_factory(transfer_mode="warm", rep_uris=(f"sip:rep@127.0.0.1:{ports.rep_sip}",))
    request_pcap, _ = caller_pcap("human_request")
    rep_sipp = rep(tmp_path, ports, scenario("busy", harness.rep_busy()))
    caller_xml = scenario("busy-caller", invite(), pause(int(greeting_s * 1000) + 800), play(request_pcap),
                          pause(24000), bye(cseq=2))
    caller_sipp = caller(tmp_path, ports, gateway, caller_xml)
    async with capture(tmp_path / "busy.pcap", ports=[ports.caller_media, ports.rep_sip]) as path:
        await rep_sipp.start()
        await caller_sipp.start()
        caller_result = await caller_sipp.wait(timeout_s=120)
        rep_result = await rep_sipp.wait(timeout_s=30)
    assert caller_result.returncode == 0, caller_result.output
    assert rep_result.returncode == 0, rep_result.output
    records = harness.read_capture(path)
    busy_at = [t for t, line in harness.sip_messages(records) if line.startswith("SIP/2.0 486")]
    assert busy_at, "no 486 seen"
    to_caller = [f for f in harness.rtp_frames(records) if f.destination_port == ports.caller_media]
    # The failure message can follow the transfer message within a fraction of a second, so
    # voiced frames are counted instead of separate spans.
    voiced_after = [f for f in to_caller if f.time_s > busy_at[0] and f.rms > harness.VOICED_RMS]
    assert len(voiced_after) * 0.02 > 1.5, f"the bot said little after the 486: {len(voiced_after)} voiced frames"


async def test_warm_transfer_replaces_refer_accepted(gateway_factory, ports: Ports, caller_pcap, greeting_s: float,
                                                     tmp_path: Path, services: Services, caplog):
    """With connect "replaces", the caller gets a REFER that replaces the consult call; after NOTIFY 200 the bot leaves."""
    gateway = await gateway_factory(transfer_mode="warm", rep_uris=(f"sip:rep@127.0.0.1:{ports.rep_sip}",),
                                    warm_transfer_connect="replaces")
    request_pcap, _ = caller_pcap("human_request")
    rep_sipp = rep(tmp_path, ports, scenario("rep", harness.rep_answers(pcap=None)))
    caller_xml = scenario("replaces", invite(), pause(int(greeting_s * 1000) + 800), play(request_pcap),
                          harness.accept_replaces_refer(cseq=2))
    caller_sipp = caller(tmp_path, ports, gateway, caller_xml)
    caplog.set_level(logging.INFO, logger="telephony.gateway.transfer")
    await rep_sipp.start()
    await caller_sipp.start()
    assert await wait_until(lambda: bool(gateway.calls))
    call_id = next(iter(gateway.calls.values())).call_id
    caller_result = await caller_sipp.wait(timeout_s=120)
    rep_result = await rep_sipp.wait(timeout_s=30)
    assert caller_result.returncode == 0, caller_result.output
    assert rep_result.returncode == 0, rep_result.output
    assert re.search(r"handoff-id [0-9a-f]{32}", rep_result.log), rep_result.log

    refer = re.search(r"call-id (\S+) to-tag (\S+) from-tag (\S+) referred-by sip:voicebot@", caller_result.log)
    assert refer, caller_result.log
    consult = re.search(r"consult call-id (\S+) bot-tag (\S+) rep-tag (\S+)", rep_result.log)
    assert consult, rep_result.log
    assert unquote(refer.group(1)) == consult.group(1)
    assert refer.group(2) == consult.group(3)
    assert refer.group(3) == consult.group(2)

    assert await wait_until(lambda: not gateway.calls)
    record = await services.store.get_call(call_id)
    assert record is not None
    assert record.end_reason == "transferred"
    assert not any("bridging the media instead" in r.getMessage() for r in caplog.records)


# How the caller's side refuses the REFER: the response, an optional failure NOTIFY after a 202,
# and the words the gateway's log gives as the reason.
REFUSALS = {
    "501-response": ({"status": "501 Not Implemented"}, "501"),
    "603-notify": ({"status": "202 Accepted", "notify_status": "603 Declined"}, "603"),
    "no-notify": ({"status": "202 Accepted"}, "no final NOTIFY"),
}


@pytest.mark.parametrize("refusal", list(REFUSALS))
async def test_warm_transfer_replaces_refused_bridges(gateway_factory, ports: Ports, caller_pcap, greeting_s: float,
                                                      tmp_path: Path, caplog, refusal: str):
    """A caller whose side refuses the REFER (501, a 603 NOTIFY, no NOTIFY) is bridged to the rep, and the reason is logged."""
    refuse_steps, logged_reason = REFUSALS[refusal]
    gateway = await gateway_factory(transfer_mode="warm", rep_uris=(f"sip:rep@127.0.0.1:{ports.rep_sip}",),
                                    warm_transfer_connect="replaces", refer_timeout_s=2.0)
    request_pcap, _ = caller_pcap("human_request")
    rep_pcap, rep_clip_s = caller_pcap("faq_late_payment")
    rep_sipp = rep(tmp_path, ports, scenario("rep", harness.rep_answers(pcap=rep_pcap, pause_before_play_ms=9000)))
    caller_xml = scenario(f"replaces-{refusal}", invite(), pause(int(greeting_s * 1000) + 800), play(request_pcap),
                          harness.refuse_refer(**refuse_steps, cseq=2),
                          pause(9000 + int(rep_clip_s * 1000) + 4000), bye(cseq=3))
    caller_sipp = caller(tmp_path, ports, gateway, caller_xml)
    caplog.set_level(logging.INFO, logger="telephony.gateway.transfer")
    async with capture(tmp_path / f"replaces-{refusal}.pcap", ports=[ports.caller_media, ports.rep_media]) as path:
        await rep_sipp.start()
        await caller_sipp.start()
        caller_result = await caller_sipp.wait(timeout_s=120)
        rep_result = await rep_sipp.wait(timeout_s=30)
    assert caller_result.returncode == 0, caller_result.output
    assert rep_result.returncode == 0, rep_result.output
    fallbacks = [r.getMessage() for r in caplog.records if "bridging the media instead" in r.getMessage()]
    assert len(fallbacks) == 1, [r.getMessage() for r in caplog.records]
    assert logged_reason in fallbacks[0]

    frames = harness.rtp_frames(harness.read_capture(path))
    rep_voice = harness.voiced_spans([f for f in frames if f.source_port == ports.rep_media])
    to_caller = harness.voiced_spans([f for f in frames if f.destination_port == ports.caller_media])
    assert rep_voice, "the rep's sipp sent no voiced RTP"
    rep_start, rep_end = rep_voice[0][0], rep_voice[-1][1]
    bridged = [span for span in to_caller if rep_start <= span[0] <= rep_end]
    assert bridged, f"the rep's voice did not reach the caller: rep {rep_voice}, caller got {to_caller}"
    assert sum(end - start for start, end in bridged) > rep_clip_s / 2
    assert await wait_until(lambda: not gateway.calls)
