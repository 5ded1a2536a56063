"""Benchmark of concurrent SIP calls: sipp callers, the SIP gateway and the real services on one machine.

Two traffic shapes:

- realistic (the default): N calls arrive one every `--interval` seconds, so all N are held at
  once when the ramp ends. Each caller waits for the greeting and speaks `--turns` turns, each a
  different caller clip in a per-call random order. After each turn the caller stays silent for
  `--reply-wait` seconds, which covers the longest reply, so it never talks over the bot
  (barge-in would cut the reply short). Then it thinks for a uniform random 2-5 s before its
  next turn.
- burst (`--burst`, the worst case): all N calls start at once and each plays the same clip
  once, so all callers stop speaking at about the same moment and their Whisper requests queue.

Each call is its own sipp process with its own scenario, SIP port and media port, so that the
clip order and think times can differ per call. Think times are drawn here with `--seed`, not
by sipp's random pause, so a run can be repeated with the same traffic.

tshark captures the RTP on the loopback. Each call's caller RTP is split into turns (voiced
segments separated by more than TURN_GAP_S of silence), and each turn's latency is measured on
the wire: end of the last voiced caller packet of the turn → first voiced bot packet after it.
The jitter of the bot's RTP comes from each session's `send_timing` (lateness against the 20 ms
grid), and the per-stage times come from the call records in Redis.

Run: `python -m bench.sip [--calls 20] [--interval 0.5] [--turns 3]` or
`python -m bench.sip --burst [--calls 20] [--clip faq_annual_fee]`. Needs sipp, tshark (root or
capture rights on lo) and Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import errno
import logging
import random
import shlex
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import describe_machine, load_average_text
from tests.sip_calls import harness

logger = logging.getLogger(__name__)

TARGET_CALLS = 20
TARGET_P95_S = 1.5
# Bot RTP ports (the gateway's range) and the callers' fixed ports. Each caller gets a block of
# 4 media ports (sipp may use the port and the next ones for RTCP and video) and one SIP port.
RTP_RANGE = (36000, 36999)
CALLER_MEDIA_BASE = 37100
CALLER_MEDIA_STEP = 4
CALLER_SIP_BASE = 37600
MAX_CALLS = 100
FRAME_S = 0.02
# A bot reply counts from the first voiced packet that starts at least this long after the caller's last one.
MIN_GAP_S = 0.05
# Caller speech separated by more than this much silence is two turns. The clips have pauses of
# well under 1 s inside, and turns of one call are separated by the reply wait.
TURN_GAP_S = 1.5
# Time between the greeting's expected end and the caller's first turn.
AFTER_GREETING_S = 0.8
DEFAULT_CLIPS = (
    "faq_annual_fee",
    "faq_bill_inquiry",
    "faq_points_redemption",
    "faq_late_payment",
    "faq_minimum_payment",
    "faq_installment_fee",
)
DEFAULT_INTERVAL_S = 0.5
DEFAULT_TURNS = 3
DEFAULT_THINK_S = (2.0, 5.0)
# The replies to these six clips play for 7-22 s on the wire (one call speaking all six, on the
# 2-core machine of bench/RESULTS.md), and under load a reply starts a few seconds after the turn.
DEFAULT_REPLY_WAIT_S = 30.0
BURST_CLIP = "faq_annual_fee"
# Long enough for a reply that starts 15 s late and plays 22 s, so that late replies are measured too.
BURST_REPLY_WAIT_S = 40.0
# Stages of one caller turn, in pipeline order. input_lag and output_lag come from pairing the
# wire times with the call records. The other names are keys of TurnRecord.latency_ms, and
# tts_and_rest is end_to_end less turn_detect, asr and respond.
STAGES = ("input_lag", "turn_detect", "asr", "respond", "tts_and_rest", "end_to_end", "output_lag", "wire")


# Traffic plan and sipp scenarios.


@dataclass(frozen=True)
class CallPlan:
    """Traffic of one sipp caller: its start time, the clips it speaks and its think time after each reply."""

    index: int
    start_s: float
    clips: tuple[str, ...]
    think_s: tuple[float, ...]  # one value after each turn but the last


def plan_calls(
    *,
    calls: int,
    clips: Sequence[str],
    turns: int,
    interval_s: float,
    think_s: tuple[float, float],
    seed: int,
) -> list[CallPlan]:
    """Draw each call's start time, clip order and think times.

    Clips do not repeat within a call while there are at least `turns` of them. With fewer
    clips, the call runs through shuffled copies of the list.
    """
    if calls < 1 or turns < 1 or not clips:
        raise ValueError(f"need at least one call, turn and clip, got calls={calls} turns={turns} clips={list(clips)}")
    rng = random.Random(seed)
    plans = []
    for index in range(calls):
        order: list[str] = []
        while len(order) < turns:
            order += rng.sample(list(clips), len(clips))
        thinks = tuple(round(rng.uniform(*think_s), 3) for _ in range(turns - 1))
        plans.append(CallPlan(index, round(index * interval_s, 3), tuple(order[:turns]), thinks))
    return plans


def build_scenario(
    plan: CallPlan, *, pcaps: dict[str, Path], clip_s: dict[str, float], greeting_s: float, reply_wait_s: float
) -> str:
    """Return the sipp scenario XML of one planned call.

    sipp's play_pcap_audio returns at once, so each pause after a play covers the clip, then the reply wait.
    """
    steps = [harness.invite(), harness.pause(round((greeting_s + AFTER_GREETING_S) * 1000))]
    for turn, clip in enumerate(plan.clips):
        steps.append(harness.play(pcaps[clip]))
        steps.append(harness.pause(round((clip_s[clip] + reply_wait_s) * 1000)))
        if turn < len(plan.think_s):
            steps.append(harness.pause(round(plan.think_s[turn] * 1000)))
    steps.append(harness.bye(cseq=2))
    return harness.scenario(f"bench-call-{plan.index:03d}", *steps)


def caller_ports(index: int) -> tuple[int, int]:
    """Return the (SIP port, media port) of caller `index`."""
    return CALLER_SIP_BASE + index, CALLER_MEDIA_BASE + index * CALLER_MEDIA_STEP


def _udp_port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def check_ports_free(calls: int) -> None:
    """Raise RuntimeError naming the busy ports when the callers' ports or too many bot RTP ports are taken."""
    busy = []
    for index in range(calls):
        sip_port, media_port = caller_ports(index)
        busy += [port for port in (sip_port, *range(media_port, media_port + CALLER_MEDIA_STEP)) if not _udp_port_free(port)]
    if busy:
        raise RuntimeError(
            f"UDP ports needed by the sipp callers are in use on 127.0.0.1: {busy[:20]}"
            f"{' ...' if len(busy) > 20 else ''}. Stop what holds them (`ss -lunp`) and run again."
        )
    free_rtp = sum(1 for port in range(RTP_RANGE[0], RTP_RANGE[1] + 1, 2) if _udp_port_free(port))
    if free_rtp < 2 * calls:
        raise RuntimeError(
            f"only {free_rtp} even UDP ports of the bot's RTP range {RTP_RANGE[0]}-{RTP_RANGE[1]} are free on "
            f"127.0.0.1, and {calls} calls need at least {2 * calls}. Stop what holds them (`ss -lunp`) and run again."
        )


