"""The first sentence of a reply starts with voice, not with espeak-ng's leading silence."""

from __future__ import annotations

import numpy as np

from voicebot.pipeline.speech import LEAD_SILENCE_LEVEL, trim_leading_silence
from voicebot.tts.espeak import EspeakSynthesizer


def _pcm(samples: list[int]) -> bytes:
    return np.array(samples, dtype="<i2").tobytes()


def test_leading_silence_is_dropped() -> None:
    assert trim_leading_silence(_pcm([0, 3, -5, 900, 0, 2]), 16000) == _pcm([900, 0, 2])


def test_trim_stops_at_the_limit() -> None:
    """Only the first 100 ms are looked at, so a reply that starts quietly keeps its quiet start."""
    quiet = [10] * 3200  # 200 ms at 16 kHz
    trimmed = trim_leading_silence(_pcm(quiet + [900]), 16000)
    assert len(trimmed) == (3200 - 1600 + 1) * 2


async def test_espeak_sentence_starts_with_voice() -> None:
    synthesizer = EspeakSynthesizer()
    pcm = await synthesizer.synthesize("普卡年费每年一百元。", "zh")
    trimmed = trim_leading_silence(pcm, synthesizer.sample_rate)
    assert pcm.endswith(trimmed)
    assert abs(int(np.frombuffer(trimmed[:2], dtype="<i2")[0])) >= LEAD_SILENCE_LEVEL
