"""Voice activity detection with the WebRTC VAD (the `webrtcvad` module) for pipecat.

The WebRTC VAD is a GMM classifier that scores one frame of 10, 20 or 30 ms of 16-bit
mono PCM at 8, 16, 32 or 48 kHz and returns a yes/no decision. It costs a few
microseconds per frame and needs no model file, which suits many concurrent phone calls.

`WebRTCVADAnalyzer` plugs it into pipecat's `VADAnalyzer`. Pipecat delivers audio in
chunks of any size, so the analyzer buffers bytes and cuts exact frames out of the
stream. It also checks the start and stop thresholds of the QUIET/STARTING/SPEAKING/
STOPPING state machine after every frame, where the pipecat 1.14 base class checks them
once per chunk. So the state after each chunk depends only on the audio received so far,
not on how it was split into chunks.
"""

from __future__ import annotations

import logging

import webrtcvad
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADParams, VADState

from voicebot.errors import AudioError, ConfigError

logger = logging.getLogger(__name__)

SUPPORTED_SAMPLE_RATES: tuple[int, ...] = (8000, 16000, 32000, 48000)
SUPPORTED_FRAME_MS: tuple[int, ...] = (10, 20, 30)
SUPPORTED_AGGRESSIVENESS: tuple[int, ...] = (0, 1, 2, 3)

# Defaults for telephone audio (G.711 at 8 kHz, possibly resampled to 16 kHz).
#
# confidence: webrtcvad decides yes or no, so the analyzer reports 1.0 or 0.0 and any
#   threshold in (0, 1] behaves the same. 0.5 states that plainly.
# start_secs 0.2: ten 20 ms frames of speech in a row before SPEAKING. This ignores
#   clicks, line pops and short noise bursts that the WebRTC VAD marks as speech.
# stop_secs 0.2: ten non-speech frames end a speech segment. End of turn is judged by a
#   separate turn model after this, so the VAD only needs to report pauses quickly. The
#   WebRTC VAD itself keeps saying "speech" for 80-120 ms after the voice stops (measured on
#   the 22 caller clips against a 300 RMS energy cut), so a pause is reported after about
#   0.3 s of real silence. 0.1 s ended turns at mid-sentence pauses of 0.2-0.3 s (信用卡年费
#   是多少？ …… 怎么才能免年费？) early enough for the reply to start before the caller went on.
# min_volume 0.45: pipecat maps loudness over a 400 ms window from -110..-10 LUFS to
#   0..1, so 0.45 is -65 LUFS. The caller clips measure about -22 LUFS (0.88) after the
#   mu-law round trip, and the same clips 30 dB quieter (about -52 LUFS, 0.58) still
#   reach SPEAKING. Pipecat's own default, 0.6 (-50 LUFS), misses 7 of those 22 quiet
#   clips. Audio below -65 LUFS is treated as silence whatever webrtcvad decides.
# Measured on 22 synthetic Mandarin caller clips through the 8 kHz mu-law path with
# aggressiveness 2. tests/audio/test_webrtc_vad.py checks the -30 dB case.
PHONE_VAD_PARAMS = VADParams(confidence=0.5, start_secs=0.2, stop_secs=0.2, min_volume=0.45)


def _check_sample_rate(sample_rate: int) -> None:
    if sample_rate not in SUPPORTED_SAMPLE_RATES:
        raise ConfigError(
            f"Invalid VAD sample rate {sample_rate} Hz: the WebRTC VAD accepts "
            f"{', '.join(str(rate) for rate in SUPPORTED_SAMPLE_RATES)} Hz. "
            "Resample the input audio to one of them."
        )


