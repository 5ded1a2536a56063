"""Speech recognition step of the call pipeline: one caller turn of audio in, a transcript out."""

from __future__ import annotations

import asyncio
import logging
import re
import time

from pipecat.frames.frames import Frame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voicebot.asr.hints import RecognitionHint, hint_for
from voicebot.asr.whisper import Transcript, WhisperTranscriber
from voicebot.errors import OverloadedError
from voicebot.pipeline.frames import (
    CallerTranscriptFrame,
    CallerTurnAudioFrame,
    TentativeTurnAudioFrame,
    TentativeTurnLikelyOverFrame,
    TurnCompleteByTextFrame,
)
from voicebot.priority import Urgency
from voicebot.responder.base import DialogContext

logger = logging.getLogger(__name__)


class TranscriptionProcessor(FrameProcessor):
    """Transcribes each caller turn with the process-wide Whisper model.

    A turn that yields no text (near-silence, noise, a dropped hallucination) ends here:
    the bot says nothing and keeps listening.

    A tentative turn (the caller paused, Smart Turn thinks they will go on) is transcribed at
    once in the background. If the turn ends with the same audio, that transcript is used,
    so the incomplete-turn wait and the decode overlap. If the transcript already answers
    what the dialog expects (four digits, a yes or no), the turn detector is told to end the
    turn without waiting; if it reads as a question, to end it after a shorter wait.
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
        # The tentative turn being transcribed: its audio, the decode task and its urgency.
        self._speculative: tuple[bytes, asyncio.Task[Transcript | None], Urgency] | None = None
        self.speculative_hits = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TentativeTurnAudioFrame):
            self._start_speculative(frame)
            return
        if isinstance(frame, TentativeTurnLikelyOverFrame):
            if self._speculative is not None and len(self._speculative[0]) == frame.audio_length:
                self._speculative[2].urgent = True
            return
        if not isinstance(frame, CallerTurnAudioFrame):
            await self.push_frame(frame, direction)
            return
        hint = self._hint()
        transcript = await self._speculative_result(frame.audio)
        reused = transcript is not None
        if reused:
            self.speculative_hits += 1
        else:
            try:
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
            "turn %d transcribed: %d chars, confidence %.2f, %.0f ms%s%s",
            frame.turn_index,
            len(transcript.text),
            transcript.confidence,
            transcript.decode_s * 1000,
            f", expecting {hint.kind}" if hint is not None else "",
            ", started in the pause" if reused else "",
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

    async def cleanup(self) -> None:
        await super().cleanup()
        if self._speculative is not None:
            _, task, _ = self._speculative
            self._speculative = None
            await self.cancel_task(task)

    def _hint(self) -> RecognitionHint | None:
        if self._context is None:
            return None
        return hint_for(self._context.expected, self._context.last_bot_text())

    def _start_speculative(self, frame: TentativeTurnAudioFrame) -> None:
        self._drop_speculative()
        hint = self._hint()
        urgency = Urgency(False)
        task = self.create_task(
            self._transcribe_tentative(frame, hint, urgency), name=f"speculative-asr-{frame.turn_index}"
        )
        self._speculative = (frame.audio, task, urgency)

    async def _transcribe_tentative(
        self, frame: TentativeTurnAudioFrame, hint: RecognitionHint | None, urgency: Urgency
    ) -> Transcript | None:
        try:
            # Not urgent while the turn may go on: finished turns' decodes go first.
            transcript = await self._transcriber.transcribe(frame.audio, language=self._language, hint=hint, urgent=urgency)
        except OverloadedError:
            # Under load the tentative decode is skipped; the turn is decoded when it ends.
            return None
        if transcript.text and (_answers(transcript.text, hint) or reads_as_question(transcript.text)):
            await self.push_frame(
                TurnCompleteByTextFrame(
                    turn_index=frame.turn_index,
                    audio_length=len(frame.audio),
                    question=not _answers(transcript.text, hint),
                ),
                FrameDirection.UPSTREAM,
            )
        return transcript

    async def _speculative_result(self, audio: bytes) -> Transcript | None:
        """Return the transcript of the tentative turn if it had exactly this audio, else None."""
        speculative, self._speculative = self._speculative, None
        if speculative is None:
            return None
        tentative_audio, task, urgency = speculative
        if tentative_audio != audio:
            await self.cancel_task(task)
            return None
        # The turn is over and the caller is waiting: a decode still queued moves ahead.
        urgency.urgent = True
        try:
            return await task
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("speculative recognition failed; decoding the turn again", extra={"call_id": self._call_id})
            return None

    def _drop_speculative(self) -> None:
        if self._speculative is not None:
            _, task, _ = self._speculative
            task.cancel()
            self._speculative = None


def _answers(text: str, hint: RecognitionHint | None) -> bool:
    """Return whether a tentative transcript is the complete answer the dialog expects.

    Such an answer ends the turn at once. A question ends it only after a shorter wait (see
    `reads_as_question`).
    """
    return hint is not None and hint.accept is not None and hint.accept(text)


# Words that make a Mandarin or Cantonese clause a question, after Simplified conversion (so
# Cantonese 幾多 is 几多). Whisper often writes the question mark itself, but not always:
# 这新卡怎么激活 came without one.
QUESTION_WORDS: tuple[str, ...] = (
    # Mandarin.
    "吗", "呢", "嘛", "怎么", "什么", "多少", "哪", "几", "为什么", "是不是", "能不能", "可不可以",
    "有没有", "会不会", "要不要", "行不行", "对不对",
    # Cantonese.
    "咩", "点样", "点解", "点算", "几多", "边度", "边个", "乜嘢", "系咪", "有冇", "得唔得",
)
# A clause that ends with one of these continues (我想问一下怎么激活的……), whatever question word it contains.
CONTINUATION_ENDINGS: tuple[str, ...] = (
    "的", "和", "跟", "与", "还有", "然后", "就是", "那个", "这个", "因为", "所以", "但是", "可是",
    "如果", "或者", "而且", "还是", "把", "给", "呃", "嗯",
)
# Stripped before the check. A trailing comma is kept, because it means the caller continues.
_TRAILING_MARKS = "。.!！~～… "
_CLAUSE_BREAKS = re.compile(r"[，,。.!！?？；;：:、\s]")


def reads_as_question(text: str) -> bool:
    """Return whether a transcript ends as a question: a question mark, or a question word in the last clause.

    Smart Turn, an audio model, often hears a finished Chinese question as unfinished, and the
    turn then waits out the whole incomplete-turn timeout. A question is a likely end of a
    hotline caller's turn. It does not end the turn at once, though: callers often ask two
    questions in one turn (信用卡年费是多少？怎么才能免年费？), so the turn detector waits for
    its shorter question timeout first. A fragment such as 我想问 has no question word and keeps
    the full wait, and so does a clause that ends with a word that carries on (的, 还有, 因为).

    NOTE: the check is word-based. It misses a question without a question word (这是诈骗 said
    with a rising tone) and counts a statement such as 我不知道怎么办 as a question.
    """
    stripped = text.strip()
    if stripped.endswith(("?", "？")):
        return True
    stripped = stripped.rstrip(_TRAILING_MARKS)
    last_clause = _CLAUSE_BREAKS.split(stripped)[-1]
    if not last_clause or last_clause.endswith(CONTINUATION_ENDINGS):
        return False
    return any(word in last_clause for word in QUESTION_WORDS)
