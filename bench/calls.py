"""End-to-end benchmark: FAQ accuracy and reply latency of calls placed through the service.

Run `python -m bench.calls` from the repository root; Redis must answer at the configured URL
(default redis://127.0.0.1:6379/0). The section starts the service in this process on
127.0.0.1 with a free port, then calls it with the test softphone at real-time pace:

1. one call per FAQ caller clip, for top-1 accuracy on audio (VAD, Smart Turn, Whisper, retrieval);
2. one call at a time, every FAQ clip as a turn, for the latency of a lone call;
3. several calls started together, for the latency under concurrency.

Latency is measured by the softphone: end of the caller's speech (last voiced 20 ms frame
sent) to the first bot audio frame received. The per-stage times come from the call records
that the service writes to Redis. The softphone runs in the same process and event loop as the
service, so it shares the CPU with it, as a caller on the same machine would.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import datetime
import logging
import os
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench import describe_machine, load_average_text
from telephony.softphone import CallSummary, place_call
from voicebot.audio.webrtc_vad import PHONE_VAD_PARAMS
from voicebot.callrecord import TurnRecord
from voicebot.config import REPO_ROOT, Settings, settings_from_env
from voicebot.errors import VoicebotError
from voicebot.server import running_server
from voicebot.services import Services

logger = logging.getLogger(__name__)

SECTION_TITLE = "## Calls through the service"
SPEED = 1.0  # caller audio at real-time pace
TURN_TIMEOUT_S = 30.0
SINGLE_CALL_ROUNDS = 2  # calls placed one after the other, each with every FAQ clip as a turn
CONCURRENT_CALLS = 4
# Service-side stages as named in TurnRecord.latency_ms, in pipeline order.
STAGES = ("turn_detect", "asr", "respond", "end_to_end")
TARGET_P50_MS = 1000.0  # one call at a time
TARGET_TOP1 = 0.90  # FAQ caller clips
RSS_SAMPLE_INTERVAL_S = 0.25
# A 1-minute load average above this before the service starts means other processes are busy.
LOADED_1MIN = 0.5


@dataclasses.dataclass(frozen=True)
class FaqClip:
    """A caller clip whose expected reply is the FAQ answer of `label`."""

    path: Path
    text: str
    label: str


@dataclasses.dataclass
class TurnMeasure:
    """One caller turn: what the service heard and replied, and how long it took."""

    clip: FaqClip
    transcript: str | None  # the caller turns the service heard in this clip, joined by " / "
    caller_turns: int  # how many caller turns the service heard in this clip (more than 1: split at a pause)
    topic: str | None
    kind: str | None
    confidence: float | None
    latency_ms: float | None  # softphone: end of caller speech to first bot audio received
    stages_ms: dict[str, float]  # service call record: milliseconds per stage

    @property
    def hit(self) -> bool:
        return self.topic == self.clip.label and self.kind == "answer"

    @property
    def topic_right(self) -> bool:
        return self.topic == self.clip.label and self.kind in ("answer", "clarify")


@dataclasses.dataclass
class CallOutcome:
    """Turns measured in one call, or the error that ended it."""

    turns: list[TurnMeasure]
    error: str | None = None
    note: str | None = None


def shared_speech_dir() -> Path:
    """Return $VOICEBOT_SHARED_SPEECH, or shared/speech beside the repository."""
    configured = os.environ.get("VOICEBOT_SHARED_SPEECH", "").strip()
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "speech"


def load_faq_clips(callers_dir: Path) -> list[FaqClip]:
    """Read the MANIFEST.tsv rows of callers_dir whose expected reply is an FAQ answer."""
    with open(callers_dir / "MANIFEST.tsv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [
        FaqClip(path=callers_dir / row["file"], text=row["text"], label=row["label"])
        for row in rows
        if row["expected"] == "faq"
    ]


def _assign_caller_records(records: Sequence[TurnRecord], speech_end_epochs: Sequence[float | None]) -> list[int | None]:
    """Return, for each caller record, the index of the clip it was heard in (None when after the last clip).

    The service may split one clip into several caller turns at a pause, so records cannot be
    paired with clips by order. Clip i is spoken after the reply to clip i-1, so a caller record
    that started before the end of clip i's speech and after the end of clip i-1's belongs to clip i.
    """
    assigned: list[int | None] = []
    for record in records:
        if record.role != "caller":
            continue
        clip_index = None
        for i, speech_end in enumerate(speech_end_epochs):
            if speech_end is not None and record.started_at < speech_end:
                clip_index = i
                break
        assigned.append(clip_index)
    return assigned


def _reply_after(records: Sequence[TurnRecord], caller_position: int) -> TurnRecord | None:
    """Return the bot record that follows the caller record at caller_position among the caller records."""
    seen = -1
    for i, record in enumerate(records):
        if record.role != "caller":
            continue
        seen += 1
        if seen == caller_position:
            return next((later for later in records[i + 1 :] if later.role == "bot"), None)
    return None


async def _measure_call(url: str, services: Services, clips: Sequence[FaqClip]) -> CallOutcome:
    """Place one call with clips as the caller's turns and pair its turns with the call records."""
    ws_url = url.replace("http://", "ws://") + "/media"
    transcripts: list[str] = []  # one per caller turn the service heard, in order

    def on_event(event: dict[str, object]) -> None:
        if event.get("event") == "user":
            transcripts.append(str(event.get("text", "")))

    # The softphone times turns with the event loop clock and the service records epoch seconds.
    epoch_offset_s = time.time() - asyncio.get_running_loop().time()
    try:
        summary: CallSummary = await place_call(
            ws_url, [clip.path for clip in clips], speed=SPEED, turn_timeout_s=TURN_TIMEOUT_S, on_event=on_event
        )
    except VoicebotError as e:
        logger.error("bench call to %s failed: %s", ws_url, e)
        return CallOutcome(turns=[], error=f"{type(e).__name__}: {e}")

    records = await services.store.list_turns(summary.call_id) if summary.call_id else []
    speech_ends = [
        turn.speech_end_s + epoch_offset_s if turn.speech_end_s is not None else None for turn in summary.turns
    ]
    assigned = _assign_caller_records(records, speech_ends)
    caller_texts = [record.text for record in records if record.role == "caller"]
    if len(transcripts) != len(caller_texts):
        # The stored texts have personal data (numbers, e-mail, addresses) replaced with tags.
        transcripts = caller_texts

    notes = []
    if summary.timed_out:
        notes.append(f"call {summary.call_id}: no reply within {TURN_TIMEOUT_S:.0f} s, the softphone hung up")
    stray = sum(1 for clip_index in assigned if clip_index is None)
    if stray:
        notes.append(f"call {summary.call_id}: {stray} caller turn(s) heard after the last clip ended")

    turns = []
    for clip_index, (clip, turn) in enumerate(zip(clips, summary.turns)):
        positions = [position for position, owner in enumerate(assigned) if owner == clip_index]
        # The reply to the clip is the reply to the last caller turn heard in it.
        reply = _reply_after(records, positions[-1]) if positions else None
        turns.append(
            TurnMeasure(
                clip=clip,
                transcript=" / ".join(transcripts[p] for p in positions if p < len(transcripts)) or turn.user_text,
                caller_turns=len(positions),
                topic=reply.topic if reply else None,
                kind=reply.kind if reply else None,
                confidence=reply.confidence if reply else None,
                latency_ms=turn.latency_ms,
                stages_ms=dict(reply.latency_ms) if reply else {},
            )
        )
    return CallOutcome(turns=turns, note="; ".join(notes) or None)


