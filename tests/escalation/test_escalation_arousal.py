"""Acoustic arousal: loudness and pitch against the caller's own baseline."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from voicebot.errors import AudioError
from voicebot.escalation import ArousalTracker, measure_turn

SAMPLE_RATE_HZ = 16_000


def _voice(f0_hz: float, *, amplitude: float, seconds: float = 1.5) -> np.ndarray:
    """A vowel-like tone: F0 with two harmonics and a slow loudness contour."""
    t = np.arange(int(seconds * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ
    contour = 0.8 + 0.2 * np.sin(2 * np.pi * 3 * t)
    wave = sum(weight * np.sin(2 * np.pi * harmonic * f0_hz * t) for harmonic, weight in ((1, 1.0), (2, 0.5), (3, 0.25)))
    return amplitude * contour * wave / 1.75


def _tracker_with_baseline(turn: np.ndarray) -> ArousalTracker:
    tracker = ArousalTracker(baseline_turns=2, loudness_rise_db=6.0, pitch_rise_semitones=3.0)
    assert not tracker.add_turn(turn).aroused
    assert not tracker.add_turn(turn).aroused
    assert tracker.baseline is not None
    return tracker


@pytest.mark.parametrize("f0_hz", [90.0, 140.0, 220.0, 320.0])
def test_pitch_estimate(f0_hz):
    """The F0 of a harmonic tone is found within 2 %."""
    measured = measure_turn(_voice(f0_hz, amplitude=0.3))
    assert measured.f0_hz == pytest.approx(f0_hz, rel=0.02)


def test_loudness_in_dbfs():
    """A sine of amplitude 0.5 reads about -9 dBFS (a full-scale sine reads -3 dBFS)."""
    t = np.arange(SAMPLE_RATE_HZ) / SAMPLE_RATE_HZ
    measured = measure_turn(0.5 * np.sin(2 * np.pi * 200 * t))
    assert measured.rms_dbfs == pytest.approx(-9.03, abs=0.2)


def test_int16_bytes_match_floats():
    """int16 bytes, int16 arrays and float arrays measure the same."""
    wave = _voice(150.0, amplitude=0.3)
    pcm16 = np.round(wave * 32767).astype(np.int16)
    from_float = measure_turn(wave)
    from_bytes = measure_turn(pcm16.astype("<i2").tobytes())
    from_array = measure_turn(pcm16)
    assert from_bytes.rms_dbfs == pytest.approx(from_float.rms_dbfs, abs=0.05)
    assert from_array.f0_hz == pytest.approx(from_float.f0_hz, rel=0.001)


def test_bad_pcm_raises():
    """Odd-length bytes and stereo arrays raise AudioError naming the problem."""
    with pytest.raises(AudioError, match="odd length 3"):
        measure_turn(b"\x00\x01\x02")
    with pytest.raises(AudioError, match="1-D"):
        measure_turn(np.zeros((100, 2)))


def test_louder_and_higher_fires():
    """A turn 10 dB louder and 5 semitones higher than the baseline fires."""
    tracker = _tracker_with_baseline(_voice(150.0, amplitude=0.1))
    reading = tracker.add_turn(_voice(200.0, amplitude=0.32))
    assert reading.loudness_rise_db == pytest.approx(10.1, abs=0.5)
    assert reading.pitch_rise_semitones == pytest.approx(4.98, abs=0.2)
    assert reading.aroused


def test_louder_only_does_not_fire():
    """A louder turn at the same pitch (a caller moving closer to the phone) does not fire."""
    tracker = _tracker_with_baseline(_voice(150.0, amplitude=0.1))
    assert not tracker.add_turn(_voice(150.0, amplitude=0.4)).aroused


def test_higher_only_does_not_fire():
    """A higher turn at the same loudness does not fire."""
    tracker = _tracker_with_baseline(_voice(150.0, amplitude=0.1))
    assert not tracker.add_turn(_voice(220.0, amplitude=0.1)).aroused


def test_noise_burst_does_not_fire():
    """Loud amplitude-modulated noise has no pitch, so it neither fires nor joins the baseline."""
    rng = np.random.default_rng(7)
    t = np.arange(SAMPLE_RATE_HZ) / SAMPLE_RATE_HZ
    noise = rng.normal(0.0, 0.2, t.size) * (1.0 + 0.8 * np.sin(2 * np.pi * 5 * t))
    fresh = ArousalTracker()
    assert fresh.add_turn(noise).turn.f0_hz is None
    assert fresh.baseline is None

    tracker = _tracker_with_baseline(_voice(150.0, amplitude=0.05))
    reading = tracker.add_turn(noise)
    assert reading.turn.f0_hz is None
    assert not reading.aroused


def test_silence_does_not_fire():
    """A silent turn is measured as silence and does not fire."""
    tracker = _tracker_with_baseline(_voice(150.0, amplitude=0.1))
    reading = tracker.add_turn(np.zeros(SAMPLE_RATE_HZ, dtype=np.int16))
    assert reading.turn.f0_hz is None
    assert not reading.aroused


def _load_16k(path) -> np.ndarray:
    samples, rate = soundfile.read(path, dtype="float64")
    duration = len(samples) / rate
    times = np.arange(int(duration * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ
    return np.interp(times, np.arange(len(samples)) / rate, samples)


def _raise_pitch(samples: np.ndarray, factor: float) -> np.ndarray:
    """Play `samples` `factor` times faster: pitch rises by `factor`, as on a sped-up tape."""
    positions = np.arange(0, len(samples) - 1, factor)
    return np.interp(positions, np.arange(len(samples)), samples)


def test_caller_clip_louder_and_higher(callers_folder):
    """A real caller clip made 8 dB louder and 30 % higher fires against the same clip at baseline."""
    clip = _load_16k(callers_folder / "emotion_distressed.wav")
    baseline_turn = 0.3 * clip / np.max(np.abs(clip))
    tracker = _tracker_with_baseline(baseline_turn)

    same = tracker.add_turn(baseline_turn)
    assert abs(same.loudness_rise_db) < 1.0
    assert abs(same.pitch_rise_semitones) < 1.0
    assert not same.aroused

    louder_only = tracker.add_turn(baseline_turn * 10 ** (8 / 20))
    assert not louder_only.aroused

    aroused = tracker.add_turn(_raise_pitch(baseline_turn, 1.3) * 10 ** (8 / 20))
    assert aroused.loudness_rise_db > 6.0
    assert aroused.pitch_rise_semitones > 3.0
    assert aroused.aroused
