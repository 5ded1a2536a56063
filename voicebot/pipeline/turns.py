"""Caller turn detection: webrtcvad finds speech, Smart Turn decides when the turn is over.

VAD alone ends a turn at the first pause, which cuts callers off mid-sentence ("我想查一下……
这个月的账单"). So a short VAD pause only asks the Smart Turn model whether the turn sounds
finished. If it does, the turn ends at once. If not, the detector waits for more speech and
ends the turn anyway after `incomplete_timeout_s` of silence, or after the shorter
`question_timeout_s` once recognition reports that the audio so far reads as a question.
Speech that starts while bot audio is playing is a barge-in: the detector broadcasts an
interruption, which stops playback and sends `clear`. Speech that starts within `continuation_window_s` after a turn
ended, before the reply started playing, continues that turn: the reply in progress is
cancelled and the turn is transcribed again with the new speech.
"""

from __future__ import annotations

import collections
import logging
import time

import asyncio
from typing import Protocol

from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADState
from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voicebot.errors import ConfigError
from voicebot.pipeline.frames import (
    CallerTurnAudioFrame,
    PlaybackStateFrame,
    TentativeTurnAudioFrame,
    TentativeTurnLikelyOverFrame,
    TurnCompleteByTextFrame,
)

logger = logging.getLogger(__name__)

# Smart Turn was trained on 16 kHz speech and misjudges 8 kHz input.
TURN_SAMPLE_RATE = 16000
# The turn counts as complete when the model's probability is above this (pipecat's own cut-off).
COMPLETE_PROBABILITY = 0.5
# Seconds of silence after the VAD reports a pause at which Smart Turn is asked, until it
# judges the turn complete. The model grows surer as trailing silence grows: "对没错" scores
# 0.50 with 0.2 s of silence and 0.93 with 0.5 s. Asking early and again later ends clear
# turns sooner without ending unclear ones later than a single check would. Denser checks
# cost 47 ms of a core each and were slower over SIP (docs/asr.md, "Turn ends and
# speculative recognition").
TURN_CHECKS_S = (0.0, 0.1, 0.3)


class EndOfTurnModel(Protocol):
    def probability_complete(self, pcm16k: bytes) -> float:
        """Return the probability that the speech in this 16 kHz PCM is a finished turn."""
        ...


