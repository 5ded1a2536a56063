"""Benchmark of espeak-ng speech synthesis: time to first audio and real-time factor.

Run from the repository root with `python -m bench.tts`. Each typical bot answer is
streamed sentence by sentence through EspeakSynthesizer at the telephone rate (8000 Hz)
with the default settings, as a call would. Numbers are medians over REPEATS runs.
"""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

from voicebot.tts.espeak import EspeakSynthesizer

REPEATS = 5
SAMPLE_RATE = 8000

# (language, answer) pairs written like the bot's FAQ answers, with amounts, dates and
# card numbers so that normalisation is part of the measured time.
ANSWERS = [
    ("zh", "您好，欢迎致电信用卡中心。请问有什么可以帮您？"),
    (
        "zh",
        "您尾号6288的信用卡本期账单金额为¥3,456.78，最低还款额为345.68元，"
        "请于2026-05-20前还款。逾期将按日息0.05%计收利息。",
    ),
    (
        "zh",
        "金卡年费为300元，当年刷卡满6次即可免除次年年费。如需办理分期，"
        "每期手续费率为0.6%，最长可分24期。如有疑问，请拨打客服热线95588。",
    ),
    ("yue", "您好，歡迎致電信用卡中心。請問有咩可以幫到您？"),
    (
        "yue",
        "您尾號6288嘅信用卡今期賬單金額係¥3,456.78，最低還款額係345.68元，"
        "請喺2026-05-20之前還款。",
    ),
    (
        "yue",
        "金卡年費係300元，一年內簽賬滿6次就可以豁免下年年費。如有疑問，請致電95588。",
    ),
]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _espeak_version() -> str:
    result = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=False)
    return result.stdout.split("Data at")[0].strip() or "unknown espeak-ng version"


async def _measure(synthesizer: EspeakSynthesizer, text: str, language: str) -> tuple[float, float, float, int]:
    """Return (first audio s, total s, audio s, sentences) for one streamed answer."""
    start = time.perf_counter()
    first_audio_s = 0.0
    audio_bytes = 0
    sentences = 0
    async for _, pcm in synthesizer.stream(text, language):
        if sentences == 0:
            first_audio_s = time.perf_counter() - start
        sentences += 1
        audio_bytes += len(pcm)
    total_s = time.perf_counter() - start
    return first_audio_s, total_s, audio_bytes / 2 / synthesizer.sample_rate, sentences


async def _run_async() -> list[str]:
    synthesizer = EspeakSynthesizer(sample_rate=SAMPLE_RATE)
    synthesizer.check()
    rows = []
    for language, text in ANSWERS:
        await _measure(synthesizer, text, language)  # warm the page cache
        runs = [await _measure(synthesizer, text, language) for _ in range(REPEATS)]
        first_audio_s = statistics.median(run[0] for run in runs)
        total_s = statistics.median(run[1] for run in runs)
        audio_s = runs[0][2]
        sentences = runs[0][3]
        rows.append(
            f"| {language} | {len(text)} | {sentences} | {audio_s:.2f} | {first_audio_s * 1000:.0f} "
            f"| {total_s * 1000:.0f} | {total_s / audio_s:.4f} |"
        )
    return rows


def run() -> str:
    """Measure espeak-ng synthesis and return the results as a markdown section."""
    rows = asyncio.run(_run_async())
    lines = [
        "## TTS",
        "",
        f"Machine: {_cpu_model()}, {os.cpu_count()} logical CPUs; Python {platform.python_version()}; "
        f"{_espeak_version()}.",
        f"EspeakSynthesizer defaults (165 words per minute, max_sentence_chars 40) at {SAMPLE_RATE} Hz; "
        f"median of {REPEATS} runs per answer. First audio is the time from the start of `stream()` to its "
        "first (sentence, PCM) pair, normalisation included. RTF is synthesis time divided by audio duration.",
        "",
        "| language | characters | sentences | audio s | first audio ms | total ms | RTF |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(run())
