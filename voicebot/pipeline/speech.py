"""Speech synthesis step of the call pipeline: a reply in, sentence-sized audio out.

Each sentence is synthesised and pushed as soon as it is ready, so the first sentence
plays while the next one is still being synthesised. An interruption cancels the step
mid-reply (pipecat cancels the processor's running task), which also kills the synthesiser
subprocess.

A streamed reply (`Reply.sentences` set, as the LLM fallback returns) is spoken sentence by
sentence as the responder yields them, so the first audio goes out while the model is still
generating. A sentence cannot be known to be the last until the stream ends, and holding each
one back until the next arrives would delay the first audio by a whole sentence of generation.
So every spoken sentence goes out with `last=False`, and an empty frame with `last=True`
follows when the stream ends. On cancellation the stream is closed, which stops generation.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator

import numpy as np
from pipecat.frames.frames import Frame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voicebot.errors import VoicebotError
from voicebot.pipeline.frames import BotReplyFrame, SentenceAudioFrame
from voicebot.tts.espeak import EspeakSynthesizer
from voicebot.tts.sentences import split_sentences

logger = logging.getLogger(__name__)

# Synthesised sentences start with a little silence (EspeakSynthesizer keeps 50 ms at each end).
# The first sentence of a reply loses it, because the caller is waiting for that audio; later
# sentences keep it as the pause between sentences.
LEAD_SILENCE_LEVEL = 64  # sample magnitude, about -54 dBFS
MAX_LEAD_TRIM_S = 0.1


class SpeechSynthesisProcessor(FrameProcessor):
    """Turns each BotReplyFrame into SentenceAudioFrames, the last one flagged `last`."""

    def __init__(self, *, synthesizer: EspeakSynthesizer, call_id: str = "") -> None:
        super().__init__(name="SpeechSynthesisProcessor")
        self._synthesizer = synthesizer
        self._call_id = call_id

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not isinstance(frame, BotReplyFrame) or frame.reply is None:
            await self.push_frame(frame, direction)
            return
        if frame.reply.sentences is not None:
            await self._speak_stream(frame, frame.reply.sentences)
            return
        sentences = split_sentences(frame.reply.text) or [""]
        for index, sentence in enumerate(sentences):
            await self._push_sentence(frame, index, sentence, last=index == len(sentences) - 1)

    async def _speak_stream(self, frame: BotReplyFrame, stream: AsyncIterator[str]) -> None:
        index = 0
        try:
            async for text in stream:
                # A streamed item may hold several sentences (a cached answer comes whole).
                for sentence in split_sentences(text):
                    await self._push_sentence(frame, index, sentence, last=False)
                    index += 1
        except VoicebotError as e:
            # What was pushed stays queued; the last frame below still ends the reply.
            logger.error(
                "streamed reply of turn %d failed after %d sentences: %s",
                frame.turn_index,
                index,
                e,
                extra={"call_id": self._call_id},
            )
        finally:
            # Runs on cancellation (barge-in) too: closing the stream stops the LLM request.
            if isinstance(stream, AsyncGenerator):
                await stream.aclose()
        await self._push_sentence(frame, index, "", last=True)

    async def _push_sentence(self, frame: BotReplyFrame, index: int, sentence: str, *, last: bool) -> None:
        audio = b""
        if sentence.strip():
            try:
                audio = await self._synthesizer.synthesize(sentence, frame.language, urgent=index == 0)
                if index == 0:
                    audio = trim_leading_silence(audio, self._synthesizer.sample_rate)
            except VoicebotError as e:
                # The sentence is skipped; its mark still goes out so playback tracking stays whole.
                logger.error(
                    "speech synthesis failed for sentence %d of turn %d: %s",
                    index,
                    frame.turn_index,
                    e,
                    extra={"call_id": self._call_id},
                )
        await self.push_frame(
            SentenceAudioFrame(
                audio=audio,
                sample_rate=self._synthesizer.sample_rate,
                turn_index=frame.turn_index,
                sentence_index=index,
                text=sentence,
                last=last,
                speech_ended_at=frame.speech_ended_at,
            )
        )


def trim_leading_silence(pcm: bytes, sample_rate: int, *, max_s: float = MAX_LEAD_TRIM_S) -> bytes:
    """Drop leading 16-bit samples below LEAD_SILENCE_LEVEL, at most `max_s` seconds of them."""
    samples = np.frombuffer(pcm[: int(max_s * sample_rate) * 2], dtype="<i2")
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) >= LEAD_SILENCE_LEVEL)
    cut = int(loud[0]) if loud.size else len(samples)
    return pcm[cut * 2 :]
