"""Turn-end benchmark: when the real turn detector ends each shared clip's turn, in audio time.

Each clip goes through the telephone path (8 kHz G.711 mu-law and back to 16 kHz) and gets 0.5 s
of silence before and 1.5 s after. Then it is fed frame by frame to `TurnDetector` with the
WebRTC VAD and the Smart Turn model the service uses. No clock is involved: every time is a position in
the audio, so a run gives the same numbers on a busy machine.

For each schedule of Smart Turn checks it reports:

- how long after the VAD's last pause report the clip's final turn ended (mean, p50, p90, max).
  The report itself comes about 0.3 s after the voice stops: 0.2 s of non-speech frames plus
  the VAD's own hangover.
- turns that ended while the caller had more to say (mid-utterance ends). Over the phone these
  are merged again when the caller goes on before the reply plays (`continuation_window_s`).
- how many times Smart Turn ran per clip, and how long one run took (on one thread, as in the
  service).

The service's schedule is replayed twice: with Smart Turn alone, and with the question rule
(`reads_as_question` in `voicebot/pipeline/recognition.py`). For the second, Whisper transcribes
every tentative turn as soon as it is cut, and the decode takes no audio time. So its ends are
the earliest the service can reach. Live, a decode still running at the question timeout ends
the turn when it finishes.

Run: `python -m bench.turns [--checks 0,0.1,0.3 --checks 0,0.1,0.2,0.3,0.4,0.5] [--no-questions]`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipecat.audio.vad.vad_analyzer import VADState
from pipecat.frames.frames import Frame, InputAudioRawFrame
from pipecat.processors.frame_processor import FrameDirection

from bench import describe_machine
from bench.asr import read_wav, shared_speech_dir
from voicebot.asr.whisper import WhisperTranscriber
from voicebot.audio.webrtc_vad import WebRTCVADAnalyzer
from voicebot.config import Settings
from voicebot.pipeline.frames import CallerTurnAudioFrame, TentativeTurnAudioFrame, TurnCompleteByTextFrame
from voicebot.pipeline.recognition import reads_as_question
from voicebot.pipeline.turns import TURN_CHECKS_S, TURN_SAMPLE_RATE, TurnDetector
from voicebot.services import SmartTurnModel, load_smart_turn_session

logger = logging.getLogger(__name__)

FRAME_BYTES = 640  # 20 ms at 16 kHz
LEAD_S = 0.5
TRAIL_S = 1.5
# Compared with the service's schedule by default: a check every 0.1 s up to 0.5 s.
DENSE_CHECKS_S = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)


@dataclass
class ClipTurns:
    """Turn ends of one clip, as seconds into the fed audio."""

    name: str
    ends: list[tuple[float, str]]  # (end of turn, reason)
    last_pause_report_s: float  # the VAD's last SPEAKING → QUIET step
    last_speaking_s: float  # the last frame the VAD called SPEAKING
    model_checks: int
    model_seconds: float
    resume_gaps_s: list[float] = field(default_factory=list)

    @property
    def final_delay_s(self) -> float | None:
        """Seconds from the last pause report to the end of the clip's final turn."""
        final = [t for t, _ in self.ends if t >= self.last_pause_report_s]
        return final[0] - self.last_pause_report_s if final else None

    @property
    def mid_utterance_ends(self) -> int:
        return sum(1 for t, _ in self.ends if t < self.last_speaking_s)


class _CountingModel:
    """Wrapper of the Smart Turn model that counts and times its runs."""

    def __init__(self, model: SmartTurnModel) -> None:
        self._model = model
        self.calls = 0
        self.seconds = 0.0

    def probability_complete(self, pcm16k: bytes) -> float:
        self.calls += 1
        started = time.perf_counter()
        try:
            return self._model.probability_complete(pcm16k)
        finally:
            self.seconds += time.perf_counter() - started


class _RecordingVAD(WebRTCVADAnalyzer):
    """The service's WebRTC VAD, remembering the last pause report and the last speaking frame."""

    def __init__(self) -> None:
        super().__init__()
        self.position_s = 0.0
        self.last_pause_report_s = 0.0
        self.last_speaking_s = 0.0
        # For each pause report the speaker went on after: seconds from the report to the first
        # frame of the speech that followed (the VAD reports SPEAKING start_secs after that frame).
        self.resume_gaps_s: list[float] = []
        self._previous = VADState.QUIET
        self._reported = False

    async def analyze_audio(self, buffer: bytes) -> VADState:
        state = await super().analyze_audio(buffer)
        self.position_s += len(buffer) / 2 / TURN_SAMPLE_RATE
        if state is VADState.SPEAKING:
            if self._reported:
                gap = self.position_s - self.params.start_secs - self.last_pause_report_s
                self.resume_gaps_s.append(max(0.0, round(gap, 2)))
                self._reported = False
            self.last_speaking_s = self.position_s
        if state is VADState.QUIET and self._previous is not VADState.QUIET:
            self.last_pause_report_s = self.position_s
            self._reported = True
        self._previous = state
        return state


