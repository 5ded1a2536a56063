"""Benchmark of recognition hints and of the Whisper worker layout.

1. Hints: the 8 kHz `slot_card_last4` and `slot_new_address` caller clips are cut at 15 points
   (0 to 700 ms in 50 ms steps, as VAD turn starts vary) and decoded with no hint, with the
   question only, and with the full hint (question and sample answer). A digit decode counts as
   right when the slot accepts it with the value 6288. An address decode counts as right when
   the extracted address starts with 上海市浦东新区世纪大道.
2. Workers: sixteen caller-clip decodes queued at once, with one two-thread worker and with two
   one-thread workers, as decodes per second.

Run: `python -m bench.asr_hints`. Needs the shared caller clips (`VOICEBOT_SHARED_SPEECH`).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

from bench.asr import machine_description, read_wav, shared_speech_dir
from voicebot.asr.hints import ExpectedInput, RecognitionHint, hint_for
from voicebot.asr.whisper import WhisperTranscriber
from voicebot.dialog import nlu
from voicebot.dialog.engine import _accepts
from voicebot.dialog.flows import SlotSpec

CUTS_MS = range(0, 701, 50)
CARD_LAST4 = SlotSpec("card_last4", "digits", length=4, dtmf=True, min_confidence=0.6)
NEW_ADDRESS = SlotSpec("new_address", "address", min_confidence=0.7)
DIGIT_QUESTION = "请告诉我丢失的那张卡卡号的后四位。"
ADDRESS_QUESTION = "请说出新的账单地址，包括城市、区、街道和门牌号。"


def _digits_right(text: str) -> bool:
    value = nlu.extract_digits(text, length=4)
    return _accepts(CARD_LAST4, text) and value is not None and value.value == "6288"


def _address_right(text: str) -> bool:
    value = nlu.extract_address(text, whole_turn=True)
    return value is not None and value.value.startswith("上海市浦东新区世纪大道")


def _count(transcriber: WhisperTranscriber, pcm: bytes, hint: RecognitionHint | None, right) -> int:
    hits = 0
    for cut_ms in CUTS_MS:
        text = transcriber.transcribe_blocking(pcm[cut_ms * 32 :], language="zh", hint=hint).text
        hits += int(right(text))
    return hits


def _hint_rows(callers: Path) -> list[str]:
    transcriber = WhisperTranscriber(cpu_threads=2)
    transcriber.load()
    digits = ExpectedInput("digits", lambda text: _accepts(CARD_LAST4, text), length=4)
    address = ExpectedInput("address", lambda text: _accepts(NEW_ADDRESS, text))
    rows = []
    cases = [
        ("slot_card_last4", digits, DIGIT_QUESTION, _digits_right),
        ("slot_new_address", address, ADDRESS_QUESTION, _address_right),
    ]
    for clip, expected, question, right in cases:
        pcm = read_wav(callers / f"{clip}.wav", telephone=True)
        full = hint_for(expected, question)
        assert full is not None
        question_only = replace(full, prompt=question)
        counts = [_count(transcriber, pcm, hint, right) for hint in (None, question_only, full)]
        rows.append(f"| {clip} | " + " | ".join(f"{count} of {len(CUTS_MS)}" for count in counts) + " |")
    transcriber.close()
    return rows


async def _throughput(callers: Path, workers: int, threads: int) -> float:
    clips = [read_wav(path, telephone=True) for path in sorted(callers.glob("faq_*.wav"))] * 2
    transcriber = WhisperTranscriber(cpu_threads=threads, max_concurrent=workers, max_queued=64)
    transcriber.load()
    await asyncio.gather(*(transcriber.transcribe(clip, language="zh") for clip in clips[:workers]))
    started = time.perf_counter()
    await asyncio.gather(*(transcriber.transcribe(clip, language="zh") for clip in clips))
    elapsed = time.perf_counter() - started
    transcriber.close()
    return len(clips) / elapsed


def run() -> str:
    """Run both measurements and return a markdown section."""
    callers = shared_speech_dir() / "callers"
    lines = [
        "## Recognition hints and Whisper workers",
        "",
        f"Machine: {machine_description()}. Command: `python -m bench.asr_hints`.",
        "",
        f"Right decodes over {len(CUTS_MS)} cut points (0-700 ms) of the 8 kHz clip:",
        "",
        "| clip | no hint | question only | question and sample answer |",
        "|---|---|---|---|",
        *_hint_rows(callers),
        "",
        "Sixteen FAQ clip decodes queued at once:",
        "",
        "| layout | decodes per second |",
        "|---|---|",
    ]
    for workers, threads in ((1, 2), (2, 1)):
        rate = asyncio.run(_throughput(callers, workers, threads))
        lines.append(f"| {workers} worker(s) x {threads} thread(s) | {rate:.1f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(run())
