"""The last processor of a call: paces bot audio onto the line and tracks what was played.

Audio leaves as 20 ms mu-law frames in real time, a little ahead of the clock so the far
end never runs dry. After each sentence a mark follows. On a media stream the telephony
side echoes the mark once it has played the audio before it, which is how the bot learns
what the caller actually heard. On an interruption (barge-in) the queue is dropped and the
sink is cleared (a media stream sends `clear`); sentences whose marks had not come back by
then count as not heard, even if their marks arrive later.

The processor knows nothing of the wire: an `AudioSink` sends frames, marks and `clear`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from pipecat.audio.utils import create_stream_resampler
from pipecat.frames.frames import CancelFrame, EndFrame, Frame, InterruptionFrame, StartFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from telephony import g711
from voicebot.pipeline.frames import (
    PlaybackStateFrame,
    ReplyHeardFrame,
    SentenceAudioFrame,
    SidebandEventFrame,
)

logger = logging.getLogger(__name__)

TELEPHONE_RATE = 8000
FRAME_MS = 20
FRAME_BYTES = TELEPHONE_RATE * FRAME_MS // 1000  # mu-law: one byte per sample


@dataclass
class _Sentence:
    turn_index: int
    sentence_index: int
    text: str
    last: bool
    echoed: bool = False


@dataclass
class _ReplyPlayback:
    turn_index: int
    sentences: list[_Sentence] = field(default_factory=list)
    first_audio_at: float = 0.0
    complete: bool = False  # the last sentence has been queued


class AudioSink(Protocol):
    """The wire side of the output. Each send returns False once the line is gone."""

    async def send_audio(self, mulaw: bytes) -> bool:
        """Send one 20 ms frame of 8 kHz mu-law."""
        ...

    async def send_mark(self, name: str) -> bool:
        """Mark the point after the audio sent so far; `PacedAudioOutput.on_mark` must be called once it has played."""
        ...

    async def send_clear(self) -> bool:
        """Ask the far end to drop audio it has buffered but not played."""
        ...

    async def send_event(self, payload: dict[str, Any]) -> bool:
        """Send a sideband event (transcripts, replies) to a client that asked for them; a no-op elsewhere."""
        ...


class PacedAudioOutput(FrameProcessor):
    """Paces bot audio into an AudioSink and reports what the caller heard."""

    def __init__(
        self,
        *,
        sink: AudioSink,
        lead_s: float = 0.08,
        max_queued_s: float = 180.0,
        call_id: str = "",
    ) -> None:
        super().__init__(name="PacedAudioOutput")
        self._sink = sink
        self._lead_s = lead_s
        self._max_queued_frames = int(max_queued_s * 1000 / FRAME_MS)
        self._call_id = call_id
        self._resampler = create_stream_resampler()
        # Items are (reply, one 20 ms mu-law frame) or a _Sentence whose mark is due.
        self._queue: collections.deque[tuple[_ReplyPlayback, bytes] | _Sentence] = collections.deque()
        self._queued_frames = 0
        self._wakeup = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._replies: dict[int, _ReplyPlayback] = {}
        self._marks: dict[str, _Sentence] = {}
        self._playing = False
        self._closed = False
        self._next_send_at = 0.0
        self.frames_sent = 0

    # Lifecycle

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame):
            self._writer = self.create_task(self._write_loop(), name=f"media-writer-{self._call_id}")
            await self.push_frame(frame, direction)
        elif isinstance(frame, SentenceAudioFrame):
            await self._enqueue_sentence(frame)
        elif isinstance(frame, InterruptionFrame):
            await self._interrupt()
            await self.push_frame(frame, direction)
        elif isinstance(frame, SidebandEventFrame):
            await self.send_event(frame.payload)
        elif isinstance(frame, (EndFrame, CancelFrame)):
            await self._stop_writer()
            await self.push_frame(frame, direction)
        else:
            await self.push_frame(frame, direction)

    async def _stop_writer(self) -> None:
        self._closed = True
        if self._writer is not None:
            await self.cancel_task(self._writer, timeout=1.0)
            self._writer = None

    def queued_seconds(self) -> float:
        """Return the seconds of bot audio queued and not yet sent."""
        return self._queued_frames * FRAME_MS / 1000

    def mark_closed(self) -> None:
        """Stop all sends: the socket is gone."""
        self._closed = True
        self._wakeup.set()

    # Inbound events from the telephony side

    async def on_mark(self, name: str) -> None:
        """Handle a mark echoed by the telephony side: the audio before it has played."""
        sentence = self._marks.pop(name, None)
        if sentence is None:
            # A mark of a sentence cut off by `clear`, or one this call never sent.
            logger.debug("ignoring mark after clear or unknown", extra={"call_id": self._call_id})
            return
        sentence.echoed = True
        reply = self._replies.get(sentence.turn_index)
        if reply is not None and sentence.last:
            self._replies.pop(sentence.turn_index, None)
            heard = "".join(s.text for s in reply.sentences)
            await self.push_frame(
                ReplyHeardFrame(
                    turn_index=reply.turn_index,
                    heard_text=heard,
                    interrupted=False,
                    first_audio_at=reply.first_audio_at,
                ),
                FrameDirection.UPSTREAM,
            )
        await self._update_playing()

    # Sending

    async def send_event(self, payload: dict[str, Any]) -> None:
        """Send a sideband event, if the sink has a client that asked for them."""
        if not self._closed and not await self._sink.send_event(payload):
            self._closed = True

    async def _enqueue_sentence(self, frame: SentenceAudioFrame) -> None:
        audio = frame.audio
        if frame.sample_rate != TELEPHONE_RATE:
            audio = await self._resampler.resample(audio, frame.sample_rate, TELEPHONE_RATE)
        payload = g711.pcm_to_mulaw(audio[: len(audio) // 2 * 2])
        whole = len(payload) // FRAME_BYTES * FRAME_BYTES
        frames = [payload[i : i + FRAME_BYTES] for i in range(0, whole, FRAME_BYTES)]
        tail = payload[whole:]
        if tail:
            # Pad the sentence's last partial frame with mu-law silence so the mark follows it exactly.
            frames.append(tail + b"\xff" * (FRAME_BYTES - len(tail)))
        if self._queued_frames + len(frames) > self._max_queued_frames:
            logger.error(
                "output queue full (%d frames queued, limit %d); dropping a sentence of %d frames",
                self._queued_frames,
                self._max_queued_frames,
                len(frames),
                extra={"call_id": self._call_id},
            )
            return
        reply = self._replies.setdefault(frame.turn_index, _ReplyPlayback(turn_index=frame.turn_index))
        sentence = _Sentence(frame.turn_index, frame.sentence_index, frame.text, frame.last)
        reply.sentences.append(sentence)
        reply.complete = frame.last
        self._queue.extend((reply, f) for f in frames)
        self._queue.append(sentence)
        self._queued_frames += len(frames)
        self._wakeup.set()
        await self._update_playing()

    async def _write_loop(self) -> None:
        frame_s = FRAME_MS / 1000
        while not self._closed:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            item = self._queue.popleft()
            if isinstance(item, _Sentence):
                name = f"t{item.turn_index}s{item.sentence_index}"
                self._marks[name] = item
                if not self._closed and not await self._sink.send_mark(name):
                    self._closed = True
                continue
            reply, payload = item
            self._queued_frames -= 1
            now = time.monotonic()
            if self._next_send_at < now - self._lead_s:
                # The stream was idle: restart the clock. The first `lead_s` of audio goes out
                # at once as the far end's initial buffer, the rest one frame per 20 ms.
                self._next_send_at = now - self._lead_s
            delay = self._next_send_at - now
            if delay > 0:
                await asyncio.sleep(delay)
            if self._closed or not await self._sink.send_audio(payload):
                self._closed = True
                continue
            self.frames_sent += 1
            self._next_send_at += frame_s
            if reply.first_audio_at == 0.0:
                reply.first_audio_at = time.time()

    async def _interrupt(self) -> None:
        if not self._queue and not self._marks and not self._replies:
            return
        self._queue.clear()
        self._queued_frames = 0
        self._marks.clear()
        if not self._closed and not await self._sink.send_clear():
            self._closed = True
        for reply in list(self._replies.values()):
            heard = "".join(s.text for s in reply.sentences if s.echoed)
            await self.push_frame(
                ReplyHeardFrame(
                    turn_index=reply.turn_index,
                    heard_text=heard,
                    interrupted=True,
                    first_audio_at=reply.first_audio_at,
                ),
                FrameDirection.UPSTREAM,
            )
        self._replies.clear()
        await self._update_playing()

    async def _update_playing(self) -> None:
        playing = bool(self._queue or self._marks or self._replies)
        if playing != self._playing:
            self._playing = playing
            await self.push_frame(PlaybackStateFrame(playing=playing), FrameDirection.UPSTREAM)