class TurnDetector(FrameProcessor):
    """Cuts the caller's audio into turns and reports barge-in."""

    def __init__(
        self,
        *,
        vad: VADAnalyzer,
        turn_model: EndOfTurnModel | None,
        pre_speech_s: float = 0.3,
        incomplete_timeout_s: float = 1.2,
        question_timeout_s: float = 0.4,
        turn_checks_s: tuple[float, ...] = TURN_CHECKS_S,
        continuation_window_s: float = 1.0,
        max_turn_s: float = 25.0,
        barge_in: bool = True,
        speculative: bool = True,
        call_id: str = "",
    ) -> None:
        super().__init__(name="TurnDetector")
        if incomplete_timeout_s <= 0 or question_timeout_s <= 0 or max_turn_s <= 0 or pre_speech_s < 0:
            raise ConfigError(
                f"turn detector timings must be positive (incomplete_timeout_s={incomplete_timeout_s}, "
                f"question_timeout_s={question_timeout_s}, max_turn_s={max_turn_s}, pre_speech_s={pre_speech_s})"
            )
        self._vad = vad
        self._turn_model = turn_model
        self._pre_speech_bytes = int(pre_speech_s * TURN_SAMPLE_RATE) * 2
        self._incomplete_timeout_bytes = int(incomplete_timeout_s * TURN_SAMPLE_RATE) * 2
        self._question_timeout_bytes = int(question_timeout_s * TURN_SAMPLE_RATE) * 2
        self._tail_bytes = int(0.3 * TURN_SAMPLE_RATE) * 2
        if not turn_checks_s or list(turn_checks_s) != sorted(turn_checks_s) or turn_checks_s[0] < 0:
            raise ConfigError(
                f"turn_checks_s must be ascending seconds from 0, got {turn_checks_s}; for example (0.0, 0.1, 0.3)"
            )
        # Silence (after the VAD's pause report) at which Smart Turn judges the turn again.
        self._turn_check_bytes = [int(t * TURN_SAMPLE_RATE) * 2 for t in turn_checks_s]
        self._continuation_bytes = int(continuation_window_s * TURN_SAMPLE_RATE) * 2
        # The last turn's audio, kept while the caller may still continue it.
        self._last_turn_audio = b""
        self._audio_since_last_turn = b""
        self._max_turn_bytes = int(max_turn_s * TURN_SAMPLE_RATE) * 2
        self.barge_in = barge_in
        self._call_id = call_id
        self._vad.set_sample_rate(TURN_SAMPLE_RATE)
        self._pre_speech: collections.deque[bytes] = collections.deque()
        self._pre_speech_len = 0
        self._in_turn = False
        self._turn_audio = bytearray()
        self._speech_started_at = 0.0
        self._last_voiced_at = 0.0
        self._last_voiced_len = 0
        self._quiet_bytes = 0
        self._turn_checks_done = 0
        self._bot_playing = False
        self.turn_count = 0
        # Speculative recognition: when Smart Turn judges a pause unfinished, the audio so far
        # goes to recognition at once, and the turn reuses it if it ends without more speech.
        self.speculative = speculative
        self._tentative_audio: bytes | None = None
        # Set when Smart Turn judged the pause unfinished and the tentative audio is not cut yet.
        self._tentative_due = False
        # Set when the tentative transcript reads as a question: the turn ends after this much silence.
        self._text_end_bytes: int | None = None
        # Set once the detector has sent a TentativeTurnLikelyOverFrame for the current tentative audio.
        self._tentative_likely_over = False
        # Why the last turn ended: "model", "text" (the tentative transcript), "silence" or "max_length".
        self.last_end_reason = ""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            await self._on_audio(frame)
            return
        if isinstance(frame, PlaybackStateFrame):
            self._bot_playing = frame.playing
        if isinstance(frame, TurnCompleteByTextFrame):
            await self._on_complete_by_text(frame)
            return
        await self.push_frame(frame, direction)

    async def _on_audio(self, frame: InputAudioRawFrame) -> None:
        if frame.sample_rate != TURN_SAMPLE_RATE:
            raise ConfigError(
                f"turn detector needs {TURN_SAMPLE_RATE} Hz audio, got {frame.sample_rate} Hz; "
                "resample the input before this processor"
            )
        audio = frame.audio
        now = time.time()
        state = await self._vad.analyze_audio(audio)

        if not self._in_turn:
            self._remember_pre_speech(audio)
            if self._last_turn_audio:
                self._audio_since_last_turn += audio
                if len(self._audio_since_last_turn) > self._continuation_bytes:
                    self._last_turn_audio = b""
                    self._audio_since_last_turn = b""
            if state is VADState.SPEAKING:
                await self._start_turn(now)
            return

        self._turn_audio.extend(audio)
        if state is VADState.SPEAKING:
            self._last_voiced_at = now
            self._last_voiced_len = len(self._turn_audio)
            self._quiet_bytes = 0
            self._turn_checks_done = 0
            self._tentative_audio = None
            self._tentative_due = False
            self._text_end_bytes = None
        elif state is VADState.QUIET:
            # Silence is measured in audio time, not wall-clock time, so a client that sends
            # faster than real time (a test softphone) sees the same turn boundaries.
            self._quiet_bytes += len(audio)
            checks = self._turn_checks_done
            if checks < len(self._turn_check_bytes) and self._quiet_bytes >= self._turn_check_bytes[checks]:
                self._turn_checks_done += 1
                if await self._turn_model_predicts_complete():
                    await self._end_turn(now, reason="model")
                    return
                if checks == 0:
                    self._tentative_due = self.speculative
            if self._tentative_due and len(self._turn_audio) >= self._last_voiced_len + self._tail_bytes:
                # The tentative audio is cut where the turn would be cut if it ended now, so
                # recognition hears the same audio with speculation on or off.
                self._tentative_due = False
                self._tentative_audio = self._kept_audio()
                self._tentative_likely_over = False
                await self.push_frame(
                    TentativeTurnAudioFrame(audio=self._tentative_audio, turn_index=self.turn_count + 1)
                )
            if (
                self._tentative_audio is not None
                and not self._tentative_likely_over
                and self._quiet_bytes >= self._question_timeout_bytes
            ):
                # Most callers who continue do so sooner (docs/asr.md), so this turn's decode should
                # not wait behind other calls' tentative decodes any longer.
                self._tentative_likely_over = True
                await self.push_frame(
                    TentativeTurnLikelyOverFrame(turn_index=self.turn_count + 1, audio_length=len(self._tentative_audio))
                )
            if self._text_end_bytes is not None and self._quiet_bytes >= self._text_end_bytes:
                await self._end_turn(now, reason="text")
                return
            if self._quiet_bytes >= self._incomplete_timeout_bytes:
                await self._end_turn(now, reason="silence")
                return
        if len(self._turn_audio) >= self._max_turn_bytes:
            await self._end_turn(now, reason="max_length")

    def _remember_pre_speech(self, audio: bytes) -> None:
        self._pre_speech.append(audio)
        self._pre_speech_len += len(audio)
        while self._pre_speech and self._pre_speech_len - len(self._pre_speech[0]) >= self._pre_speech_bytes:
            self._pre_speech_len -= len(self._pre_speech.popleft())

    async def _start_turn(self, now: float) -> None:
        self._in_turn = True
        pre_speech = b"".join(self._pre_speech)
        self._pre_speech.clear()
        self._pre_speech_len = 0
        start_secs = self._vad.params.start_secs
        if self._continues_last_turn():
            # The caller only paused ("年费是多少？ …… 怎么才能免年费？") and the reply has not
            # started playing: drop the reply in progress and extend the last turn instead.
            logger.info("caller continued the last turn; merging it", extra={"call_id": self._call_id})
            self.turn_count -= 1
            self._turn_audio = bytearray(self._last_turn_audio + self._audio_since_last_turn)
            self._last_turn_audio = b""
            await self.broadcast_interruption()
        else:
            self._turn_audio = bytearray(pre_speech)
            self._speech_started_at = now - start_secs
        self._audio_since_last_turn = b""
        self._last_voiced_at = now
        self._last_voiced_len = len(self._turn_audio)
        self._quiet_bytes = 0
        self._turn_checks_done = 0
        self._tentative_audio = None
        self._tentative_due = False
        self._text_end_bytes = None
        await self.push_frame(UserStartedSpeakingFrame())
        if self.barge_in and self._bot_playing:
            logger.info("barge-in: caller spoke during playback", extra={"call_id": self._call_id})
            await self.broadcast_interruption()

    def _continues_last_turn(self) -> bool:
        return (
            self.barge_in
            and bool(self._last_turn_audio)
            and not self._bot_playing
            and len(self._audio_since_last_turn) <= self._continuation_bytes
        )

    async def _turn_model_predicts_complete(self) -> bool:
        if self._turn_model is None:
            return True
        # The model sees the turn's own audio up to now, so its verdict does not depend on
        # when the frames arrived.
        probability = await asyncio.to_thread(self._turn_model.probability_complete, bytes(self._turn_audio))
        return probability > COMPLETE_PROBABILITY

    def _kept_audio(self) -> bytes:
        # Keep a short tail after the last voiced frame. The rest is silence, which costs
        # decode time and invites Whisper's silence hallucinations.
        keep = min(len(self._turn_audio), self._last_voiced_len + self._tail_bytes)
        return bytes(self._turn_audio[:keep])

    async def _on_complete_by_text(self, frame: TurnCompleteByTextFrame) -> None:
        # Act only if the caller is still silent after the audio the transcript is of.
        tentative = self._tentative_audio
        if not (
            self._in_turn
            and tentative is not None
            and frame.turn_index == self.turn_count + 1
            and frame.audio_length == len(tentative)
        ):
            return
        if not frame.question:
            await self._end_turn(time.time(), reason="text")
        elif self._quiet_bytes >= self._question_timeout_bytes:
            # The decode finished after the question timeout had passed.
            await self._end_turn(time.time(), reason="text")
        else:
            # A second question may follow a short pause, so the turn ends only if none starts by then.
            self._text_end_bytes = self._question_timeout_bytes

    async def _end_turn(self, now: float, *, reason: str) -> None:
        self._in_turn = False
        self.turn_count += 1
        self.last_end_reason = reason
        logger.info(
            "end of turn %d (%s) after %.2f s of audio",
            self.turn_count,
            reason,
            len(self._turn_audio) / 2 / TURN_SAMPLE_RATE,
            extra={"call_id": self._call_id},
        )
        await self.push_frame(UserStoppedSpeakingFrame())
        # The audio recognition already started on, when no speech came after it.
        audio = self._tentative_audio if self._tentative_audio is not None else self._kept_audio()
        self._tentative_audio = None
        self._tentative_due = False
        self._text_end_bytes = None
        self._last_turn_audio = bytes(self._turn_audio)
        self._audio_since_last_turn = b""
        await self.push_frame(
            CallerTurnAudioFrame(
                audio=audio,
                sample_rate=TURN_SAMPLE_RATE,
                turn_index=self.turn_count,
                speech_started_at=self._speech_started_at,
                speech_ended_at=self._last_voiced_at,
                end_of_turn_at=now,
            )
        )
        self._turn_audio = bytearray()