# Analysis of the capture.


@dataclass(frozen=True)
class TurnLatency:
    """One caller turn on the wire and the bot's reply to it. Times are capture seconds."""

    call: int
    turn: int
    speech_start_s: float
    speech_end_s: float  # end of the last voiced caller packet of the turn
    reply_start_s: float | None  # first voiced bot packet after the turn, before the caller's next turn
    reply_end_s: float | None  # end of the last voiced bot packet before the caller's next turn

    @property
    def latency_s(self) -> float | None:
        return None if self.reply_start_s is None else self.reply_start_s - self.speech_end_s

    @property
    def reply_s(self) -> float | None:
        if self.reply_start_s is None or self.reply_end_s is None:
            return None
        return self.reply_end_s - self.reply_start_s


def voiced_segments(times_s: Sequence[float], *, max_gap_s: float = TURN_GAP_S) -> list[tuple[float, float]]:
    """Group the send times of voiced 20 ms frames into (start, end) segments.

    A silence longer than `max_gap_s` between two voiced frames starts a new segment. The end
    is the end of the last frame, FRAME_S after its send time.
    """
    segments: list[list[float]] = []
    for time_s in sorted(times_s):
        if segments and time_s - segments[-1][1] <= max_gap_s:
            segments[-1][1] = time_s + FRAME_S
        else:
            segments.append([time_s, time_s + FRAME_S])
    return [(start, end) for start, end in segments]