class _OfflineDetector(TurnDetector):
    """The service's turn detector, fed directly: it records turn ends instead of pushing frames."""

    def __init__(self, vad: _RecordingVAD, *, transcribe: Callable[[bytes], str] | None = None, **kwargs) -> None:
        super().__init__(vad=vad, speculative=transcribe is not None, **kwargs)
        self.recorded_vad = vad
        self.ends: list[tuple[float, str]] = []
        self._transcribe = transcribe

    async def push_frame(self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM) -> None:
        if isinstance(frame, CallerTurnAudioFrame):
            self.ends.append((self.recorded_vad.position_s, self.last_end_reason))
        elif isinstance(frame, TentativeTurnAudioFrame) and self._transcribe is not None:
            # The decode takes no audio time here, so recognition's verdict arrives at once.
            if reads_as_question(self._transcribe(frame.audio)):
                await self._on_complete_by_text(
                    TurnCompleteByTextFrame(turn_index=frame.turn_index, audio_length=len(frame.audio), question=True)
                )

    async def broadcast_interruption(self) -> None:
        # A merged turn: the caller went on. The earlier end stays counted as a mid-utterance end.
        return None

    async def feed(self, pcm: bytes) -> None:
        for start in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES):
            frame = InputAudioRawFrame(audio=pcm[start : start + FRAME_BYTES], sample_rate=TURN_SAMPLE_RATE, num_channels=1)
            await self._on_audio(frame)


def clip_paths(speech_dir: Path) -> list[Path]:
    """Return the shared caller clips and recorded clips, sorted by name within each set."""
    paths = sorted((speech_dir / "callers").glob("*.wav")) + sorted((speech_dir / "recorded").glob("*.wav"))
    if not paths:
        raise FileNotFoundError(
            f"no WAV clips under {speech_dir}/callers or {speech_dir}/recorded; "
            "set VOICEBOT_SHARED_SPEECH to the shared speech folder"
        )
    return paths


def padded(pcm: bytes) -> bytes:
    lead = bytes(int(LEAD_S * TURN_SAMPLE_RATE) * 2)
    trail = bytes(int(TRAIL_S * TURN_SAMPLE_RATE) * 2)
    return lead + pcm + trail


async def replay(
    clips: dict[str, bytes],
    model: SmartTurnModel,
    checks_s: tuple[float, ...],
    timeout_s: float,
    *,
    transcribe: Callable[[bytes], str] | None = None,
    question_timeout_s: float = 0.4,
) -> list[ClipTurns]:
    """Feed every clip to a fresh turn detector with this check schedule.

    With `transcribe`, tentative turns are transcribed and a question ends the turn after
    `question_timeout_s`, as in the service.
    """
    results = []
    for name, pcm in clips.items():
        counting = _CountingModel(model)
        detector = _OfflineDetector(
            _RecordingVAD(),
            transcribe=transcribe,
            turn_model=counting,
            incomplete_timeout_s=timeout_s,
            question_timeout_s=min(question_timeout_s, timeout_s),
            turn_checks_s=checks_s,
        )
        await detector.feed(pcm)
        results.append(
            ClipTurns(
                name=name,
                ends=detector.ends,
                last_pause_report_s=detector.recorded_vad.last_pause_report_s,
                last_speaking_s=detector.recorded_vad.last_speaking_s,
                model_checks=counting.calls,
                model_seconds=counting.seconds,
                resume_gaps_s=detector.recorded_vad.resume_gaps_s,
            )
        )
    return results


def _checks_text(checks_s: Sequence[float]) -> str:
    return ", ".join(f"{t:g}" for t in checks_s)


