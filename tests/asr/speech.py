"""Test speech helpers: locate the shared speech folder and read clips on the telephone path."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import soundfile
import soxr

from telephony.g711 import mulaw_to_pcm, pcm_to_mulaw

REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_speech_dir() -> Path:
    """Return $VOICEBOT_SHARED_SPEECH, or shared/speech beside the repository."""
    configured = os.environ.get("VOICEBOT_SHARED_SPEECH", "").strip()
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "speech"


def _to_pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def read_wav_16k(path: Path) -> bytes:
    """Read a WAV file as 16 kHz mono 16-bit PCM."""
    samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
    return _to_pcm16(soxr.resample(samples.mean(axis=1), rate, 16_000))


def read_wav_telephone(path: Path) -> bytes:
    """Read a WAV file through the phone path: 8 kHz, G.711 mu-law encode and decode, back to 16 kHz."""
    samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
    narrowband = _to_pcm16(soxr.resample(samples.mean(axis=1), rate, 8_000))
    decoded = np.frombuffer(mulaw_to_pcm(pcm_to_mulaw(narrowband)), dtype="<i2").astype(np.float32) / 32768.0
    return _to_pcm16(soxr.resample(decoded, 8_000, 16_000))


def read_manifest(folder: Path) -> dict[str, dict[str, str]]:
    """Return the rows of folder/MANIFEST.tsv keyed by file name."""
    with open(folder / "MANIFEST.tsv", encoding="utf-8", newline="") as f:
        return {row["file"]: row for row in csv.DictReader(f, delimiter="\t")}