def measure_turns(
    call: int, caller_voiced_s: Sequence[float], bot_voiced_s: Sequence[float], *, turn_gap_s: float = TURN_GAP_S
) -> list[TurnLatency]:
    """Split one call's voiced caller frames into turns and find the bot's reply to each.

    A reply is the bot audio from MIN_GAP_S after the turn to the start of the caller's next
    turn. A turn with no voiced bot frame in that window has no reply (reply_start_s is None).
    """
    turns = voiced_segments(caller_voiced_s, max_gap_s=turn_gap_s)
    bot = sorted(bot_voiced_s)
    measured = []
    for number, (start, end) in enumerate(turns):
        window_end = turns[number + 1][0] if number + 1 < len(turns) else float("inf")
        reply = [t for t in bot if end + MIN_GAP_S < t < window_end]
        measured.append(
            TurnLatency(
                call=call,
                turn=number,
                speech_start_s=start,
                speech_end_s=end,
                reply_start_s=reply[0] if reply else None,
                reply_end_s=reply[-1] + FRAME_S if reply else None,
            )
        )
    return measured


def percentile(values: Sequence[float], fraction: float) -> float:
    """Return the `fraction` quantile (0-1) of the values, interpolating linearly between the nearest two."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be between 0 and 1, got {fraction}")
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    lower = int(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def successful_calls(output: str) -> int | None:
    """Return the count of sipp's "Successful call" line in its final statistics, or None when missing."""
    for line in output.splitlines():
        if line.strip().startswith("Successful call"):
            parts = [p.strip() for p in line.split("|")]
            if len(parts) >= 3 and parts[2].isdigit():
                return int(parts[2])
    return None


# The run.


@dataclass
class RunResult:
    """Everything one benchmark run measured, before formatting."""

    mode: str
    command: str
    plans: list[CallPlan]
    greeting_s: float
    clip_s: dict[str, float]
    reply_wait_s: float
    think_s: tuple[float, float]
    interval_s: float
    wall_s: float
    load_before: str
    load_after: str
    turns: list[TurnLatency]
    completed: int
    sipp_failures: list[str]
    peak_held: int
    send_timings: list  # telephony.rtp.session.SendTiming of each call that sent audio
    stages: list[dict[str, float]]  # one dict of STAGES in ms per measured turn with a call record
    interrupted_replies: int
    bot_replies: int


