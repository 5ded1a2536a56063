"""Speech recognition step of the call pipeline: one caller turn of audio in, a transcript out."""

from __future__ import annotations

import logging
import time

from pipecat.frames.frames import Frame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voicebot.asr.hints import hint_for
from voicebot.asr.whisper import WhisperTranscriber
from voicebot.errors import OverloadedError
from voicebot.pipeline.frames import CallerTranscriptFrame, CallerTurnAudioFrame
from voicebot.responder.base import DialogContext

logger = logging.getLogger(__name__)


class TranscriptionProcessor(FrameProcessor):
    """Transcribes each caller turn with the process-wide Whisper model.

    A turn that yields no text (near-silence, noise, a dropped hallucination) ends here:
    the bot says nothing and keeps listening.
    """

    def __init__(
        self,
        *,
        transcriber: WhisperTranscriber,
        language: str,
        call_id: str = "",
        context: DialogContext | None = None,
    ) -> None:
        super().__init__(name="TranscriptionProcessor")
        self._transcriber = transcriber
        self._language = language
        self._call_id = call_id
        # The call's dialog context: what the dialog expects next biases the decode.
        self._context = context

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not isinstance(frame, CallerTurnAudioFrame):
            await self.push_frame(frame, direction)
            return
        try:
            hint = None
            if self._context is not None:
                hint = hint_for(self._context.expected, self._context.last_bot_text())
            transcript = await self._transcriber.transcribe(frame.audio, language=self._language, hint=hint)
        except OverloadedError as e:
            # The bot cannot hear this turn; the caller gets the not-heard prompt from the dialog step.
            logger.error("ASR overloaded, turn %d lost: %s", frame.turn_index, e, extra={"call_id": self._call_id})
            transcript = None
        extra = {"call_id": self._call_id}
        if transcript is None or not transcript.text:
            reason = transcript.dropped if transcript is not None else "overloaded"
            logger.info("turn %d gave no transcript (%s)", frame.turn_index, reason, extra=extra)
            return
        logger.info(
            "turn %d transcribed: %d chars, confidence %.2f, %.0f ms%s",
            frame.turn_index,
            len(transcript.text),
            transcript.confidence,
            transcript.decode_s * 1000,
            f", expecting {hint.kind}" if hint is not None else "",
            extra=extra,
        )
        await self.push_frame(
            CallerTranscriptFrame(
                text=transcript.text,
                language=self._language,
                confidence=transcript.confidence,
                turn_index=frame.turn_index,
                speech_started_at=frame.speech_started_at,
                speech_ended_at=frame.speech_ended_at,
                end_of_turn_at=frame.end_of_turn_at,
                transcribed_at=time.time(),
                audio=frame.audio,
            )
        )
