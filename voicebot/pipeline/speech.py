"""Speech synthesis step of the call pipeline: a reply in, sentence-sized audio out.

Each sentence is synthesised and pushed as soon as it is ready, so the first sentence
plays while the next one is still being synthesised. An interruption cancels the step
mid-reply (pipecat cancels the processor's running task), which also kills the synthesiser
subprocess.
"""

from __future__ import annotations

import logging

from pipecat.frames.frames import Frame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voicebot.errors import VoicebotError
from voicebot.pipeline.frames import BotReplyFrame, SentenceAudioFrame
from voicebot.tts.espeak import EspeakSynthesizer
from voicebot.tts.sentences import split_sentences

logger = logging.getLogger(__name__)


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
        sentences = split_sentences(frame.reply.text) or [""]
        for index, sentence in enumerate(sentences):
            audio = b""
            if sentence.strip():
                try:
                    audio = await self._synthesizer.synthesize(sentence, frame.language)
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
                    last=index == len(sentences) - 1,
                    speech_ended_at=frame.speech_ended_at,
                )
            )
