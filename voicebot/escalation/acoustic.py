"""Acoustic arousal: a caller turn much louder and higher-pitched than the caller's own start.

Anger and panic raise both the level and the pitch of the voice. Absolute values mean
little on the phone (a headset and a speakerphone differ by 20 dB, a low and a high
voice by an octave), so each turn is compared with the caller's own baseline: the mean
of the first `baseline_turns` turns that had voiced speech.

Per turn of 16 kHz mono PCM:

- loudness: RMS level in dBFS over the voiced frames (a full-scale sine reads -3 dBFS);
- pitch: the median F0 of the voiced frames, each estimated from the peak of the
  normalised autocorrelation within the F0 search range, refined by parabolic
  interpolation. A frame is voiced when its level is within `voicing_range_db` of the
  loudest frame of the turn and its autocorrelation peak reaches `min_periodicity`.

A turn fires when its loudness is at least `loudness_rise_db` above the baseline and its
pitch at least `pitch_rise_semitones` above it. Noise has no stable period, so a loud
noise burst without voice does not fire.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from voicebot.errors import AudioError

FRAME_SECONDS = 0.04  # long enough for two periods at the lowest F0 searched (60 Hz)
HOP_SECONDS = 0.02
_SILENCE_DBFS = -120.0


@dataclass(frozen=True)
class TurnAcoustics:
    """Loudness and pitch of one turn's voiced frames."""

    rms_dbfs: float
    f0_hz: float | None  # None when too few frames were voiced
    voiced_seconds: float


@dataclass(frozen=True)
class ArousalReading:
    """One turn measured against the caller's baseline."""

    turn: TurnAcoustics
    baseline_rms_dbfs: float | None  # None while the baseline is still being collected
    baseline_f0_hz: float | None
    loudness_rise_db: float | None
    pitch_rise_semitones: float | None
    aroused: bool


def pcm_to_float(pcm: bytes | np.ndarray) -> np.ndarray:
    """Return mono samples as float64 in -1..1 from int16 bytes, an int16 array or a float array."""
    if isinstance(pcm, (bytes, bytearray, memoryview)):
        if len(pcm) % 2:
            raise AudioError(f"PCM byte string has odd length {len(pcm)}; expected 16-bit little-endian samples")
        return np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768.0
    samples = np.asarray(pcm)
    if samples.ndim != 1:
        raise AudioError(f"expected mono PCM as a 1-D array, got shape {samples.shape}; mix down channels first")
    if samples.dtype == np.int16:
        return samples.astype(np.float64) / 32768.0
    if np.issubdtype(samples.dtype, np.floating):
        return samples.astype(np.float64)
    raise AudioError(f"unsupported PCM sample type {samples.dtype}; pass int16 or float samples in -1..1")


def _frames(samples: np.ndarray, frame: int, hop: int) -> np.ndarray:
    count = 1 + (len(samples) - frame) // hop
    index = np.arange(frame)[None, :] + hop * np.arange(count)[:, None]
    return samples[index]


def measure_turn(
    pcm: bytes | np.ndarray,
    *,
    sample_rate_hz: int = 16_000,
    f0_min_hz: float = 60.0,
    f0_max_hz: float = 400.0,
    voicing_range_db: float = 30.0,
    min_periodicity: float = 0.5,
) -> TurnAcoustics:
    """Measure the loudness (RMS dBFS) and median F0 of the voiced frames of one turn."""
    samples = pcm_to_float(pcm)
    frame = int(round(FRAME_SECONDS * sample_rate_hz))
    hop = int(round(HOP_SECONDS * sample_rate_hz))
    if len(samples) < frame:
        return TurnAcoustics(rms_dbfs=_SILENCE_DBFS, f0_hz=None, voiced_seconds=0.0)

    frames = _frames(samples, frame, hop)
    frames = frames - frames.mean(axis=1, keepdims=True)
    energy = np.mean(frames**2, axis=1)
    level_db = 10.0 * np.log10(np.maximum(energy, 1e-12))
    loud = level_db >= level_db.max() - voicing_range_db
    if not np.any(energy[loud] > 1e-10):
        return TurnAcoustics(rms_dbfs=_SILENCE_DBFS, f0_hz=None, voiced_seconds=0.0)

    # Autocorrelation of each windowed frame through the FFT, zero-padded to avoid wrap-around.
    windowed = frames[loud] * np.hanning(frame)[None, :]
    spectrum = np.fft.rfft(windowed, n=2 * frame, axis=1)
    autocorrelation = np.fft.irfft(np.abs(spectrum) ** 2, axis=1)[:, :frame]
    # Divide by the overlap of the window with itself at each lag, so that long lags
    # are not penalised for having fewer samples.
    window_overlap = np.fft.irfft(np.abs(np.fft.rfft(np.hanning(frame), n=2 * frame)) ** 2)[:frame]
    normalised = (autocorrelation / np.maximum(window_overlap, 1e-12)[None, :]) / np.maximum(
        autocorrelation[:, :1] / window_overlap[0], 1e-12
    )

    min_lag = max(2, int(sample_rate_hz / f0_max_hz))
    max_lag = min(frame - 2, int(math.ceil(sample_rate_hz / f0_min_hz)))
    search = normalised[:, min_lag : max_lag + 1]
    # The first lag whose value is within 10 % of the frame's best peak, so that the
    # true period wins over its multiples (octave errors downwards).
    best = search.max(axis=1)
    candidates = search >= 0.9 * best[:, None]
    is_peak = np.zeros_like(candidates)
    is_peak[:, 1:-1] = (search[:, 1:-1] >= search[:, :-2]) & (search[:, 1:-1] >= search[:, 2:])
    peak_index = np.argmax(candidates & is_peak, axis=1)
    has_peak = np.any(candidates & is_peak, axis=1)
    periodic = has_peak & (best >= min_periodicity)

    f0_values = []
    for row, index in zip(np.nonzero(periodic)[0], peak_index[periodic]):
        left, centre, right = search[row, index - 1], search[row, index], search[row, index + 1]
        denominator = left - 2.0 * centre + right
        offset = 0.5 * (left - right) / denominator if denominator != 0 else 0.0
        f0_values.append(sample_rate_hz / (min_lag + index + offset))

    voiced_energy = energy[loud][periodic] if len(f0_values) else energy[loud]
    rms_dbfs = 10.0 * math.log10(max(float(np.mean(voiced_energy)), 1e-12))
    voiced_seconds = len(f0_values) * HOP_SECONDS
    f0 = float(np.median(f0_values)) if len(f0_values) >= 3 else None
    return TurnAcoustics(rms_dbfs=rms_dbfs, f0_hz=f0, voiced_seconds=voiced_seconds)


