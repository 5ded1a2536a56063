"""One phone call on a media stream: the WebSocket side of a call.

Reads the socket, validates every message with `telephony.mediastream`, feeds caller audio
(8 kHz mu-law, decoded) into the call's pipeline (`voicebot.callcore`), routes echoed marks
back to the output, and tears everything down within `hangup_timeout_s` when the caller
hangs up or the socket drops.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from telephony import g711, mediastream
from voicebot.callcore import CallPipeline
from voicebot.errors import ProtocolError
from voicebot.pipeline.dialog import HandoffRequestInfo
from voicebot.transfer import WarmTransfer

if TYPE_CHECKING:
    from voicebot.services import Services

logger = logging.getLogger(__name__)

# WebSocket close codes (RFC 6455): 1000 normal, 1008 policy violation, 1013 try again later.
CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_ERROR = 1008
CLOSE_TRY_AGAIN_LATER = 1013


@dataclass
class CallOutcome:
    call_id: str
    reason: str
    turns: int


class WebSocketSink:
    """AudioSink for a media stream: media, mark and clear messages, and the opt-in sideband."""

    def __init__(self, ws: web.WebSocketResponse, stream_sid: str, *, sideband: bool, call_id: str) -> None:
        self._ws = ws
        self._stream_sid = stream_sid
        self._sideband = sideband
        self._extra = {"call_id": call_id}

    async def _send(self, text: str) -> bool:
        if self._ws.closed:
            return False
        try:
            await self._ws.send_str(text)
            return True
        except (ConnectionError, RuntimeError) as e:
            # aiohttp raises ConnectionResetError or RuntimeError on a closing socket.
            logger.info("media stream closed while sending: %s", type(e).__name__, extra=self._extra)
            return False

    async def send_audio(self, mulaw: bytes) -> bool:
        return await self._send(mediastream.media_message(self._stream_sid, mulaw))

    async def send_mark(self, name: str) -> bool:
        return await self._send(mediastream.mark_message(self._stream_sid, name))

    async def send_clear(self) -> bool:
        return await self._send(mediastream.clear_message(self._stream_sid))

    async def send_event(self, payload: dict[str, Any]) -> bool:
        if not self._sideband:
            return True
        return await self._send(mediastream.voicebot_event_message(self._stream_sid, payload))


class CallSession:
    """Serves one media-stream connection from `start` to hang-up."""

    def __init__(self, ws: web.WebSocketResponse, services: Services) -> None:
        self._ws = ws
        self._services = services
        self._settings = services.settings
        self.call_id = uuid.uuid4().hex
        self._parser = mediastream.MediaStreamParser()
        self._call: CallPipeline | None = None
        self._extra = {"call_id": self.call_id}
        self._transfer: WarmTransfer | None = None
        self._transfer_task: asyncio.Task[None] | None = None
        self._service_hang_up: str | None = None
        # Set when the call starts to end. A handoff requested after that is not queued.
        self._ending = False

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

    def _language(self, requested: str | None) -> str:
        settings = self._settings
        if requested is None:
            return settings.default_language
        if requested not in settings.languages:
            logger.warning(
                "customParameters.language %r is not one of %s; using %s",
                requested[:8],
                ",".join(settings.languages),
                settings.default_language,
                extra=self._extra,
            )
            return settings.default_language
        return requested

    async def _run_call(self, start: mediastream.Start) -> CallOutcome:
        params = start.custom_parameters
        language = self._language(params.get("language"))
        centre = params.get("centre", "default")
        # Pin the call to the current version now; its pipeline gets the same one.
        prompt_version = self._services.dialog_sets.pin(self.call_id).version
        await self._services.store.start_call(
            self.call_id,
            stream_sid=start.stream_sid,
            call_sid=start.call_sid,
            caller=params.get("caller", ""),
            language=language,
            centre=centre,
            started_at=time.time(),
            custom_parameters={
                **{k: v for k, v in params.items() if k != "caller"},
                "prompt_version": prompt_version,
            },
        )
        logger.info("call started: stream %s language %s", start.stream_sid, language, extra=self._extra)
        sink = WebSocketSink(
            self._ws, start.stream_sid, sideband=params.get("voicebot_events") == "1", call_id=self.call_id
        )
        started_at = time.time()

        async def on_handoff(info: HandoffRequestInfo) -> None:
            assert self._call is not None
            if self._ending:
                # The transfer message finished playing while the call was closing.
                logger.info("handoff not queued: the call has ended", extra=self._extra)
                return
            self._transfer = WarmTransfer(services=self._services, call=self._call, sink=sink, started_at=started_at)
            self._transfer_task = asyncio.create_task(self._transfer.run(info), name=f"transfer-{self.call_id}")

        async def on_hang_up(reason: str) -> None:
            self._service_hang_up = reason
            # Save the end first: a peer that reads the record after the close must find it.
            await self._services.store.end_call(self.call_id, ended_at=time.time(), reason=reason)
            await self._ws.close(code=CLOSE_NORMAL, message=b"call ended by the service")

        self._call = CallPipeline(
            self._services,
            call_id=self.call_id,
            sink=sink,
            language=language,
            centre=centre,
            caller=params.get("caller", ""),
            input_sample_rate=8000,
            on_handoff=on_handoff,
            on_hang_up=on_hang_up,
        )
        await self._call.start()
        await self._call.send_event({"type": "call", "call_id": self.call_id})

        reason = "socket_closed"
        close: tuple[int, str] = (CLOSE_NORMAL, "call ended")
        try:
            reason = await self._read_stream(self._call)
        except ProtocolError as e:
            logger.warning("protocol error, closing the call: %s", e, extra=self._extra)
            await self._call.send_event({"type": "error", "message": str(e)})
            reason = "protocol_error"
            close = (CLOSE_PROTOCOL_ERROR, str(e))
        finally:
            self._ending = True
            reason = self._service_hang_up or reason
            if self._transfer is not None:
                await self._transfer.close(reason)
            if self._transfer_task is not None:
                self._transfer_task.cancel()
                await asyncio.wait({self._transfer_task}, timeout=self._settings.hangup_timeout_s)
            # The record is saved before the socket closes, so a peer that reads it after the
            # close always finds the end of the call.
            await self._call.finish(reason, timeout_s=self._settings.hangup_timeout_s)
            if not self._ws.closed:
                await self._close(*close)
            logger.info("call ended: %s", reason, extra=self._extra)
        return CallOutcome(self.call_id, reason, self._call.turn_detector.turn_count)

    async def _read_stream(self, call: CallPipeline) -> str:
        async for message in self._ws:
            if message.type is WSMsgType.ERROR:
                return "socket_error"
            if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                break
            event = self._parser.feed(message.data)
            if isinstance(event, mediastream.Media):
                await call.push_audio(g711.mulaw_to_pcm(event.payload))
            elif isinstance(event, mediastream.Mark):
                await call.on_mark(event.name)
            elif isinstance(event, mediastream.Dtmf):
                await call.push_dtmf(event.digit)
            elif isinstance(event, mediastream.Stop):
                return "caller_hung_up"
        return "socket_closed"

    async def _close(self, code: int, message: str) -> None:
        # A close reason may be at most 123 bytes (RFC 6455 section 5.5).
        reason = message.encode("utf-8")[:123].decode("utf-8", errors="ignore")
        try:
            await self._ws.close(code=code, message=reason.encode("utf-8"))
        except (ConnectionError, RuntimeError):
            pass
