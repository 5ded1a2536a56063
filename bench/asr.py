"""ASR benchmark: real-time factor and character error rate of WhisperTranscriber.

Run `python -m bench.asr` from the repository root. Caller clips (synthetic Mandarin) go through
the 8 kHz G.711 mu-law path. Recorded clips (real Mandarin and Cantonese) go through both the
16 kHz and the 8 kHz path. Each set runs with short_window on and off.
"""

from __future__ import annotations

import csv
import logging
import os
import re
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr

from telephony.g711 import mulaw_to_pcm, pcm_to_mulaw
from voicebot.asr.textfilter import to_simplified
from voicebot.asr.whisper import WhisperTranscriber

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
# Punctuation and spaces are removed before scoring, because the references and Whisper punctuate
# differently.
_NOT_SCORED = re.compile(r"[\s\u3000-\u303f\uff00-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65"
                         r"!-/:-@\[-`{-~…—·“”‘’]")
# Notes in brackets after a reference transcript, such as "(README example output)".
_REFERENCE_NOTE = re.compile(r"\s*\([^)]*\)\s*$")


@dataclass(frozen=True)
class ClipResult:
    set_name: str
    file: str
    reference: str
    hypothesis: str
    duration_s: float
    decode_s: float
    cer: float


def shared_speech_dir() -> Path:
    """Return $VOICEBOT_SHARED_SPEECH, or shared/speech beside the repository."""
    configured = os.environ.get("VOICEBOT_SHARED_SPEECH", "").strip()
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "speech"


def _to_pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def read_wav(path: Path, *, telephone: bool) -> bytes:
    """Read a WAV file as 16 kHz PCM, through 8 kHz mu-law and back when `telephone` is set."""
    samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
    mono = samples.mean(axis=1)
    if not telephone:
        return _to_pcm16(soxr.resample(mono, rate, 16_000))
    narrowband = _to_pcm16(soxr.resample(mono, rate, 8_000))
    decoded = np.frombuffer(mulaw_to_pcm(pcm_to_mulaw(narrowband)), dtype="<i2").astype(np.float32) / 32768.0
    return _to_pcm16(soxr.resample(decoded, 8_000, 16_000))


def normalize_for_scoring(text: str) -> str:
    """Convert to Simplified, lower-case, and remove punctuation and spaces."""
    return _NOT_SCORED.sub("", to_simplified(text)).lower()


def character_error_rate(reference: str, hypothesis: str) -> float:
    """Return the Levenshtein distance over characters divided by the reference length."""
    if not reference:
        return 0.0 if not hypothesis else 1.0
    previous = list(range(len(hypothesis) + 1))
    for i, ref_char in enumerate(reference, start=1):
        current = [i] + [0] * len(hypothesis)
        for j, hyp_char in enumerate(hypothesis, start=1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_char != hyp_char))
        previous = current
    return previous[-1] / len(reference)


def _clips(folder: Path, text_column: str) -> list[tuple[Path, str, str]]:
    with open(folder / "MANIFEST.tsv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    clips = []
    for row in rows:
        language = "yue" if row["file"].endswith("_yue.wav") else "zh"
        clips.append((folder / row["file"], _REFERENCE_NOTE.sub("", row[text_column]), language))
    return clips


def _run_set(
    transcriber: WhisperTranscriber, set_name: str, clips: list[tuple[Path, str, str]], *, telephone: bool
) -> list[ClipResult]:
    results = []
    for path, reference, language in clips:
        transcript = transcriber.transcribe_blocking(read_wav(path, telephone=telephone), language=language)
        reference_scored = normalize_for_scoring(reference)
        hypothesis_scored = normalize_for_scoring(transcript.text)
        results.append(
            ClipResult(
                set_name=set_name,
                file=path.name,
                reference=reference_scored,
                hypothesis=hypothesis_scored,
                duration_s=transcript.duration_s,
                decode_s=transcript.decode_s,
                cer=character_error_rate(reference_scored, hypothesis_scored),
            )
        )
    return results


def _percentile(values: list[float], share: float) -> float:
    return float(np.percentile(np.array(values), share * 100))


def machine_description() -> str:
    """Return the CPU model from /proc/cpuinfo and the number of usable cores."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {len(os.sched_getaffinity(0))} cores"


def _summary_rows(results: list[ClipResult], short_window: bool) -> list[str]:
    rows = []
    for set_name in dict.fromkeys(r.set_name for r in results):
        subset = [r for r in results if r.set_name == set_name]
        rtf = [r.decode_s / r.duration_s for r in subset]
        errors = sum(r.cer * len(r.reference) for r in subset)
        characters = sum(len(r.reference) for r in subset)
        rows.append(
            f"| {set_name} | {'on' if short_window else 'off'} | {len(subset)} | {errors / characters:.3f} | "
            f"{statistics.fmean(rtf):.3f} | {_percentile(rtf, 0.5):.3f} | {_percentile(rtf, 0.95):.3f} | "
            f"{statistics.fmean(r.decode_s for r in subset):.2f} |"
        )
    return rows


def run() -> str:
    """Run the benchmark and return a markdown section headed `## ASR`."""
    speech = shared_speech_dir()
    if not (speech / "callers" / "MANIFEST.tsv").is_file():
        return f"## ASR\n\nSkipped: test speech not found at {speech} (set VOICEBOT_SHARED_SPEECH).\n"
    callers = _clips(speech / "callers", "text")
    recorded = _clips(speech / "recorded", "transcript_stated_by_repo")

    all_results: dict[bool, list[ClipResult]] = {}
    for short_window in (True, False):
        transcriber = WhisperTranscriber(short_window=short_window)
        transcriber.load()
        try:
            # One untimed decode first, so model warm-up is not charged to the first clip.
            transcriber.transcribe_blocking(read_wav(callers[0][0], telephone=True), language="zh")
            results = _run_set(transcriber, "callers 8 kHz", callers, telephone=True)
            results += _run_set(transcriber, "recorded 16 kHz", recorded, telephone=False)
            results += _run_set(transcriber, "recorded 8 kHz", recorded, telephone=True)
        finally:
            transcriber.close()
        all_results[short_window] = results

    lines = [
        "## ASR",
        "",
        f"Whisper base (embedded, int8, cpu_threads=2, beam 1, default hotwords) on {machine_description()}.",
        "CER is character error rate after Simplified conversion and punctuation removal, pooled over the set.",
        "RTF is decode time divided by audio duration (lower is faster).",
        "",
        "| set | short window | clips | CER | RTF mean | RTF p50 | RTF p95 | decode s mean |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for short_window in (True, False):
        lines += _summary_rows(all_results[short_window], short_window)

    lines += ["", "### Per clip", "", "| set | clip | s | CER on | CER off | RTF on | RTF off | text (short window on) |",
              "|---|---|---|---|---|---|---|---|"]
    for on, off in zip(all_results[True], all_results[False]):
        lines.append(
            f"| {on.set_name} | {on.file} | {on.duration_s:.1f} | {on.cer:.2f} | {off.cer:.2f} | "
            f"{on.decode_s / on.duration_s:.3f} | {off.decode_s / off.duration_s:.3f} | {on.hypothesis} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    print(run())
