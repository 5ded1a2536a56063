"""Tests of WebRTCVADAnalyzer with the real webrtcvad module and the caller clips."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
from pipecat.audio.vad.vad_analyzer import VADParams, VADState

from telephony.g711 import mulaw_to_pcm, pcm_to_mulaw
from voicebot.audio.webrtc_vad import PHONE_VAD_PARAMS, WebRTCVADAnalyzer
from voicebot.errors import AudioError, ConfigError

pytestmark = pytest.mark.timeout(120)

LEAD_SILENCE_S = 0.5
TAIL_SILENCE_S = 1.0


def _float_to_pcm(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()


def _pcm_to_float(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def _silence(seconds: float, sample_rate: int) -> bytes:
    return bytes(int(seconds * sample_rate) * 2)


def _load_clip(path: Path) -> tuple[np.ndarray, int]:
    samples, sample_rate = sf.read(path, dtype="float32", always_2d=False)
    return samples, sample_rate


def _phone_pcm(samples: np.ndarray, sample_rate: int, *, gain_db: float = 0.0) -> bytes:
    """Pass a clip through the telephone path: 8 kHz, mu-law encode and decode."""
    narrowband = soxr.resample(samples, sample_rate, 8000) * 10 ** (gain_db / 20)
    return mulaw_to_pcm(pcm_to_mulaw(_float_to_pcm(narrowband)))


def _clip_pcm(samples: np.ndarray, sample_rate: int, path_name: str) -> tuple[bytes, int]:
    """Return the clip as 16-bit PCM for one input path, and its sample rate."""
    if path_name == "mulaw_8k":
        return _phone_pcm(samples, sample_rate), 8000
    if path_name == "mulaw_8k_to_16k":
        phone = _pcm_to_float(_phone_pcm(samples, sample_rate))
        return _float_to_pcm(soxr.resample(phone, 8000, 16000)), 16000
    if path_name == "resampled_16k":
        return _float_to_pcm(soxr.resample(samples, sample_rate, 16000)), 16000
    raise ValueError(path_name)


def _aligned_states(analyzer: WebRTCVADAnalyzer, pcm: bytes) -> list[VADState]:
    """Feed whole frames one at a time and return the state after each frame."""
    frame_num_bytes = analyzer.frame_num_bytes
    states = []
    for start in range(0, len(pcm) - frame_num_bytes + 1, frame_num_bytes):
        states.append(analyzer._run_analyzer(pcm[start : start + frame_num_bytes]))
    return states


def _clip_names(callers_dir: Path) -> list[str]:
    with open(callers_dir / "MANIFEST.tsv", encoding="utf-8", newline="") as manifest:
        return [row["file"] for row in csv.DictReader(manifest, delimiter="\t")]


@pytest.fixture(scope="module")
def sample_clip(callers_dir: Path) -> tuple[np.ndarray, int]:
    return _load_clip(callers_dir / "faq_card_activation.wav")


@pytest.mark.parametrize("sample_rate", [8000, 16000])
@pytest.mark.parametrize("chunk_sizes", [[1], [7], [161], [333], [1000], [3, 1, 640, 7, 2, 33, 161, 999]])
async def test_chunking_matches_aligned_frames(sample_clip, sample_rate, chunk_sizes):
    """Chunks of any byte count, odd ones split mid-sample, give the aligned-frame states."""
    samples, clip_rate = sample_clip
    if sample_rate == 8000:
        speech = _phone_pcm(samples, clip_rate)
    else:
        speech = _float_to_pcm(soxr.resample(samples, clip_rate, 16000))
    if chunk_sizes == [1]:
        # One-byte chunks take one executor hop per byte, so a second of speech is enough.
        speech = speech[: sample_rate * 2]
    pcm = _silence(0.3, sample_rate) + speech + _silence(0.5, sample_rate)

    reference = WebRTCVADAnalyzer(sample_rate=sample_rate)
    expected = _aligned_states(reference, pcm)
    assert VADState.SPEAKING in expected

    analyzer = WebRTCVADAnalyzer(sample_rate=sample_rate)
    frame_num_bytes = analyzer.frame_num_bytes
    offset = 0
    call_index = 0
    while offset < len(pcm):
        size = chunk_sizes[call_index % len(chunk_sizes)]
        chunk = pcm[offset : offset + size]
        state = await analyzer.analyze_audio(chunk)
        offset += len(chunk)
        call_index += 1

        frames_done = offset // frame_num_bytes
        expected_state = expected[frames_done - 1] if frames_done else VADState.QUIET
        assert state == expected_state, f"after {offset} bytes ({frames_done} frames)"
    await analyzer.cleanup()
    await reference.cleanup()


@pytest.mark.parametrize("path_name", ["mulaw_8k", "mulaw_8k_to_16k", "resampled_16k"])
def test_caller_clips_start_and_stop(callers_dir, path_name):
    """Every caller clip reaches SPEAKING during the speech and QUIET after it."""
    for name in _clip_names(callers_dir):
        samples, clip_rate = _load_clip(callers_dir / name)
        speech, sample_rate = _clip_pcm(samples, clip_rate, path_name)
        pcm = _silence(LEAD_SILENCE_S, sample_rate) + speech + _silence(TAIL_SILENCE_S, sample_rate)

        analyzer = WebRTCVADAnalyzer(sample_rate=sample_rate)
        states = _aligned_states(analyzer, pcm)
        frame_s = analyzer.frame_ms / 1000

        speaking = [index for index, state in enumerate(states) if state == VADState.SPEAKING]
        assert speaking, f"{name} via {path_name} never reached SPEAKING"
        assert speaking[0] * frame_s >= LEAD_SILENCE_S, f"{name} via {path_name} started in the lead silence"
        assert states[-1] == VADState.QUIET, f"{name} via {path_name} did not return to QUIET"


def test_quiet_caller_triggers_with_phone_params(callers_dir):
    """Clips 30 dB below their recorded level still reach SPEAKING with the phone defaults."""
    for name in _clip_names(callers_dir):
        samples, clip_rate = _load_clip(callers_dir / name)
        pcm = _silence(LEAD_SILENCE_S, 8000) + _phone_pcm(samples, clip_rate, gain_db=-30) + _silence(TAIL_SILENCE_S, 8000)

        states = _aligned_states(WebRTCVADAnalyzer(sample_rate=8000), pcm)

        assert VADState.SPEAKING in states, f"{name} at -30 dB never reached SPEAKING"
        assert states[-1] == VADState.QUIET, f"{name} at -30 dB did not return to QUIET"


@pytest.mark.parametrize("sample_rate", [8000, 16000])
@pytest.mark.parametrize("aggressiveness", [0, 1, 2, 3])
def test_silence_and_low_noise_stay_quiet(sample_rate, aggressiveness):
    """Digital silence, mu-law idle code and -50 dBFS white noise never leave QUIET."""
    rng = np.random.default_rng(1234)
    noise = _float_to_pcm(rng.normal(0.0, 10 ** (-50 / 20), sample_rate * 3))
    idle_mulaw = mulaw_to_pcm(b"\xff" * 8000 * 2)
    if sample_rate == 16000:
        idle_mulaw = _float_to_pcm(soxr.resample(_pcm_to_float(idle_mulaw), 8000, 16000))
    inputs = {"digital silence": _silence(3.0, sample_rate), "mu-law idle": idle_mulaw, "white noise": noise}

    for label, pcm in inputs.items():
        analyzer = WebRTCVADAnalyzer(sample_rate=sample_rate, aggressiveness=aggressiveness)
        states = _aligned_states(analyzer, pcm)
        assert set(states) == {VADState.QUIET}, f"{label} left QUIET"


def test_frame_lengths_all_detect_speech(sample_clip):
    """10, 20 and 30 ms frames all detect the clip and size frames from the sample rate."""
    samples, clip_rate = sample_clip
    pcm = _silence(LEAD_SILENCE_S, 8000) + _phone_pcm(samples, clip_rate) + _silence(TAIL_SILENCE_S, 8000)
    for frame_ms in (10, 20, 30):
        analyzer = WebRTCVADAnalyzer(sample_rate=8000, frame_ms=frame_ms)
        assert analyzer.num_frames_required() == 8 * frame_ms
        assert analyzer.frame_num_bytes == 16 * frame_ms

        states = _aligned_states(analyzer, pcm)

        assert VADState.SPEAKING in states, f"{frame_ms} ms frames never reached SPEAKING"
        assert states[-1] == VADState.QUIET, f"{frame_ms} ms frames did not return to QUIET"


def test_sample_rate_from_pipeline():
    """Without a constructor rate, set_sample_rate from the pipeline sizes the frames."""
    analyzer = WebRTCVADAnalyzer()
    analyzer.set_sample_rate(16000)
    assert analyzer.sample_rate == 16000
    assert analyzer.num_frames_required() == 320

    fixed = WebRTCVADAnalyzer(sample_rate=8000)
    fixed.set_sample_rate(16000)
    assert fixed.sample_rate == 8000


def test_is_speech_frame(sample_clip):
    """is_speech_frame classifies single frames and rejects a frame of the wrong length."""
    samples, clip_rate = sample_clip
    speech = _phone_pcm(samples, clip_rate)
    analyzer = WebRTCVADAnalyzer(sample_rate=8000)
    frame_num_bytes = analyzer.frame_num_bytes
    frames = [speech[start : start + frame_num_bytes] for start in range(0, len(speech) - frame_num_bytes + 1, frame_num_bytes)]

    assert analyzer.is_speech_frame(bytes(frame_num_bytes)) is False
    assert sum(analyzer.is_speech_frame(frame) for frame in frames) > len(frames) // 2
    with pytest.raises(AudioError, match="161 bytes"):
        analyzer.is_speech_frame(bytes(161))


def test_is_speech_frame_without_rate():
    """is_speech_frame before any sample rate is known raises ConfigError."""
    with pytest.raises(ConfigError, match="sample rate is not set"):
        WebRTCVADAnalyzer().is_speech_frame(bytes(320))


def test_phone_params_are_default():
    """The analyzer uses the phone parameters unless others are given."""
    assert WebRTCVADAnalyzer().params == PHONE_VAD_PARAMS
    custom = VADParams(stop_secs=0.5)
    assert WebRTCVADAnalyzer(params=custom).params == custom


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"aggressiveness": -1}, "aggressiveness -1"),
        ({"aggressiveness": 4}, "aggressiveness 4"),
        ({"aggressiveness": True}, "aggressiveness True"),
        ({"frame_ms": 15}, "frame length 15 ms"),
        ({"frame_ms": 40}, "frame length 40 ms"),
        ({"sample_rate": 11025}, "sample rate 11025 Hz"),
        ({"sample_rate": 44100}, "sample rate 44100 Hz"),
    ],
)
def test_invalid_settings_raise(kwargs, message):
    """Settings outside what the WebRTC VAD accepts raise ConfigError naming the value."""
    with pytest.raises(ConfigError, match=message):
        WebRTCVADAnalyzer(**kwargs)


def test_invalid_pipeline_rate_raises():
    """set_sample_rate with an unsupported pipeline rate raises ConfigError listing the rates."""
    analyzer = WebRTCVADAnalyzer()
    with pytest.raises(ConfigError, match="22050 Hz.*8000, 16000, 32000, 48000"):
        analyzer.set_sample_rate(22050)
