"""One phone call on a media stream: reads the socket, runs the per-call pipeline, saves the record.

The pipeline is pipecat's: TurnDetector → TranscriptionProcessor → DialogProcessor →
SpeechSynthesisProcessor → MediaStreamOutput. This module feeds it caller audio from the
socket (mu-law 8 kHz decoded and resampled to 16 kHz), routes echoed marks to the output,
and tears everything down within `hangup_timeout_s` when the caller hangs up or the
socket drops.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web
from pipecat.audio.utils import create_stream_resampler
from pipecat.audio.dtmf.types import KeypadEntry
from pipecat.frames.frames import InputAudioRawFrame, InputDTMFFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.workers.runner import WorkerRunner

from telephony import g711, mediastream
from voicebot.errors import ProtocolError
from voicebot.pipeline.dialog import DialogProcessor
from voicebot.pipeline.output import MediaStreamOutput
from voicebot.pipeline.recognition import TranscriptionProcessor
from voicebot.pipeline.speech import SpeechSynthesisProcessor
from voicebot.pipeline.turns import TurnDetector
from voicebot.responder.base import DialogContext

if TYPE_CHECKING:
    from voicebot.services import Services

logger = logging.getLogger(__name__)

PIPELINE_RATE = 16000
# WebSocket close codes (RFC 6455): 1000 normal, 1003 unsupported data, 1008 policy violation,
# 1011 server error, 1013 try again later.
CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_ERROR = 1008
CLOSE_SERVER_ERROR = 1011
CLOSE_TRY_AGAIN_LATER = 1013


@dataclass
class CallOutcome:
    call_id: str
    reason: str
    turns: int


class CallSession:
    """Serves one media-stream connection from `start` to hang-up."""

    def __init__(self, ws: web.WebSocketResponse, services: Services) -> None:
        self._ws = ws
        self._services = services
        self._settings = services.settings
        self.call_id = uuid.uuid4().hex
        self._parser = mediastream.MediaStreamParser()
        self._output: MediaStreamOutput | None = None
        self._worker: PipelineWorker | None = None
        self._extra = {"call_id": self.call_id}

    async def run(self) -> CallOutcome:
        try:
            start = await asyncio.wait_for(self._await_start(), timeout=self._settings.start_timeout_s)
        except asyncio.TimeoutError:
            await self._close(CLOSE_PROTOCOL_ERROR, f"no 'start' within {self._settings.start_timeout_s:g} s")
            return CallOutcome(self.call_id, "no_start", 0)
        except ProtocolError as e:
            logger.warning("media stream rejected before start: %s", e, extra=self._extra)
            await self._close(CLOSE_PROTOCOL_ERROR, str(e))
            return CallOutcome(self.call_id, "protocol_error", 0)
        if start is None:
            return CallOutcome(self.call_id, "closed_before_start", 0)
        return await self._run_call(start)

    async def _await_start(self) -> mediastream.Start | None:
        async for message in self._ws:
            if message.type is not WSMsgType.TEXT and message.type is not WSMsgType.BINARY:
                break
            event = self._parser.feed(message.data)
            if isinstance(event, mediastream.Start):
                return event
        return None

    async def _run_call(self, start: mediastream.Start) -> CallOutcome:
        settings = self._settings
        params = start.custom_parameters
        language = params.get("language", settings.default_language)
        if language not in settings.languages:
            logger.warning(
                "customParameters.language %r is not one of %s; using %s",
                language[:8],
                ",".join(settings.languages),
                settings.default_language,
                extra=self._extra,
            )
            language = settings.default_language
        centre = params.get("centre", "default")
        sideband = params.get("voicebot_events") == "1"
        store = self._services.store
        await store.start_call(
            self.call_id,
            stream_sid=start.stream_sid,
            call_sid=start.call_sid,
            caller=params.get("caller", ""),
            language=language,
            centre=centre,
            started_at=time.time(),
            custom_parameters={k: v for k, v in params.items() if k not in ("caller",)},
        )
        logger.info("call started: stream %s language %s", start.stream_sid, language, extra=self._extra)

        self._output = MediaStreamOutput(
            send_text=self._ws.send_str, stream_sid=start.stream_sid, sideband=sideband, call_id=self.call_id
        )
        turn_detector = TurnDetector(
            vad=self._services.new_vad(),
            turn_analyzer=self._services.new_turn_analyzer(),
            incomplete_timeout_s=settings.incomplete_turn_timeout_s,
            max_turn_s=settings.max_turn_s,
            call_id=self.call_id,
        )
        dialog = DialogProcessor(
            responder=self._services.responder,
            messages=self._services.messages,
            context=DialogContext(call_id=self.call_id, language=language, centre=centre),
            store=store,
        )
        pipeline = Pipeline(
            [
                turn_detector,
                TranscriptionProcessor(transcriber=self._services.transcriber, language=language, call_id=self.call_id),
                dialog,
                SpeechSynthesisProcessor(synthesizer=self._services.synthesizer, call_id=self.call_id),
                self._output,
            ]
        )
        self._worker = PipelineWorker(
            pipeline,
            params=PipelineParams(audio_in_sample_rate=PIPELINE_RATE, audio_out_sample_rate=PIPELINE_RATE),
            idle_timeout_secs=None,
            enable_rtvi=False,
            enable_turn_tracking=False,
            check_dangling_tasks=False,
            name=f"call-{self.call_id}",
        )
        runner = WorkerRunner(handle_sigint=False, check_dangling_tasks=False)
        await runner.add_workers(self._worker)
        pipeline_task = asyncio.create_task(runner.run(), name=f"pipeline-{self.call_id}")
        await self._output.send_event({"type": "call", "call_id": self.call_id})

        reason = "socket_closed"
        close: tuple[int, str] = (CLOSE_NORMAL, "call ended")
        try:
            reason = await self._read_stream()
        except ProtocolError as e:
            logger.warning("protocol error, closing the call: %s", e, extra=self._extra)
            await self._output.send_event({"type": "error", "message": str(e)})
            reason = "protocol_error"
            close = (CLOSE_PROTOCOL_ERROR, str(e))
        finally:
            await self._finish(pipeline_task, reason, close)
        turns = turn_detector.turn_count
        return CallOutcome(self.call_id, reason, turns)

    async def _read_stream(self) -> str:
        assert self._worker is not None and self._output is not None
        resampler = create_stream_resampler()
        async for message in self._ws:
            if message.type is WSMsgType.ERROR:
                return "socket_error"
            if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                break
            event = self._parser.feed(message.data)
            if isinstance(event, mediastream.Media):
                pcm = g711.mulaw_to_pcm(event.payload)
                pcm16 = await resampler.resample(pcm, mediastream.TELEPHONE_SAMPLE_RATE, PIPELINE_RATE)
                if pcm16:
                    await self._worker.queue_frame(
                        InputAudioRawFrame(audio=pcm16, sample_rate=PIPELINE_RATE, num_channels=1)
                    )
            elif isinstance(event, mediastream.Mark):
                await self._output.on_mark(event.name)
            elif isinstance(event, mediastream.Dtmf):
                await self._worker.queue_frame(InputDTMFFrame(button=KeypadEntry(event.digit)))
            elif isinstance(event, mediastream.Stop):
                return "caller_hung_up"
        return "socket_closed"

    async def _finish(self, pipeline_task: asyncio.Task[None], reason: str, close: tuple[int, str]) -> None:
        # The record is saved before the socket closes, so a peer that reads it after the
        # close always finds the end of the call.
        if self._output is not None:
            self._output.mark_closed()
        deadline = self._settings.hangup_timeout_s
        if self._worker is not None:
            try:
                await asyncio.wait_for(self._worker.cancel(reason=reason), timeout=deadline)
            except asyncio.TimeoutError:
                logger.error("pipeline did not stop within %.1f s; cancelling its task", deadline, extra=self._extra)
        if not pipeline_task.done():
            pipeline_task.cancel()
        await asyncio.wait({pipeline_task}, timeout=deadline)
        await self._services.store.end_call(self.call_id, ended_at=time.time(), reason=reason)
        if not self._ws.closed:
            await self._close(*close)
        logger.info("call ended: %s", reason, extra=self._extra)

    async def _close(self, code: int, message: str) -> None:
        # A close reason may be at most 123 bytes (RFC 6455 section 5.5).
        reason = message.encode("utf-8")[:123].decode("utf-8", errors="ignore")
        try:
            await self._ws.close(code=code, message=reason.encode("utf-8"))
        except (ConnectionError, RuntimeError):
            pass