class WebRTCVADAnalyzer(VADAnalyzer):
    """Pipecat VAD analyzer backed by the WebRTC VAD.

    Each analyzer serves one audio stream, because the WebRTC VAD adapts its noise
    model to the frames it has seen. Create one per call.
    """

    def __init__(
        self,
        *,
        sample_rate: int | None = None,
        params: VADParams | None = None,
        aggressiveness: int = 2,
        frame_ms: int = 20,
    ) -> None:
        """Create the analyzer.

        Args:
            sample_rate: Input sample rate in Hz (8000, 16000, 32000 or 48000). When it
                is set, it overrides the rate passed to `set_sample_rate` later, as in
                the pipecat base class. None takes the rate of the pipeline.
            params: Start/stop timing and thresholds. None uses `PHONE_VAD_PARAMS`.
            aggressiveness: WebRTC VAD mode, 0 (least likely to drop speech) to 3
                (most likely to reject noise). In a measurement at 8 kHz, white noise at
                -30 dBFS RMS read as speech in modes 0 to 2 but not in mode 3, while
                mode 3 also missed speech 30 dB below normal level.
            frame_ms: Length of each analysed frame in milliseconds: 10, 20 or 30.

        Raises:
            ConfigError: If any setting is outside the values listed above.
        """
        if isinstance(aggressiveness, bool) or aggressiveness not in SUPPORTED_AGGRESSIVENESS:
            raise ConfigError(
                f"Invalid VAD aggressiveness {aggressiveness!r}: use an integer from 0 "
                "(keeps most speech) to 3 (rejects most noise)."
            )
        if isinstance(frame_ms, bool) or frame_ms not in SUPPORTED_FRAME_MS:
            raise ConfigError(
                f"Invalid VAD frame length {frame_ms!r} ms: the WebRTC VAD accepts "
                "10, 20 or 30 ms frames."
            )
        if sample_rate is not None:
            _check_sample_rate(sample_rate)

        super().__init__(sample_rate=sample_rate, params=params or PHONE_VAD_PARAMS)
        self._aggressiveness = aggressiveness
        self._frame_ms = frame_ms
        self._vad = webrtcvad.Vad(aggressiveness)
        # `is_speech_frame` gets its own instance because its frames must not shift the
        # noise model of the stream.
        self._probe_vad = webrtcvad.Vad(aggressiveness)
        self._pending = bytearray()
        if sample_rate is not None:
            self.set_sample_rate(sample_rate)

    @property
    def aggressiveness(self) -> int:
        """WebRTC VAD mode, 0 to 3."""
        return self._aggressiveness

    @property
    def frame_ms(self) -> int:
        """Length of each analysed frame in milliseconds."""
        return self._frame_ms

    @property
    def frame_num_bytes(self) -> int:
        """Size in bytes of one analysed frame at the current sample rate."""
        return self._frame_num_samples(self._current_rate()) * 2

    def set_sample_rate(self, sample_rate: int) -> None:
        """Set the input sample rate and reset the detector state.

        Raises:
            ConfigError: If the effective rate (the constructor's `sample_rate` if it
                was given, else this one) is not supported by the WebRTC VAD.
        """
        _check_sample_rate(self._init_sample_rate or sample_rate)
        # A new rate makes buffered bytes and the adapted noise model meaningless.
        self._vad = webrtcvad.Vad(self._aggressiveness)
        self._pending = bytearray()
        super().set_sample_rate(sample_rate)
        logger.debug(
            "WebRTC VAD set to %s Hz, %s ms frames, aggressiveness %s",
            self._sample_rate,
            self._frame_ms,
            self._aggressiveness,
        )

    def num_frames_required(self) -> int:
        """Return the number of samples in one analysed frame."""
        return self._frame_num_samples(self.sample_rate)

    def voice_confidence(self, buffer: bytes) -> float:
        """Score one frame of the stream: 1.0 for speech, 0.0 otherwise.

        Raises:
            AudioError: If the buffer is not exactly one frame long.
        """
        return 1.0 if self._classify(self._vad, buffer, self.sample_rate) else 0.0

    def is_speech_frame(self, pcm: bytes) -> bool:
        """Classify one frame of 16-bit mono PCM without touching the stream state.

        Uses a separate WebRTC VAD instance, so it is safe to call from the event loop
        while `analyze_audio` runs. The frame must be `frame_num_bytes` long.

        Raises:
            ConfigError: If no sample rate is known yet.
            AudioError: If the frame has the wrong length.
        """
        return self._classify(self._probe_vad, pcm, self._current_rate())

    def _current_rate(self) -> int:
        rate = self._sample_rate or self._init_sample_rate
        if not rate:
            raise ConfigError(
                "WebRTC VAD sample rate is not set: pass sample_rate= to the constructor "
                "or call set_sample_rate() first."
            )
        return rate

    def _frame_num_samples(self, sample_rate: int) -> int:
        return sample_rate * self._frame_ms // 1000

    def _classify(self, vad: webrtcvad.Vad, pcm: bytes, sample_rate: int) -> bool:
        expected = self._frame_num_samples(sample_rate) * 2
        if len(pcm) != expected:
            raise AudioError(
                f"Invalid VAD frame of {len(pcm)} bytes: expected {expected} bytes "
                f"({self._frame_ms} ms of 16-bit mono PCM at {sample_rate} Hz)."
            )
        return bool(vad.is_speech(bytes(pcm), sample_rate))

    async def analyze_audio(self, buffer: bytes) -> VADState:
        """Analyse the buffer on the calling thread and return the latest state.

        pipecat's base class hands every buffer to a worker thread, which suits its ONNX
        models. A WebRTC VAD frame costs microseconds, so the hand-over doubled the cost:
        144 µs against 70 µs per 20 ms frame, measured on a caller clip. With 20 calls that
        is 1000 hand-overs a second.
        """
        return self._run_analyzer(buffer)

    def _run_analyzer(self, buffer: bytes) -> VADState:
        """Analyse whole frames from the buffered stream and return the latest state."""
        self._pending += buffer
        frame_num_bytes = self._vad_frames_num_bytes
        num_frames = len(self._pending) // frame_num_bytes
        for index in range(num_frames):
            frame = bytes(self._pending[index * frame_num_bytes : (index + 1) * frame_num_bytes])
            self._advance(frame)
        del self._pending[: num_frames * frame_num_bytes]
        return self._vad_state

    def _advance(self, frame: bytes) -> None:
        """Update the state machine with one frame, using the transitions of pipecat's base class."""
        confidence = self.voice_confidence(frame)
        volume = self._get_smoothed_volume(frame)
        self._prev_volume = volume
        speaking = confidence >= self._params.confidence and volume >= self._params.min_volume

        if speaking:
            if self._vad_state == VADState.QUIET:
                self._vad_state = VADState.STARTING
                self._vad_starting_count = 1
            elif self._vad_state == VADState.STARTING:
                self._vad_starting_count += 1
            elif self._vad_state == VADState.STOPPING:
                self._vad_state = VADState.SPEAKING
                self._vad_stopping_count = 0
        else:
            if self._vad_state == VADState.STARTING:
                self._vad_state = VADState.QUIET
                self._vad_starting_count = 0
            elif self._vad_state == VADState.SPEAKING:
                self._vad_state = VADState.STOPPING
                self._vad_stopping_count = 1
            elif self._vad_state == VADState.STOPPING:
                self._vad_stopping_count += 1

        if self._vad_state == VADState.STARTING and self._vad_starting_count >= self._vad_start_frames:
            self._vad_state = VADState.SPEAKING
            self._vad_starting_count = 0
        if self._vad_state == VADState.STOPPING and self._vad_stopping_count >= self._vad_stop_frames:
            self._vad_state = VADState.QUIET
            self._vad_stopping_count = 0
