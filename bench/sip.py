"""Benchmark of concurrent SIP calls: sipp callers, the SIP gateway and the real services on one machine.

Each of N sipp calls waits for the greeting, plays a caller clip over RTP and stays on the line
for the answer. tshark captures the RTP on the loopback, and the latency of each call is measured
on the wire: last voiced caller packet sent → first voiced bot packet after it. The jitter of
the bot's RTP comes from each session's `send_timing` (lateness against the 20 ms grid).

Run: `python -m bench.sip [--calls 20] [--clip faq_annual_fee]`. Needs sipp, tshark (root or
capture rights on lo) and Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from telephony.gateway import SipGateway, SipSettings, start_sip_gateway
from telephony.gateway.session import SipCall
from telephony.rtp.pcap import wav_to_rtp_pcap
from tests.sip_calls import harness
from voicebot.config import Settings
from voicebot.services import load_services

logger = logging.getLogger(__name__)

TARGET_CALLS = 20
TARGET_P95_S = 1.5
RTP_RANGE = (36000, 36999)
CALLER_MEDIA_PORT = 37050
CALLER_SIP_PORT = 37070
# A bot reply counts from the first voiced packet that starts at least this long after the caller's last one.
MIN_GAP_S = 0.05


def _machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {model}, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


async def _watch_calls(gateway: SipGateway, seen: dict[str, SipCall], stop: asyncio.Event) -> None:
    while not stop.is_set():
        seen.update(gateway.calls)
        await asyncio.sleep(0.2)


async def measure(*, calls: int, clip: str) -> str:
    callers = harness.shared_speech_dir() / "callers"
    wav = callers / f"{clip}.wav"
    services = await load_services(Settings(port=0))
    workdir = Path(tempfile.mkdtemp(prefix="bench-sip-"))
    pcap = workdir / f"{clip}.pcap"
    wav_to_rtp_pcap(wav, pcap, payload_type=0)
    clip_s = harness.wav_seconds(wav)
    language = services.settings.default_language
    greeting = await services.synthesizer.synthesize(services.messages.render("greeting", language), language)
    greeting_s = len(greeting) / 2 / getattr(services.synthesizer, "sample_rate", 16000)
    gateway = await start_sip_gateway(
        services, SipSettings(host=harness.HOST, port=0, rtp_port_range=RTP_RANGE, max_calls=calls)
    )
    seen: dict[str, SipCall] = {}
    stop = asyncio.Event()
    watcher = asyncio.create_task(_watch_calls(gateway, seen, stop), name="bench-sip-watch")
    xml = harness.scenario(
        "bench", harness.invite(), harness.pause(int(greeting_s * 1000) + 800), harness.play(pcap),
        harness.pause(int(clip_s * 1000) + 15000), harness.bye(cseq=2),
    )
    sipp = harness.Sipp(workdir, xml, name="callers", media_port=CALLER_MEDIA_PORT, local_port=CALLER_SIP_PORT,
                        target_port=gateway.port, calls=calls, rate=calls, timeout_s=120)
    started = time.monotonic()
    try:
        async with harness.capture(workdir / "bench.pcap", ports=[CALLER_MEDIA_PORT]) as path:
            await sipp.start()
            result = await sipp.wait(timeout_s=180)
    finally:
        stop.set()
        await watcher
        await gateway.close()
        await services.close()
    wall_s = time.monotonic() - started
    frames = harness.rtp_frames(harness.read_capture(path))
    by_port: dict[int, tuple[list[harness.RtpFrame], list[harness.RtpFrame]]] = {}
    for frame in frames:
        if frame.source_port == CALLER_MEDIA_PORT:
            by_port.setdefault(frame.destination_port, ([], []))[0].append(frame)
        elif frame.destination_port == CALLER_MEDIA_PORT:
            by_port.setdefault(frame.source_port, ([], []))[1].append(frame)
    latencies = []
    for caller_frames, bot_frames in by_port.values():
        voiced = [f.time_s for f in caller_frames if f.rms >= harness.VOICED_RMS]
        if not voiced:
            continue
        speech_end = max(voiced) + 0.02
        replies = [f.time_s for f in bot_frames if f.rms >= harness.VOICED_RMS and f.time_s > speech_end + MIN_GAP_S]
        if replies:
            latencies.append(min(replies) - speech_end)
    timings = [call.rtp.send_timing for call in seen.values() if call.rtp.send_timing.packets]
    successful = _successful_calls(result.output)
    lines = [
        "## SIP calls",
        "",
        f"Machine: {_machine()}. Command: `python -m bench.sip --calls {calls} --clip {clip}`.",
        f"{calls} concurrent sipp calls (all started within 1 s), each waits for the {greeting_s:.1f} s greeting,",
        f"plays `{clip}` ({clip_s:.1f} s) over PCMU RTP and stays on the line; wall time {wall_s:.0f} s.",
        "",
        "| metric | value | target |",
        "|---|---|---|",
        f"| calls completed (sipp successful) | {successful if successful is not None else "unknown"} / {calls} | {TARGET_CALLS} |",
        f"| calls with a measured reply | {len(latencies)} / {calls} | |",
    ]
    if latencies:
        p50, p95 = _percentile(latencies, 0.5), _percentile(latencies, 0.95)
        verdict = "met" if p95 < TARGET_P95_S and calls >= TARGET_CALLS else "missed"
        lines += [
            f"| end of speech → first bot audio, p50 | {p50:.2f} s | |",
            f"| end of speech → first bot audio, p95 | {p95:.2f} s | < {TARGET_P95_S} s ({verdict}) |",
            f"| end of speech → first bot audio, max | {max(latencies):.2f} s | |",
        ]
    if timings:
        means = [t.mean_abs_ms for t in timings]
        lines += [
            f"| bot RTP send lateness, median of per-call means | {statistics.median(means):.1f} ms | |",
            f"| bot RTP send lateness, worst packet | {max(t.max_ms for t in timings):.1f} ms | |",
            f"| send-grid restarts (sends > 100 ms late) | {sum(t.grid_restarts for t in timings)} | 0 |",
        ]
    stages = await _stage_latencies(list(seen.values()))
    if stages:
        lines += ["", "Where the time goes (medians over the calls' first caller turn, from the call records):", ""]
        lines += [f"- {name}: {value:.0f} ms" for name, value in stages.items()]
    if result.returncode != 0:
        lines += ["", f"sipp exit code {result.returncode}; see {workdir} for its logs."]
    return "\n".join(lines) + "\n"


def _successful_calls(output: str) -> int | None:
    for line in output.splitlines():
        if line.strip().startswith("Successful call"):
            parts = [p.strip() for p in line.split("|")]
            if len(parts) >= 3 and parts[2].isdigit():
                return int(parts[2])
    return None


async def _stage_latencies(calls: list[SipCall]) -> dict[str, float]:
    # The services are closed by now, so a new store client reads the records.
    from voicebot.callrecord import CallRecordStore

    store = CallRecordStore(url=Settings(port=0).redis_url)
    await store.connect()
    stages: dict[str, list[float]] = {}
    try:
        for call in calls:
            turns = await store.list_turns(call.call_id)
            for turn in turns:
                if turn.role == "caller":
                    for name in ("turn_detect", "asr"):
                        if turn.latency_ms.get(name) is not None:
                            stages.setdefault(name, []).append(turn.latency_ms[name])
                elif turn.role == "bot" and turn.index > 0:
                    for name in ("respond", "end_to_end"):
                        if turn.latency_ms.get(name) is not None:
                            stages.setdefault(name, []).append(turn.latency_ms[name])
    finally:
        await store.close()
    return {name: statistics.median(values) for name, values in stages.items() if values}


def run(*, calls: int = TARGET_CALLS, clip: str = "faq_annual_fee") -> str:
    """Run the benchmark and return its markdown section."""
    return asyncio.run(measure(calls=calls, clip=clip))


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark concurrent SIP calls through the gateway.")
    parser.add_argument("--calls", type=int, default=TARGET_CALLS, help="number of concurrent calls")
    parser.add_argument("--clip", default="faq_annual_fee", help="caller clip name in callers/ (without .wav)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(run(calls=args.calls, clip=args.clip))


if __name__ == "__main__":
    main()