async def _watch_calls(gateway, seen: dict, peak: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        seen.update({call.call_id: call for call in gateway.calls.values()})
        peak[0] = max(peak[0], len(gateway.calls))
        await asyncio.sleep(0.1)


async def _run_caller(sipp, start_s: float, timeout_s: float):
    await asyncio.sleep(start_s)
    await sipp.start()
    return await sipp.wait(timeout_s=timeout_s)


async def measure(
    *,
    calls: int,
    burst: bool,
    clips: Sequence[str],
    turns: int,
    interval_s: float,
    think_s: tuple[float, float],
    reply_wait_s: float,
    seed: int,
    command: str,
) -> RunResult:
    """Run one benchmark: start the services and the gateway, place the sipp calls, capture and analyse."""
    from telephony.gateway import SipSettings, start_sip_gateway
    from telephony.rtp.pcap import wav_to_rtp_pcap
    from voicebot.config import Settings
    from voicebot.services import load_services

    if not 1 <= calls <= MAX_CALLS:
        raise ValueError(f"calls must be between 1 and {MAX_CALLS}, got {calls}")
    if harness.SIPP is None or harness.TSHARK is None:
        raise RuntimeError("sipp and tshark must be installed and on PATH (Debian packages sip-tester and tshark)")
    check_ports_free(calls)
    plans = plan_calls(calls=calls, clips=clips, turns=turns, interval_s=interval_s, think_s=think_s, seed=seed)

    workdir = Path(tempfile.mkdtemp(prefix="bench-sip-"))
    callers_dir = harness.shared_speech_dir() / "callers"
    pcaps: dict[str, Path] = {}
    clip_s: dict[str, float] = {}
    for clip in sorted({clip for plan in plans for clip in plan.clips}):
        wav = callers_dir / f"{clip}.wav"
        if not wav.is_file():
            raise FileNotFoundError(f"caller clip {wav} not found; set VOICEBOT_SHARED_SPEECH or pick clips from {callers_dir}")
        pcaps[clip] = workdir / f"{clip}.pcap"
        wav_to_rtp_pcap(wav, pcaps[clip], payload_type=0)
        clip_s[clip] = harness.wav_seconds(wav)

    services = await load_services(Settings(port=0))
    language = services.settings.default_language
    greeting = await services.synthesizer.synthesize(services.messages.render("greeting", language), language)
    greeting_s = len(greeting) / 2 / getattr(services.synthesizer, "sample_rate", 16000)
    gateway = await start_sip_gateway(
        services, SipSettings(host=harness.HOST, port=0, rtp_port_range=RTP_RANGE, max_calls=calls)
    )
    call_s = max(
        greeting_s + AFTER_GREETING_S + sum(clip_s[c] + reply_wait_s for c in plan.clips) + sum(plan.think_s)
        for plan in plans
    )
    timeout_s = int(call_s + 60)
    callers = []
    for plan in plans:
        sip_port, media_port = caller_ports(plan.index)
        xml = build_scenario(plan, pcaps=pcaps, clip_s=clip_s, greeting_s=greeting_s, reply_wait_s=reply_wait_s)
        callers.append(
            harness.Sipp(workdir, xml, name=f"call{plan.index:03d}", media_port=media_port, local_port=sip_port,
                         target_port=gateway.port, calls=1, rate=1, timeout_s=timeout_s)
        )

    seen: dict = {}
    peak = [0]
    stop = asyncio.Event()
    watcher = asyncio.create_task(_watch_calls(gateway, seen, peak, stop), name="bench-sip-watch")
    load_before = load_average_text()
    started = time.monotonic()
    media_ports = (CALLER_MEDIA_BASE, caller_ports(calls - 1)[1] + CALLER_MEDIA_STEP - 1)
    try:
        async with harness.capture(workdir / "bench.pcap", ports=[], port_ranges=[media_ports]) as path:
            results = await asyncio.gather(
                *(_run_caller(sipp, plan.start_s, timeout_s + 30) for sipp, plan in zip(callers, plans))
            )
    finally:
        stop.set()
        await watcher
        await gateway.close()
        await services.close()
    wall_s = time.monotonic() - started
    load_after = load_average_text()

    turns = _turns_from_capture(path, calls)
    completed = 0
    failures = []
    for plan, result in zip(plans, results):
        count = successful_calls(result.output)
        completed += count or 0
        if result.returncode != 0 or not count:
            failures.append(f"call {plan.index}: sipp exit code {result.returncode}, logs in {workdir / f'call{plan.index:03d}'}")
    timings = [call.rtp.send_timing for call in seen.values() if call.rtp.send_timing.packets]
    media_to_call = {caller_ports(index)[1]: index for index in range(calls)}
    call_ids = {
        media_to_call[call.rtp.remote[1]]: call.call_id
        for call in seen.values()
        if call.rtp.remote is not None and call.rtp.remote[1] in media_to_call
    }
    stages, interrupted, replies = await _stage_latencies(call_ids, turns)
    return RunResult(
        mode="burst" if burst else "realistic",
        command=command,
        plans=plans,
        greeting_s=greeting_s,
        clip_s=clip_s,
        reply_wait_s=reply_wait_s,
        think_s=think_s,
        interval_s=interval_s,
        wall_s=wall_s,
        load_before=load_before,
        load_after=load_after,
        turns=turns,
        completed=completed,
        sipp_failures=failures,
        peak_held=peak[0],
        send_timings=timings,
        stages=stages,
        interrupted_replies=interrupted,
        bot_replies=replies,
    )


def _turns_from_capture(path: Path, calls: int) -> list[TurnLatency]:
    media_to_call = {caller_ports(index)[1]: index for index in range(calls)}
    caller_voiced: dict[int, list[float]] = {index: [] for index in range(calls)}
    bot_voiced: dict[int, list[float]] = {index: [] for index in range(calls)}
    for frame in harness.rtp_frames(harness.read_capture(path)):
        if frame.rms < harness.VOICED_RMS:
            continue
        if frame.source_port in media_to_call:
            caller_voiced[media_to_call[frame.source_port]].append(frame.time_s)
        elif frame.destination_port in media_to_call:
            bot_voiced[media_to_call[frame.destination_port]].append(frame.time_s)
    turns = []
    for index in range(calls):
        turns += measure_turns(index, caller_voiced[index], bot_voiced[index])
    return turns


@dataclass(frozen=True)
class CallerRecord:
    """A caller turn from the call record and the stage times of the bot reply recorded after it."""

    speech_ended_at: float  # epoch seconds, when the service's VAD saw the end of speech
    latency_ms: dict[str, float]


def match_records(turns: Sequence[TurnLatency], records: Sequence[CallerRecord]) -> list[dict[str, float]]:
    """Pair one call's wire turns with its caller records and return the STAGES in ms of each pair.

    The service's VAD detects the end of speech after the last caller packet crossed the wire.
    So a turn takes the first unused record that ends at most 0.5 s before the turn's end on
    the wire and before the caller's next turn starts. Turns without a reply or without a
    complete record are left out.
    """
    pairs = []
    used = set()
    for number, turn in enumerate(turns):
        if turn.reply_start_s is None:
            continue
        window_end = turns[number + 1].speech_start_s if number + 1 < len(turns) else float("inf")
        for index, record in enumerate(records):
            if index in used or not turn.speech_end_s - 0.5 <= record.speech_ended_at < window_end:
                continue
            used.add(index)
            latency = record.latency_ms
            if all(latency.get(name) is not None for name in ("turn_detect", "asr", "respond", "end_to_end")):
                service_ms = {name: float(latency[name]) for name in ("turn_detect", "asr", "respond", "end_to_end")}
                sent_at = record.speech_ended_at + service_ms["end_to_end"] / 1000
                pairs.append(
                    {
                        "call": turn.call,
                        "turn": turn.turn,
                        "input_lag": (record.speech_ended_at - turn.speech_end_s) * 1000,
                        **service_ms,
                        "tts_and_rest": service_ms["end_to_end"] - service_ms["turn_detect"] - service_ms["asr"]
                        - service_ms["respond"],
                        "output_lag": (turn.reply_start_s - sent_at) * 1000,
                        "wire": turn.latency_s * 1000,
                    }
                )
            break
    return pairs


async def _stage_latencies(
    call_ids: dict[int, str], turns: Sequence[TurnLatency]
) -> tuple[list[dict[str, float]], int, int]:
    """Read the call records and return the stage times per measured turn, the interrupted and all bot replies.

    `call_ids` maps a caller index to the service's call id. The greeting (bot turn 0) is skipped.
    """
    # The services are closed by now, so a new store client reads the records.
    from voicebot.callrecord import CallRecordStore
    from voicebot.config import Settings

    store = CallRecordStore(url=Settings(port=0).redis_url)
    await store.connect()
    stages: list[dict[str, float]] = []
    interrupted = 0
    replies = 0
    try:
        for index, call_id in sorted(call_ids.items()):
            records = []
            caller_turn = None
            for turn in await store.list_turns(call_id):
                if turn.role == "caller":
                    caller_turn = turn
                    continue
                if turn.index == 0 or caller_turn is None:
                    continue
                replies += 1
                interrupted += int(turn.interrupted)
                if caller_turn.ended_at is not None:
                    records.append(CallerRecord(caller_turn.ended_at, {**caller_turn.latency_ms, **turn.latency_ms}))
                caller_turn = None
            stages += match_records([turn for turn in turns if turn.call == index], records)
    finally:
        await store.close()
    return stages, interrupted, replies


# Markdown.


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _seconds(value: float) -> str:
    return f"{value:.2f} s"


def format_run(result: RunResult, *, title: str) -> str:
    """Return the markdown subsection of one run: traffic, wire latency, jitter and stage times."""
    calls = len(result.plans)
    expected_turns = sum(len(plan.clips) for plan in result.plans)
    latencies = [turn.latency_s for turn in result.turns if turn.latency_s is not None]
    lines = [
        f"### {title}",
        "",
        f"Command: `{result.command}`. Machine: {describe_machine()}.",
        f"Load average (1/5/15 min) before the run {result.load_before}, after it {result.load_after}. "
        f"Wall time {result.wall_s:.0f} s.",
        "",
    ]
    if result.mode == "burst":
        clip = result.plans[0].clips[0]
        lines.append(
            f"Traffic: {_count(calls, 'call')} started at once, each waits for the {result.greeting_s:.1f} s greeting, plays "
            f"`{clip}` ({result.clip_s[clip]:.1f} s) once and stays on the line {result.reply_wait_s:.0f} s for the reply. "
            "All callers stop speaking at about the same moment."
        )
    else:
        turns = len(result.plans[0].clips)
        lines.append(
            f"Traffic: {_count(calls, 'call')} arriving one every {result.interval_s:g} s (the last at "
            f"{result.plans[-1].start_s:g} s), each waits for the {result.greeting_s:.1f} s greeting and speaks "
            f"{turns} turns, clips from {', '.join(f'`{c}`' for c in sorted(result.clip_s))} in a random order per call. "
            f"After each turn the caller stays silent {result.reply_wait_s:.0f} s for the reply, then thinks "
            f"{result.think_s[0]:g}-{result.think_s[1]:g} s (uniform) before the next turn."
        )
    lines += ["", "| measure | value | target |", "|---|---|---|"]
    lines.append(f"| calls completed (sipp successful) | {result.completed} / {calls} | {TARGET_CALLS} |")
    lines.append(f"| peak calls held by the gateway at once | {result.peak_held} | {TARGET_CALLS} |")
    lines.append(f"| caller turns measured (with a bot reply) / expected | {len(latencies)} / {expected_turns} | |")
    if len(result.turns) != expected_turns:
        lines.append(f"| caller turns found on the wire | {len(result.turns)} | {expected_turns} |")
    if latencies:
        p95 = percentile(latencies, 0.95)
        verdict = "met" if p95 < TARGET_P95_S and calls >= TARGET_CALLS and len(latencies) == expected_turns else "missed"
        lines += [
            f"| end of speech → first bot audio, p50 | {_seconds(percentile(latencies, 0.5))} | |",
            f"| end of speech → first bot audio, p95 | {_seconds(p95)} | < {TARGET_P95_S} s at {TARGET_CALLS} calls ({verdict}) |",
            f"| end of speech → first bot audio, max | {_seconds(max(latencies))} | |",
        ]
    replies = [turn.reply_s for turn in result.turns if turn.reply_s is not None]
    if replies:
        lines.append(f"| longest bot reply on the wire | {_seconds(max(replies))} | |")
    lines.append(f"| bot replies cut short by the caller (barge-in) | {result.interrupted_replies} / {result.bot_replies} | 0 |")
    if result.send_timings:
        means = [t.mean_abs_ms for t in result.send_timings]
        lines += [
            f"| bot RTP send lateness, median of per-call means | {statistics.median(means):.1f} ms | |",
            f"| bot RTP send lateness, worst packet other than grid restarts | {max(t.max_ms for t in result.send_timings):.1f} ms | |",
            f"| send-grid restarts (a send > 100 ms late, counted as 0 ms above) | {sum(t.grid_restarts for t in result.send_timings)} | 0 |",
        ]
    lines += _format_stages(result.stages, len(latencies))
    if result.sipp_failures:
        lines += ["", "sipp failures:", ""] + [f"- {failure}" for failure in result.sipp_failures]
    return "\n".join(lines) + "\n"


def _format_stages(stages: list[dict[str, float]], measured: int) -> list[str]:
    if not stages:
        return ["", "No measured turn was matched with a complete call record, so the stage times are missing."]
    # The slowest turns on the wire, so the table shows which stage grows in the tail.
    cutoff = percentile([turn["wire"] for turn in stages], 0.95)
    slow = [turn for turn in stages if turn["wire"] >= cutoff]
    lines = [
        "",
        f"Where the time goes: {len(stages)} of the {measured} measured turns matched with their call record. "
        "input_lag is the wire's end of speech to the service's (receive path, jitter buffer and the WebRTC VAD's "
        "own hangover of about 0.1 s), turn_detect "
        "the end of speech (VAD) to the end of the turn (Smart Turn), asr the end of the turn to the transcript, "
        "respond the dialog, tts_and_rest the rest of end_to_end, which ends at the first bot audio the service "
        "sends. output_lag is from that send to the first voiced bot packet on the wire, and wire is the whole "
        "latency measured above. Stages do not add up across percentiles. The last column is the median over the "
        f"{len(slow)} turns with the wire latency at or above its p95.",
        "",
        "| stage | p50 ms | p95 ms | median of the slowest 5% ms |",
        "|---|---|---|---|",
    ]
    for name in STAGES:
        values = [turn[name] for turn in stages]
        slowest = statistics.median(turn[name] for turn in slow)
        lines.append(f"| {name} | {percentile(values, 0.5):.0f} | {percentile(values, 0.95):.0f} | {slowest:.0f} |")
    return lines


def run_benchmark(
    *,
    calls: int = TARGET_CALLS,
    burst: bool = False,
    clips: Sequence[str] = DEFAULT_CLIPS,
    clip: str = BURST_CLIP,
    turns: int = DEFAULT_TURNS,
    interval_s: float = DEFAULT_INTERVAL_S,
    think_s: tuple[float, float] = DEFAULT_THINK_S,
    reply_wait_s: float | None = None,
    seed: int = 1,
    command: str = "",
) -> RunResult:
    """Run one benchmark in realistic or burst mode and return its measurements."""
    if burst:
        clips, turns, interval_s = (clip,), 1, 0.0
        reply_wait_s = BURST_REPLY_WAIT_S if reply_wait_s is None else reply_wait_s
    else:
        reply_wait_s = DEFAULT_REPLY_WAIT_S if reply_wait_s is None else reply_wait_s
    return asyncio.run(
        measure(
            calls=calls, burst=burst, clips=clips, turns=turns, interval_s=interval_s, think_s=think_s,
            reply_wait_s=reply_wait_s, seed=seed, command=command,
        )
    )


def run() -> str:
    """Run the realistic benchmark and the burst worst case at 20 calls and return the "SIP calls" section."""
    realistic = run_benchmark(command="python -m bench.sip")
    burst = run_benchmark(burst=True, command=f"python -m bench.sip --burst --calls {TARGET_CALLS}")
    return "\n".join(
        [
            "## SIP calls",
            "",
            format_run(realistic, title=f"Realistic traffic, {TARGET_CALLS} calls"),
            format_run(burst, title=f"Worst case: burst of {TARGET_CALLS} calls that all stop speaking together"),
        ]
    )


def _think_range(value: str) -> tuple[float, float]:
    try:
        low, high = (float(part) for part in value.split("-"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid think time {value!r}; expected MIN-MAX in seconds, e.g. 2-5") from None
    if not 0 <= low <= high:
        raise argparse.ArgumentTypeError(f"invalid think time {value!r}; need 0 <= MIN <= MAX")
    return low, high


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sip", description="Benchmark concurrent SIP calls through the gateway.")
    parser.add_argument("--calls", type=int, default=TARGET_CALLS, help=f"number of calls (default {TARGET_CALLS})")
    parser.add_argument("--burst", action="store_true",
                        help="worst case: start all calls at once, each plays --clip once")
    parser.add_argument("--interval", type=float, default=DEFAULT_INTERVAL_S,
                        help=f"realistic mode: seconds between call arrivals (default {DEFAULT_INTERVAL_S})")
    parser.add_argument("--turns", type=int, default=DEFAULT_TURNS,
                        help=f"realistic mode: caller turns per call (default {DEFAULT_TURNS})")
    parser.add_argument("--clips", default=",".join(DEFAULT_CLIPS),
                        help="realistic mode: comma-separated caller clip names in callers/, without .wav")
    parser.add_argument("--think", type=_think_range, default=DEFAULT_THINK_S, metavar="MIN-MAX",
                        help="realistic mode: think time in seconds after each reply, drawn uniformly (default 2-5)")
    parser.add_argument("--reply-wait", type=float, default=None,
                        help=f"seconds of caller silence after each turn, for the reply (default {DEFAULT_REPLY_WAIT_S:g}, "
                             f"burst {BURST_REPLY_WAIT_S:g})")
    parser.add_argument("--clip", default=BURST_CLIP, help=f"burst mode: caller clip name (default {BURST_CLIP})")
    parser.add_argument("--seed", type=int, default=1, help="seed of the clip orders and think times (default 1)")
    parser.add_argument("--details", type=Path, default=None, metavar="FILE",
                        help="also write one JSON line per measured turn (call, turn, clip, stage times in ms) to FILE")
    args = parser.parse_args(argv)
    from voicebot.cli import configure_logging

    # WARNING keeps pipecat's debug frames, which carry transcripts, out of the log.
    configure_logging("WARNING")
    arguments = sys.argv[1:] if argv is None else list(argv)
    command = shlex.join(["python", "-m", "bench.sip", *arguments])
    result = run_benchmark(
        calls=args.calls, burst=args.burst, clips=[c.strip() for c in args.clips.split(",") if c.strip()],
        clip=args.clip, turns=args.turns, interval_s=args.interval, think_s=args.think,
        reply_wait_s=args.reply_wait, seed=args.seed, command=command,
    )
    if args.burst:
        title = f"Worst case: burst of {args.calls} calls that all stop speaking together"
    else:
        title = f"Realistic traffic, {args.calls} calls"
    print(format_run(result, title=title))
    if args.details is not None:
        write_details(result, args.details)


def write_details(result: RunResult, path: Path) -> None:
    """Write each measured turn's clip and stage times as one JSON line, slowest on the wire first."""
    clips = {plan.index: plan.clips for plan in result.plans}
    with path.open("w", encoding="utf-8") as out:
        for stage in sorted(result.stages, key=lambda turn: -turn["wire"]):
            call, turn = int(stage["call"]), int(stage["turn"])
            clip = clips[call][turn] if turn < len(clips[call]) else ""
            out.write(json.dumps({"clip": clip, **{k: round(v) for k, v in stage.items()}}) + "\n")


if __name__ == "__main__":
    main()
