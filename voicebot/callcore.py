"""The transport-neutral core of a call: the per-call pipecat pipeline and its record.

A media-stream session (`voicebot.call`) and a SIP session both feed caller audio in and
give the output an AudioSink for the way back. Everything between is the same pipeline:
TurnDetector → TranscriptionProcessor → DialogProcessor → SpeechSynthesisProcessor →
PacedAudioOutput.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from pipecat.audio.dtmf.types import KeypadEntry
from pipecat.audio.utils import create_stream_resampler
from pipecat.frames.frames import InputAudioRawFrame, InputDTMFFrame, InterruptionFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.workers.runner import WorkerRunner

from voicebot.pipeline.dialog import DialogProcessor, HandoffCallback, HangUpCallback
from voicebot.pipeline.frames import SentenceAudioFrame, SystemMessageFrame
from voicebot.pipeline.output import AudioSink, PacedAudioOutput
from voicebot.pipeline.recognition import TranscriptionProcessor
from voicebot.pipeline.speech import SpeechSynthesisProcessor
from voicebot.pipeline.turns import TurnDetector
from voicebot.responder.base import DialogContext, Reply, ReplyKind

if TYPE_CHECKING:
    from voicebot.handoff import CallBridgeEndpoint
    from voicebot.services import Services

logger = logging.getLogger(__name__)

PIPELINE_RATE = 16000


class CallPipeline:
    """Runs one call's pipeline from `start()` to `finish()`; feed it caller audio in between."""

    def __init__(
        self,
        services: Services,
        *,
        call_id: str,
        sink: AudioSink,
        language: str,
        centre: str = "default",
        caller: str = "",
        input_sample_rate: int = 8000,
        on_handoff: HandoffCallback | None = None,
        on_hang_up: HangUpCallback | None = None,
    ) -> None:
        settings = services.settings
        self.call_id = call_id
        self._services = services
        self._extra = {"call_id": call_id}
        self._input_rate = input_sample_rate
        self._resampler = create_stream_resampler()
        self.output = PacedAudioOutput(sink=sink, call_id=call_id)
        self.turn_detector = TurnDetector(
            vad=services.new_vad(),
            turn_model=services.turn_model,
            incomplete_timeout_s=settings.incomplete_turn_timeout_s,
            question_timeout_s=settings.question_turn_timeout_s,
            max_turn_s=settings.max_turn_s,
            speculative=settings.speculative_asr,
            call_id=call_id,
        )
        # The call keeps the prompt version current at its start, even if the files change.
        self.messages = services.call_messages(centre, call_id=call_id)
        self.dialog = DialogProcessor(
            responder=services.responder,
            messages=self.messages,
            context=DialogContext(call_id=call_id, language=language, centre=centre, caller=caller),
            store=services.store,
            on_handoff=on_handoff,
            on_hang_up=on_hang_up,
        )
        pipeline = Pipeline(
            [
                self.turn_detector,
                TranscriptionProcessor(
                    transcriber=services.transcriber, language=language, call_id=call_id, context=self.dialog.context
                ),
                self.dialog,
                SpeechSynthesisProcessor(synthesizer=services.synthesizer, call_id=call_id),
                self.output,
            ]
        )
        self._worker = PipelineWorker(
            pipeline,
            params=PipelineParams(audio_in_sample_rate=PIPELINE_RATE, audio_out_sample_rate=PIPELINE_RATE),
            idle_timeout_secs=None,
            enable_rtvi=False,
            enable_turn_tracking=False,
            check_dangling_tasks=False,
            name=f"call-{call_id}",
        )
        self._task: asyncio.Task[None] | None = None
        self._on_hang_up = on_hang_up
        self._transcribe_transfers = settings.transcribe_transfers
        self.mode = "bot"  # "bot", "hold" (waiting for a rep) or "bridged" (talking to a rep)
        self._bridge: CallBridgeEndpoint | None = None
        self._system_turns = 100_000  # turn numbers of system speech, apart from the dialog's

    async def start(self) -> None:
        runner = WorkerRunner(handle_sigint=False, check_dangling_tasks=False)
        await runner.add_workers(self._worker)
        self._task = asyncio.create_task(runner.run(), name=f"pipeline-{self.call_id}")

    async def push_audio(self, pcm: bytes) -> None:
        """Feed caller audio: 16-bit mono PCM at the input sample rate given at construction."""
        if self._bridge is not None:
            # Talking to a rep: the caller's audio goes to the rep. The bot only keeps
            # transcribing it when the transcript continues during transfers.
            await self._bridge.send_caller_audio(pcm)
            if not self.dialog.record_while_paused:
                return
        if self._input_rate != PIPELINE_RATE:
            pcm = await self._resampler.resample(pcm, self._input_rate, PIPELINE_RATE)
        if pcm:
            await self._worker.queue_frame(InputAudioRawFrame(audio=pcm, sample_rate=PIPELINE_RATE, num_channels=1))

    async def push_dtmf(self, digit: str) -> None:
        await self._worker.queue_frame(InputDTMFFrame(button=KeypadEntry(digit)))

    def set_mode(self, mode: str, *, bridge: CallBridgeEndpoint | None = None) -> None:
        """Switch between the bot answering ("bot"), waiting for a rep ("hold") and a rep on the line ("bridged")."""
        if mode not in ("bot", "hold", "bridged"):
            raise ValueError(f"invalid call mode {mode!r}; expected bot, hold or bridged")
        self.mode = mode
        self.dialog.paused = mode != "bot"
        self.dialog.record_while_paused = mode == "bridged" and self._transcribe_transfers
        self.turn_detector.barge_in = mode == "bot"
        self._bridge = bridge if mode == "bridged" else None
        logger.info("call mode: %s", mode, extra=self._extra)

    async def speak(self, text: str) -> None:
        """Speak a system message outside the dialog (hold, queue position); it is not a dialog turn."""
        self._system_turns += 1
        reply = Reply(text=text, kind=ReplyKind.ANSWER, confidence=1.0, topic="system")
        await self._worker.queue_frame(SystemMessageFrame(reply=reply, turn_index=self._system_turns))

    async def play(self, pcm16k: bytes) -> None:
        """Play 16 kHz PCM (hold music) after whatever is queued."""
        self._system_turns += 1
        await self._worker.queue_frame(
            SentenceAudioFrame(audio=pcm16k, sample_rate=PIPELINE_RATE, turn_index=self._system_turns, last=True)
        )

    async def clear_output(self) -> None:
        """Drop queued bot audio and tell the far end to drop its buffer."""
        await self._worker.queue_frame(InterruptionFrame())

    def queued_output_s(self) -> float:
        return self.output.queued_seconds()

    async def resample(self, pcm: bytes, from_rate: int, to_rate: int) -> bytes:
        return await create_stream_resampler().resample(pcm, from_rate, to_rate)

    async def hang_up(self, reason: str) -> None:
        """End the call from the service side (after goodbye, or when the rep hung up)."""
        if self._on_hang_up is not None:
            await self._on_hang_up(reason)

    async def on_mark(self, name: str) -> None:
        await self.output.on_mark(name)

    async def send_event(self, payload: dict[str, object]) -> None:
        await self.output.send_event(payload)

    async def finish(self, reason: str, *, timeout_s: float) -> None:
        """Stop every task of the call within `timeout_s` and save the end of the record."""
        self.output.mark_closed()
        try:
            await asyncio.wait_for(self._worker.cancel(reason=reason), timeout=timeout_s)
        except asyncio.TimeoutError:
            logger.error("pipeline did not stop within %.1f s; cancelling its task", timeout_s, extra=self._extra)
        if self._task is not None:
            if not self._task.done():
                self._task.cancel()
            await asyncio.wait({self._task}, timeout=timeout_s)
        self._services.responder.end_call(self.call_id)
        await self._services.store.end_call(self.call_id, ended_at=time.time(), reason=reason)
