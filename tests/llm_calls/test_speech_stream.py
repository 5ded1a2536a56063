"""SpeechSynthesisProcessor with streamed replies, through a pipecat test pipeline and real espeak-ng."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from pipecat.frames.frames import InterruptionFrame
from pipecat.tests.utils import SleepFrame, run_test

from voicebot.errors import UpstreamError
from voicebot.pipeline.frames import BotReplyFrame, SentenceAudioFrame
from voicebot.pipeline.speech import SpeechSynthesisProcessor
from voicebot.responder.base import Reply, ReplyKind
from voicebot.tts.espeak import EspeakSynthesizer

pytestmark = pytest.mark.timeout(60)


class ScriptedStream:
    """Sentences to yield, then optionally an error or a wait that only cancellation ends."""

    def __init__(self, sentences: list[str], *, error: Exception | None = None, block: bool = False) -> None:
        self.sentences = sentences
        self.error = error
        self.block = block
        self.closed = False

    async def generate(self) -> AsyncIterator[str]:
        try:
            for sentence in self.sentences:
                yield sentence
            if self.error is not None:
                raise self.error
            if self.block:
                await asyncio.Event().wait()
        finally:
            self.closed = True


def reply_frame(stream: ScriptedStream) -> BotReplyFrame:
    first = stream.sentences[0] if stream.sentences else ""
    reply = Reply(text=first, kind=ReplyKind.ANSWER, confidence=0.5, sentences=stream.generate())
    return BotReplyFrame(reply=reply, turn_index=3, language="zh")


async def spoken_frames(stream: ScriptedStream, *extra: object) -> list[SentenceAudioFrame]:
    processor = SpeechSynthesisProcessor(synthesizer=EspeakSynthesizer(), call_id="speech-test")
    down, _ = await run_test(processor, frames_to_send=[reply_frame(stream), *extra])  # type: ignore[list-item]
    return [frame for frame in down if isinstance(frame, SentenceAudioFrame)]


async def test_stream_spoken_per_sentence() -> None:
    """Each streamed sentence becomes one audio frame, and an empty frame flagged last ends the reply."""
    stream = ScriptedStream(["普卡年费每年一百元。", "金卡每年三百元。"])
    frames = await spoken_frames(stream)
    assert [frame.text for frame in frames] == ["普卡年费每年一百元。", "金卡每年三百元。", ""]
    assert [frame.sentence_index for frame in frames] == [0, 1, 2]
    assert [frame.last for frame in frames] == [False, False, True]
    assert frames[0].audio
    assert frames[1].audio
    assert frames[2].audio == b""
    assert all(frame.turn_index == 3 for frame in frames)
    assert stream.closed


async def test_empty_stream_ends_reply() -> None:
    """A stream that yields nothing still produces the empty last frame."""
    frames = await spoken_frames(ScriptedStream([]))
    assert len(frames) == 1
    assert frames[0].last
    assert frames[0].text == ""


async def test_failed_stream_ends_reply() -> None:
    """A stream that raises an upstream error keeps what was spoken and still ends with the last frame."""
    stream = ScriptedStream(["普卡年费每年一百元。"], error=UpstreamError("LLM server failed"))
    frames = await spoken_frames(stream)
    assert [frame.text for frame in frames] == ["普卡年费每年一百元。", ""]
    assert frames[-1].last
    assert stream.closed


async def test_interruption_closes_stream() -> None:
    """An interruption while the stream waits for its next sentence closes the stream."""
    stream = ScriptedStream(["普卡年费每年一百元。"], block=True)
    frames = await spoken_frames(stream, SleepFrame(sleep=1.0), InterruptionFrame())
    assert stream.closed
    assert [frame.text for frame in frames] == ["普卡年费每年一百元。"]
    assert not frames[0].last
