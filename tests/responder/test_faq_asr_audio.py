"""FAQ answers on real Whisper transcripts of the caller clips, heard through the 8 kHz phone path."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr

from telephony.g711 import mulaw_to_pcm, pcm_to_mulaw
from voicebot.asr.whisper import WhisperTranscriber
from voicebot.responder.faq import FaqResponder

from faq_cases import REPO_ROOT

pytestmark = pytest.mark.slow

FAQ_CLIPS = (
    "faq_annual_fee.wav",
    "faq_bill_inquiry.wav",
    "faq_minimum_payment.wav",
    "faq_card_activation.wav",
    "faq_points_redemption.wav",
    "faq_installment_fee.wav",
    "faq_credit_limit.wav",
    "faq_late_payment.wav",
)


def speech_dir() -> Path:
    """Return $VOICEBOT_SHARED_SPEECH, or shared/speech beside the repository."""
    configured = os.environ.get("VOICEBOT_SHARED_SPEECH", "").strip()
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "speech"


def to_pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def read_phone_audio(path: Path) -> bytes:
    """Read a WAV file as a phone line delivers it: 8 kHz G.711 mu-law, decoded and resampled to 16 kHz PCM."""
    samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
    narrowband = to_pcm16(soxr.resample(samples.mean(axis=1), rate, 8_000))
    decoded = np.frombuffer(mulaw_to_pcm(pcm_to_mulaw(narrowband)), dtype="<i2").astype(np.float32) / 32768.0
    return to_pcm16(soxr.resample(decoded, 8_000, 16_000))


@pytest.fixture(scope="module")
def callers_dir() -> Path:
    folder = speech_dir() / "callers"
    if not (folder / "MANIFEST.tsv").is_file():
        pytest.skip(f"caller clips not found at {folder}: set VOICEBOT_SHARED_SPEECH to the shared speech folder")
    return folder


@pytest.fixture(scope="module")
def clip_topics(callers_dir: Path) -> dict[str, str]:
    """FAQ topic of each caller clip, from the label column of MANIFEST.tsv."""
    with open(callers_dir / "MANIFEST.tsv", encoding="utf-8", newline="") as manifest:
        return {row["file"]: row["label"] for row in csv.DictReader(manifest, delimiter="\t")}


@pytest.fixture(scope="module")
def transcriber() -> Iterator[WhisperTranscriber]:
    """The production transcriber with its defaults (short window, hotwords), loaded once for the module."""
    asr = WhisperTranscriber()
    asr.load()
    yield asr
    asr.close()


@pytest.mark.parametrize("clip", FAQ_CLIPS)
def test_phone_clip_answered(
    clip: str,
    callers_dir: Path,
    clip_topics: dict[str, str],
    transcriber: WhisperTranscriber,
    faq_responder: FaqResponder,
):
    """An FAQ caller clip on the phone path is answered with its topic at the threshold or above."""
    transcript = transcriber.transcribe_blocking(read_phone_audio(callers_dir / clip), language="zh")
    assert transcript.text, transcript.dropped

    best = faq_responder.match(transcript.text)[0]
    assert best.topic == clip_topics[clip], transcript.text
    assert best.confidence >= faq_responder.threshold, (transcript.text, best)