def format_results(runs: list[tuple[str, list[ClipTurns]]], *, timeout_s: float, clip_count: int) -> str:
    """Markdown table, one row per (label, results) run."""
    lines = [
        "## Turn ends (offline replay)",
        "",
        f"Command: `python -m bench.turns`. Machine: {describe_machine()}.",
        "",
        f"{clip_count} shared clips (caller and recorded) through the 8 kHz G.711 path, fed to the real "
        f"`TurnDetector` with the WebRTC VAD and Smart Turn; incomplete-turn timeout {timeout_s:g} s. "
        "Times are audio positions, so the numbers do not depend on machine load. The delay counts from "
        "the VAD's last pause report, which comes about 0.3 s after the voice stops.",
        "",
        "| Smart Turn checks (s into the pause) | final turn end after the pause report: mean | p50 | p90 | max "
        "| clips ended by the timeout | by the question rule | mid-utterance ends | Smart Turn runs per clip "
        "| ms per Smart Turn run |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, results in runs:
        delays = [r.final_delay_s for r in results if r.final_delay_s is not None]
        ordered = sorted(delays)
        p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
        by_timeout = sum(1 for r in results if r.ends and r.ends[-1][1] == "silence")
        by_question = sum(1 for r in results if r.ends and r.ends[-1][1] == "text")
        mid = sum(r.mid_utterance_ends for r in results)
        runs_per_clip = statistics.mean(r.model_checks for r in results)
        ms_per_run = 1000 * sum(r.model_seconds for r in results) / max(1, sum(r.model_checks for r in results))
        lines.append(
            f"| {label} | {statistics.mean(delays):.2f} s | {statistics.median(delays):.2f} s "
            f"| {p90:.2f} s | {max(delays):.2f} s | {by_timeout} | {by_question} | {mid} | {runs_per_clip:.1f} "
            f"| {ms_per_run:.0f} |"
        )
    lines.append("")
    slow = []
    for label, results in runs:
        for r in results:
            if r.final_delay_s is not None and r.final_delay_s > 0.3:
                slow.append(f"`{r.name}` {r.final_delay_s:.2f} s")
        lines.append(f"Final ends later than 0.3 s with checks at {label}: {', '.join(slow) or 'none'}.")
        slow = []
    if runs:
        gaps = [(gap, r.name) for r in runs[0][1] for gap in r.resume_gaps_s]
        if gaps:
            long = ", ".join(f"`{name}` {gap:.2f} s" for gap, name in sorted(gaps, reverse=True) if gap > 0.3)
            lines.append("")
            lines.append(
                f"Pauses the speaker went on after: {len(gaps)}, in "
                f"{len({name for _, name in gaps})} clips. From the pause report to the next speech: "
                f"p50 {statistics.median(g for g, _ in gaps):.2f} s, max {max(g for g, _ in gaps):.2f} s; "
                f"above 0.3 s: {long or 'none'}. A shorter wait than these cuts such a turn in two."
            )
    return "\n".join(lines) + "\n"


async def _main(checks: list[tuple[float, ...]], settings: Settings, *, questions: bool) -> str:
    clips = {path.stem: padded(read_wav(path, telephone=True)) for path in clip_paths(shared_speech_dir())}
    model = SmartTurnModel(session=load_smart_turn_session())
    timeout_s = settings.incomplete_turn_timeout_s
    runs = [(_checks_text(schedule), await replay(clips, model, schedule, timeout_s)) for schedule in checks]
    if questions:
        transcriber = WhisperTranscriber(model=settings.whisper_model, cpu_threads=settings.asr_threads)
        transcriber.load()

        def transcribe(pcm: bytes) -> str:
            return transcriber.transcribe_blocking(pcm, language="zh").text

        label = f"{_checks_text(checks[0])}, questions after {settings.question_turn_timeout_s:g} s"
        results = await replay(clips, model, checks[0], timeout_s, transcribe=transcribe,
                               question_timeout_s=settings.question_turn_timeout_s)
        runs.insert(1, (label, results))
    return format_results(runs, timeout_s=timeout_s, clip_count=len(clips))


def run() -> str:
    """Markdown section for bench.run: the service's schedule with and without the question rule, and checks every 0.1 s."""
    return asyncio.run(_main([TURN_CHECKS_S, DENSE_CHECKS_S], Settings(), questions=True))


def _schedule(value: str) -> tuple[float, ...]:
    try:
        schedule = tuple(float(part) for part in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid check schedule {value!r}; expected seconds like 0,0.1,0.3") from None
    if list(schedule) != sorted(schedule) or schedule[0] < 0:
        raise argparse.ArgumentTypeError(f"invalid check schedule {value!r}; expected ascending seconds from 0, such as 0,0.1,0.3")
    return schedule


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.turns", description="Replay the shared clips through the turn detector.")
    parser.add_argument("--checks", type=_schedule, action="append", metavar="S,S,...",
                        help="Smart Turn check schedule in seconds into a pause; repeat to compare "
                             f"(default: the service's {_checks_text(TURN_CHECKS_S)} and {_checks_text(DENSE_CHECKS_S)})")
    parser.add_argument("--timeout", type=float, default=None,
                        help="incomplete-turn timeout in seconds (default: the service setting)")
    parser.add_argument("--no-questions", action="store_true",
                        help="skip the replay with the question rule, which loads Whisper")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    settings = Settings()
    if args.timeout is not None:
        settings = Settings(incomplete_turn_timeout_s=args.timeout,
                            question_turn_timeout_s=min(args.timeout, settings.question_turn_timeout_s))
    schedules = args.checks or [TURN_CHECKS_S, DENSE_CHECKS_S]
    print(asyncio.run(_main(schedules, settings, questions=not args.no_questions)))


if __name__ == "__main__":
    main()
