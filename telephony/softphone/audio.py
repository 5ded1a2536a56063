"""Caller audio and bot playout of the test softphone.

Caller WAV files become 20 ms frames of 8 kHz G.711 mu-law. The bot's audio plays on a
simulated playout clock (`PlayoutBuffer`) that drains 8000 samples per second, and the
audio played can be written back to a WAV file.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr

from telephony.g711 import mulaw_to_pcm, pcm_to_mulaw
from telephony.mediastream import TELEPHONE_SAMPLE_RATE, PlayMark
from voicebot.errors import AudioError

FRAME_MS = 20
FRAME_SAMPLES = TELEPHONE_SAMPLE_RATE * FRAME_MS // 1000  # 160 samples, one byte each in mu-law
MULAW_SILENCE = b"\xff" * FRAME_SAMPLES  # mu-law code of PCM 0

# A frame counts as voiced when its RMS is within this many dB of the clip's loudest frame.
# In the recorded caller sentences of the test set, the last syllable measures -21 to -39 dB
# and the trailing pause below -40 dB (mostly digital silence, below -100 dB).
VOICED_THRESHOLD_DB = 40.0
# A clip whose loudest frame is below this RMS (-80 dBFS, full scale 1.0) has no speech.
MIN_SPEECH_RMS = 1e-4


@dataclass(frozen=True)
class CallerClip:
    """One caller turn as 8 kHz mu-law frames."""

    path: Path
    frames: tuple[bytes, ...]
    last_voiced_frame: int  # index of the last frame that counts as speech


def last_voiced_frame_index(pcm: np.ndarray, *, threshold_db: float = VOICED_THRESHOLD_DB) -> int:
    """Return the index of the last 20 ms frame whose RMS is within threshold_db of the peak frame.

    `pcm` contains float samples at 8 kHz. A clip without speech returns its last frame index,
    so the whole clip counts as the caller's turn.
    """
    frame_count = max(1, math.ceil(len(pcm) / FRAME_SAMPLES))
    padded = np.zeros(frame_count * FRAME_SAMPLES, dtype=np.float64)
    padded[: len(pcm)] = pcm
    rms = np.sqrt(np.mean(padded.reshape(frame_count, FRAME_SAMPLES) ** 2, axis=1))
    peak = float(rms.max())
    if peak < MIN_SPEECH_RMS:
        return frame_count - 1
    voiced = np.flatnonzero(rms >= peak * 10 ** (-threshold_db / 20))
    return int(voiced[-1])


def load_caller_clip(path: str | Path) -> CallerClip:
    """Read a WAV file of any rate and sample format and convert it to 8 kHz mu-law frames.

    Raises AudioError naming the file and the reason when it is missing or unreadable.
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(f"caller audio {path} not found; pass an existing WAV file with --wav")
    if path.is_dir():
        raise AudioError(f"caller audio {path} is a directory; pass a WAV file with --wav")
    try:
        samples, sample_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as e:
        raise AudioError(f"caller audio {path} cannot be read as a sound file ({e}); pass a WAV file") from e
    if samples.shape[0] == 0:
        raise AudioError(f"caller audio {path} contains no samples; pass a WAV file with speech")

    mono = samples.mean(axis=1)
    if sample_rate != TELEPHONE_SAMPLE_RATE:
        mono = soxr.resample(mono, sample_rate, TELEPHONE_SAMPLE_RATE, quality="HQ")
    mono = np.clip(mono, -1.0, 1.0)
    pcm = np.round(mono * 32767).astype("<i2").tobytes()
    payload = pcm_to_mulaw(pcm)

    frame_count = max(1, math.ceil(len(payload) / FRAME_SAMPLES))
    payload = payload.ljust(frame_count * FRAME_SAMPLES, MULAW_SILENCE[:1])
    frames = tuple(payload[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES] for i in range(frame_count))
    return CallerClip(path=path, frames=frames, last_voiced_frame=last_voiced_frame_index(mono))


class PlayoutBuffer:
    """Simulated playout of the bot's audio: a queue of mu-law audio and marks that drains in real time.

    Pure state machine: every method takes the current time in seconds (any monotonic clock)
    and returns the names of the marks that playout has reached, in order, for the caller
    to echo. Audio played is appended to `played` (mu-law bytes).
    """

    def __init__(self, *, sample_rate_hz: int = TELEPHONE_SAMPLE_RATE) -> None:
        self.sample_rate_hz = sample_rate_hz
        self.played = bytearray()
        self._queue: deque[bytes | PlayMark] = deque()
        self._buffered_samples = 0
        # Start of the current busy period (audio or marks queued) and the samples played since.
        # Counting from a fixed origin keeps float rounding from accumulating.
        self._origin_s = 0.0
        self._played_since_origin = 0

    @property
    def buffered_samples(self) -> int:
        return self._buffered_samples

    @property
    def idle(self) -> bool:
        """True when no audio or mark is waiting to be played."""
        return not self._queue

    def remaining_s(self) -> float:
        """Seconds of audio buffered and not yet played."""
        return self._buffered_samples / self.sample_rate_hz

    def advance(self, now_s: float) -> list[str]:
        """Play the audio due by now_s and return the marks reached."""
        if not self._queue:
            # The line is idle, so time spent idle is not credited to audio that arrives later.
            self._origin_s = now_s
            self._played_since_origin = 0
            return []
        # The 1e-6 keeps a time that is an exact number of samples from rounding one sample short.
        due_samples = int(max(0.0, now_s - self._origin_s) * self.sample_rate_hz + 1e-6)
        budget = max(0, due_samples - self._played_since_origin)

        reached: list[str] = []
        while self._queue:
            head = self._queue[0]
            if isinstance(head, PlayMark):
                reached.append(head.name)
                self._queue.popleft()
                continue
            if budget == 0:
                break
            take = min(budget, len(head))
            self.played += head[:take]
            self._buffered_samples -= take
            self._played_since_origin += take
            budget -= take
            if take == len(head):
                self._queue.popleft()
            else:
                self._queue[0] = head[take:]
        return reached

    def push_media(self, payload: bytes, now_s: float) -> list[str]:
        """Queue received audio behind the buffered audio and return the marks reached before it arrived."""
        reached = self.advance(now_s)
        if payload:
            self._queue.append(payload)
            self._buffered_samples += len(payload)
        return reached

    def push_mark(self, name: str, now_s: float) -> list[str]:
        """Queue a mark behind the buffered audio. With nothing buffered, the mark is reached at once."""
        reached = self.advance(now_s)
        self._queue.append(PlayMark(name))
        return reached + self.advance(now_s)

    def clear(self, now_s: float) -> list[str]:
        """Drop the unplayed audio and return every pending mark, as Twilio does on `clear`."""
        reached = self.advance(now_s)
        reached += [item.name for item in self._queue if isinstance(item, PlayMark)]
        self._queue.clear()
        self._buffered_samples = 0
        return reached


def check_out_path(out: str | Path | None) -> Path | None:
    if out is None:
        return None
    out = Path(out)
    if out.is_dir():
        raise AudioError(f"--out {out} is a directory; pass a WAV file path")
    if not out.parent.is_dir():
        raise AudioError(f"--out {out}: directory {out.parent} not found; create it or choose another path")
    return out


def write_played_audio(path: str | Path, mulaw: bytes) -> None:
    """Write mu-law bot audio as an 8 kHz 16-bit mono WAV file."""
    pcm = np.frombuffer(mulaw_to_pcm(mulaw), dtype="<i2")
    soundfile.write(str(path), pcm, TELEPHONE_SAMPLE_RATE, subtype="PCM_16")