class ArousalTracker:
    """Compares each caller turn with the caller's own baseline loudness and pitch.

    One tracker belongs to one call. Turns without enough voiced speech (noise, silence,
    less than `min_voiced_seconds`) are measured but neither join the baseline nor fire.
    """

    RULE_ID = "arousal.louder_and_higher"

    def __init__(
        self,
        *,
        sample_rate_hz: int = 16_000,
        baseline_turns: int = 2,
        loudness_rise_db: float = 6.0,
        pitch_rise_semitones: float = 3.0,
        min_voiced_seconds: float = 0.3,
        f0_min_hz: float = 60.0,
        f0_max_hz: float = 400.0,
    ) -> None:
        if sample_rate_hz < 2 * f0_max_hz:
            raise ValueError(f"sample_rate_hz {sample_rate_hz} is too low for f0_max_hz {f0_max_hz}")
        if baseline_turns < 1:
            raise ValueError(f"baseline_turns must be 1 or more, got {baseline_turns}")
        self.sample_rate_hz = sample_rate_hz
        self.baseline_turns = baseline_turns
        self.loudness_rise_db = loudness_rise_db
        self.pitch_rise_semitones = pitch_rise_semitones
        self.min_voiced_seconds = min_voiced_seconds
        self.f0_min_hz = f0_min_hz
        self.f0_max_hz = f0_max_hz
        self._baseline: list[TurnAcoustics] = []

    @property
    def baseline(self) -> tuple[float, float] | None:
        """Return the baseline (RMS dBFS, F0 Hz) once `baseline_turns` voiced turns were seen."""
        if len(self._baseline) < self.baseline_turns:
            return None
        rms = float(np.mean([turn.rms_dbfs for turn in self._baseline]))
        # Pitch is averaged on a log scale, as it is heard.
        f0 = float(np.exp(np.mean([math.log(turn.f0_hz or 1.0) for turn in self._baseline])))
        return rms, f0

    def add_turn(self, pcm: bytes | np.ndarray) -> ArousalReading:
        """Measure one finished turn of PCM at `sample_rate_hz` and compare it with the baseline."""
        turn = measure_turn(pcm, sample_rate_hz=self.sample_rate_hz, f0_min_hz=self.f0_min_hz, f0_max_hz=self.f0_max_hz)
        voiced = turn.f0_hz is not None and turn.voiced_seconds >= self.min_voiced_seconds
        baseline = self.baseline
        if baseline is None:
            if voiced:
                self._baseline.append(turn)
            return ArousalReading(turn, None, None, None, None, aroused=False)

        base_rms, base_f0 = baseline
        loudness_rise = turn.rms_dbfs - base_rms
        pitch_rise = 12.0 * math.log2(turn.f0_hz / base_f0) if turn.f0_hz is not None else None
        aroused = (
            voiced
            and pitch_rise is not None
            and loudness_rise >= self.loudness_rise_db
            and pitch_rise >= self.pitch_rise_semitones
        )
        return ArousalReading(turn, base_rms, base_f0, loudness_rise, pitch_rise, aroused=aroused)