class RssSampler:
    """Sample this process's resident set size (VmRSS) while a block runs, to find its peak."""

    def __init__(self, *, interval_s: float = RSS_SAMPLE_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self.peak_kib = 0
        self._task: asyncio.Task[None] | None = None

    @staticmethod
    def current_kib() -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    async def _sample(self) -> None:
        while True:
            self.peak_kib = max(self.peak_kib, self.current_kib())
            await asyncio.sleep(self.interval_s)

    async def __aenter__(self) -> RssSampler:
        self._task = asyncio.create_task(self._sample(), name="bench-rss-sampler")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self.peak_kib = max(self.peak_kib, self.current_kib())


@dataclasses.dataclass
class CallsResult:
    """Everything the calls section reports."""

    settings: Settings
    clips: list[FaqClip]
    per_clip: list[CallOutcome]
    single: list[CallOutcome]
    concurrent: list[CallOutcome]
    started: str
    wall_s: float
    load_before: str
    load_before_1min: float
    load_after: str
    rss_before_kib: int
    rss_peak_section_kib: int
    rss_peak_process_kib: int


async def measure(settings: Settings, clips: list[FaqClip]) -> CallsResult:
    """Start the service, place the benchmark calls and collect their measurements."""
    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    load_before = load_average_text()
    load_before_1min = os.getloadavg()[0]
    rss_before_kib = RssSampler.current_kib()
    wall_start = time.perf_counter()
    async with RssSampler() as rss, running_server(settings) as (url, services):
        logger.info("bench: service started at %s", url)
        # The per-clip calls come first, so they also warm up the models before the latency runs.
        per_clip = [await _measure_call(url, services, [clip]) for clip in clips]
        single = [await _measure_call(url, services, clips) for _ in range(SINGLE_CALL_ROUNDS)]
        # Each concurrent call starts at a different clip, so the calls do not speak in step.
        step = max(1, len(clips) // CONCURRENT_CALLS)
        rotations = [clips[i * step :] + clips[: i * step] for i in range(CONCURRENT_CALLS)]
        concurrent = list(
            await asyncio.gather(*(_measure_call(url, services, rotation) for rotation in rotations))
        )
    wall_s = time.perf_counter() - wall_start
    # ru_maxrss is in KiB on Linux.
    rss_peak_process_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return CallsResult(
        settings=settings,
        clips=clips,
        per_clip=per_clip,
        single=single,
        concurrent=concurrent,
        started=started,
        wall_s=wall_s,
        load_before=load_before,
        load_before_1min=load_before_1min,
        load_after=load_average_text(),
        rss_before_kib=rss_before_kib,
        rss_peak_section_kib=rss.peak_kib,
        rss_peak_process_kib=rss_peak_process_kib,
    )


# Formatting.


def _percentiles(values: Sequence[float]) -> tuple[float, float, float] | None:
    """Return p50, p95 and max (numpy linear interpolation), or None for no values."""
    if not values:
        return None
    array = np.array(values, dtype=float)
    return float(np.percentile(array, 50)), float(np.percentile(array, 95)), float(array.max())


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _cell(text: str | None) -> str:
    return "-" if not text else text.replace("|", "\\|").replace("\n", " ")


def _turns(outcomes: Sequence[CallOutcome]) -> list[TurnMeasure]:
    return [turn for outcome in outcomes for turn in outcome.turns]


def _problems(outcomes: Sequence[CallOutcome]) -> list[str]:
    lines = []
    for outcome in outcomes:
        if outcome.error:
            lines.append(f"- Call failed: {outcome.error}")
        if outcome.note:
            lines.append(f"- {outcome.note}")
    return lines


def _met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _accuracy_lines(result: CallsResult) -> tuple[list[str], float]:
    turns = _turns(result.per_clip)
    expected = len(result.clips)
    hits = sum(turn.hit for turn in turns)
    topic_right = sum(turn.topic_right for turn in turns)
    top1 = hits / expected if expected else 0.0
    lines = [
        "### FAQ top-1 accuracy on audio",
        "",
        f"One call per FAQ caller clip ({expected} clips), real-time pace. A hit is a reply with the clip's "
        "topic and kind `answer`; \"topic right\" also counts a clarifying question that names the right topic.",
        "",
        f"- Top-1 (answered with the right topic): {hits}/{expected} = {top1:.0%} "
        f"(target >= {TARGET_TOP1:.0%}: {_met(top1 >= TARGET_TOP1)})",
        f"- Topic right (answer or clarify): {topic_right}/{expected} = "
        f"{(topic_right / expected if expected else 0.0):.0%}",
        "",
        "Caller turns is how many turns the service heard in the clip; above 1, it cut the clip at a pause "
        "and replied to each part, and the table shows its reply to the last part.",
        "",
        "| clip | expected topic | caller turns | transcript (Whisper) | topic | kind | confidence | hit | latency ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for turn in turns:
        confidence = "-" if turn.confidence is None else f"{turn.confidence:.2f}"
        lines.append(
            f"| {turn.clip.path.name} | {turn.clip.label} | {turn.caller_turns} | {_cell(turn.transcript)} "
            f"| {_cell(turn.topic)} | {_cell(turn.kind)} | {confidence} | {'yes' if turn.hit else 'no'} "
            f"| {_ms(turn.latency_ms)} |"
        )
    lines += _problems(result.per_clip)
    return lines, top1


def _latency_row(name: str, outcomes: Sequence[CallOutcome], calls: int) -> tuple[str, float | None]:
    turns = _turns(outcomes)
    latencies = [turn.latency_ms for turn in turns if turn.latency_ms is not None]
    split = sum(turn.caller_turns > 1 for turn in turns)
    hits = sum(turn.hit for turn in turns)
    stats = _percentiles(latencies)
    if stats is None:
        return f"| {name} | {calls} | 0 | - | - | - | {split} | {hits}/{len(turns)} |", None
    p50, p95, worst = stats
    row = (
        f"| {name} | {calls} | {len(latencies)} | {p50:.0f} | {p95:.0f} | {worst:.0f} | {split} "
        f"| {hits}/{len(turns)} |"
    )
    return row, p50


def _stage_rows(name: str, outcomes: Sequence[CallOutcome]) -> list[str]:
    turns = _turns(outcomes)
    rows = []
    extra_stages = sorted({stage for turn in turns for stage in turn.stages_ms} - set(STAGES))
    for stage in (*STAGES, *extra_stages):
        values = [turn.stages_ms[stage] for turn in turns if stage in turn.stages_ms]
        stats = _percentiles(values)
        if stats is None:
            rows.append(f"| {name} | {stage} | 0 | - | - | - |")
            continue
        p50, p95, worst = stats
        rows.append(f"| {name} | {stage} | {len(values)} | {p50:.0f} | {p95:.0f} | {worst:.0f} |")
    return rows


def format_section(result: CallsResult, *, machine: str) -> str:
    """Render the measurements as the markdown section `## Calls through the service`."""
    settings = result.settings
    accuracy, top1 = _accuracy_lines(result)
    single_row, single_p50 = _latency_row("one call at a time", result.single, len(result.single))
    concurrent_row, _ = _latency_row(
        f"{CONCURRENT_CALLS} concurrent calls", result.concurrent, len(result.concurrent)
    )
    p50_ok = single_p50 is not None and single_p50 < TARGET_P50_MS

    lines = [
        SECTION_TITLE,
        "",
        f"Run started {result.started}, took {result.wall_s:.0f} s. Machine: {machine}.",
        f"Load average (1/5/15 min) before the run {result.load_before}, after it {result.load_after}. "
        + (
            "Other processes were using the CPU before the run started, so these numbers were taken under load."
            if result.load_before_1min > LOADED_1MIN
            else "The machine was otherwise idle when the run started."
        ),
        f"Service: Whisper `{settings.whisper_model}` with asr_threads={settings.asr_threads}, "
        f"asr_workers={settings.asr_workers}; tts_workers={settings.tts_workers}; "
        f"faq_threshold={settings.faq_threshold}; max_calls={settings.max_calls}. "
        f"Caller audio from `{result.clips[0].path.parent if result.clips else '?'}` at {SPEED:g}x real time.",
        "",
        "### Summary against targets",
        "",
        "| measure | result | target | status |",
        "|---|---|---|---|",
        f"| FAQ top-1 on the caller clips | {top1:.0%} | >= {TARGET_TOP1:.0%} | {_met(top1 >= TARGET_TOP1)} |",
        f"| reply latency p50, one call | {_ms(single_p50)} ms | < {TARGET_P50_MS:.0f} ms | {_met(p50_ok)} |",
        "",
        *accuracy,
        "",
        "### Reply latency",
        "",
        "End of the caller's speech (last voiced frame sent by the softphone) to the first bot audio "
        "frame received, per caller turn. Every FAQ clip is a turn. One call at a time: "
        f"{SINGLE_CALL_ROUNDS} calls in a row. Concurrent: {CONCURRENT_CALLS} calls started together, "
        "each starting at a different clip. Percentiles by linear interpolation.",
        "",
        "| run | calls | turns | p50 ms | p95 ms | max ms | clips split | top-1 hits |",
        "|---|---|---|---|---|---|---|---|",
        single_row,
        concurrent_row,
        *_problems(result.single),
        *_problems(result.concurrent),
        "",
        "### Where the time goes (service call records)",
        "",
        "From `TurnRecord.latency_ms` of each bot reply in Redis: turn_detect is end of speech (VAD) to "
        "end of turn (Smart Turn), asr is end of turn to transcript, respond is the FAQ responder, and "
        "end_to_end is end of speech to the first bot audio sent, as the service sees it (TTS to first "
        "audio is the rest). turn_detect includes the VAD's stop delay "
        f"({PHONE_VAD_PARAMS.stop_secs:g} s); when Smart Turn judges a turn incomplete, the service waits "
        f"incomplete_turn_timeout_s ({settings.incomplete_turn_timeout_s:g} s) more before closing it.",
        "",
        "| run | stage | turns | p50 ms | p95 ms | max ms |",
        "|---|---|---|---|---|---|",
        *_stage_rows("one call", result.single),
        *_stage_rows(f"{CONCURRENT_CALLS} concurrent", result.concurrent),
        "",
        "### Memory",
        "",
        f"Resident set size of this process: {result.rss_before_kib / 1024:.0f} MiB before the service "
        f"started, peak {result.rss_peak_section_kib / 1024:.0f} MiB during this section (VmRSS sampled "
        f"every {RSS_SAMPLE_INTERVAL_S} s). Process peak so far (getrusage ru_maxrss, which includes "
        f"earlier sections run in the same process): {result.rss_peak_process_kib / 1024:.0f} MiB.",
    ]
    return "\n".join(lines) + "\n"


def run() -> str:
    """Run the end-to-end calls benchmark and return a markdown section."""
    speech = shared_speech_dir()
    callers = speech / "callers"
    if not (callers / "MANIFEST.tsv").is_file():
        return f"{SECTION_TITLE}\n\nSkipped: caller clips not found at {callers} (set VOICEBOT_SHARED_SPEECH).\n"
    clips = load_faq_clips(callers)
    if not clips:
        return f"{SECTION_TITLE}\n\nSkipped: {callers / 'MANIFEST.tsv'} lists no clips with expected `faq`.\n"
    # Port 0 picks a free port, so the benchmark never collides with a running service.
    settings = settings_from_env(host="127.0.0.1", port=0)
    result = asyncio.run(measure(settings, clips))
    return format_section(result, machine=describe_machine())


if __name__ == "__main__":
    from voicebot.cli import configure_logging

    # WARNING keeps pipecat's debug frames, which carry transcripts, out of the output.
    configure_logging("WARNING")
    print(run())
