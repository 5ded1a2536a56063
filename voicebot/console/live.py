"""Live side of the rep console: one WebSocket per logged-in rep, and the hub that feeds them.

The hub follows the queue's console stream and sends each rep JSON events:
`queue_changed`, `offer` (an offer for this rep), `offer_withdrawn`, `call_ended` and
`presence`. During a call the same WebSocket carries audio as binary messages of 16-bit
little-endian PCM at the bridge rate: caller audio to the browser, microphone audio back.

While a rep's WebSocket is open this process refreshes the rep's presence TTL. When it
closes, an accepted call goes back to the queue (RepDisconnected) and the presence is removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from aiohttp import WSMsgType, web

from voicebot.errors import UpstreamError
from voicebot.handoff.bridge import RepBridgeEndpoint
from voicebot.handoff.models import HandoffError
from voicebot.handoff.queue import HandoffQueue

logger = logging.getLogger(__name__)

# A 20 ms frame at 16 kHz is 640 bytes; larger binary messages are cut by the browser code.
MAX_WS_MESSAGE_BYTES = 64 * 1024


class RepConnection:
    """A rep's console WebSocket in this process, with its heartbeat and the audio of its call."""

    def __init__(self, *, ws: web.WebSocketResponse, rep_id: str, skills: tuple[str, ...]) -> None:
        self.ws = ws
        self.rep_id = rep_id
        self.skills = skills
        self.handoff_id = ""
        self.endpoint: RepBridgeEndpoint | None = None
        self._audio_task: asyncio.Task[None] | None = None
        self.frames_to_browser = 0
        self.frames_from_browser = 0

    async def send_json(self, payload: dict[str, Any]) -> None:
        """Send an event to the browser; a closed socket is ignored because the close handler cleans up."""
        if self.ws.closed:
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.send_str(json.dumps(payload, ensure_ascii=False))

    async def start_call(self, handoff_id: str, endpoint: RepBridgeEndpoint) -> None:
        """Relay the caller's audio from the bridge endpoint to the browser."""
        self.handoff_id = handoff_id
        self.endpoint = endpoint
        self._audio_task = asyncio.create_task(self._relay_caller_audio(endpoint), name=f"console-audio-{handoff_id}")

    async def end_call(self) -> str:
        """Stop the audio of the current call and return its handoff id ("" when there was none)."""
        handoff_id, endpoint, task = self.handoff_id, self.endpoint, self._audio_task
        self.handoff_id = ""
        self.endpoint = None
        self._audio_task = None
        if endpoint is not None:
            await endpoint.close()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return handoff_id

    async def receive_rep_audio(self, pcm: bytes) -> None:
        """Pass a binary message of microphone PCM to the bridge; dropped when no call is up."""
        endpoint = self.endpoint
        if endpoint is None:
            return
        self.frames_from_browser += 1
        try:
            await endpoint.send_rep_audio(pcm)
        except UpstreamError as error:
            logger.error("Sending rep audio of handoff %s failed: %s", self.handoff_id, error)

    async def _relay_caller_audio(self, endpoint: RepBridgeEndpoint) -> None:
        async for frame in endpoint.caller_audio():
            if self.ws.closed:
                return
            try:
                await self.ws.send_bytes(frame)
            except (ConnectionError, RuntimeError):
                return
            self.frames_to_browser += 1


class ConsoleHub:
    """Connections of this process by rep id, and the task that forwards queue changes to them."""

    def __init__(self, *, queue: HandoffQueue, heartbeat_interval_s: float) -> None:
        self.queue = queue
        self.heartbeat_interval_s = heartbeat_interval_s
        self.connections: dict[str, RepConnection] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start following the console stream."""
        self._task = asyncio.create_task(self._follow(), name="console-hub")

    async def stop(self) -> None:
        """Stop following and close every rep's WebSocket."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for connection in list(self.connections.values()):
            await connection.ws.close(code=1001, message=b"server shutting down")

    async def _follow(self) -> None:
        while True:
            try:
                async for change in self.queue.console_events():
                    await self._forward(change)
            except UpstreamError as error:
                logger.warning("Console hub lost the queue stream, retrying in 1 s: %s", error)
                await asyncio.sleep(1.0)

    async def _forward(self, change: dict[str, str]) -> None:
        kind = change.get("type", "")
        handoff_id = change.get("handoff_id", "")
        rep_id = change.get("rep_id", "")
        if kind == "queue_changed":
            skill = change.get("skill", "")
            for connection in list(self.connections.values()):
                if not skill or skill in connection.skills:
                    await connection.send_json({"type": "queue_changed", "skill": skill})
            return
        connection = self.connections.get(rep_id)
        if connection is None:
            return
        if kind == "offer":
            await connection.send_json({"type": "offer", "handoff_id": handoff_id})
        elif kind == "offer_withdrawn":
            await connection.send_json({"type": "offer_withdrawn", "handoff_id": handoff_id})
        elif kind == "call_ended":
            if connection.handoff_id == handoff_id:
                await connection.end_call()
            await connection.send_json({"type": "call_ended", "handoff_id": handoff_id})
        elif kind == "presence_changed":
            presence = await self.queue.presence(rep_id)
            status = presence.status if presence is not None else "away"
            await connection.send_json({"type": "presence", "status": status})

    async def serve(self, request: web.Request, *, rep_id: str, skills: tuple[str, ...]) -> web.WebSocketResponse:
        """Run one rep's WebSocket until it closes, then put an open call back in the queue."""
        ws = web.WebSocketResponse(max_msg_size=MAX_WS_MESSAGE_BYTES, heartbeat=20.0)
        await ws.prepare(request)
        connection = RepConnection(ws=ws, rep_id=rep_id, skills=skills)
        previous = self.connections.get(rep_id)
        self.connections[rep_id] = connection
        if previous is not None:
            # A second tab or a reload replaces the first connection.
            await self._release(previous)
            await previous.ws.close(code=4000, message=b"console opened elsewhere")
        heartbeat = asyncio.create_task(self._heartbeat(rep_id), name=f"console-heartbeat-{rep_id}")
        logger.info("Console of rep %s connected", rep_id)
        try:
            await connection.send_json({"type": "hello", "rep_id": rep_id})
            async for message in ws:
                if message.type == WSMsgType.BINARY:
                    await connection.receive_rep_audio(message.data)
                elif message.type == WSMsgType.TEXT:
                    await self._on_text(connection, message.data)
                elif message.type == WSMsgType.ERROR:
                    logger.warning("Console WebSocket of rep %s failed: %s", rep_id, ws.exception())
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            if self.connections.get(rep_id) is connection:
                del self.connections[rep_id]
                await self._release(connection)
                with contextlib.suppress(UpstreamError):
                    await self.queue.remove_rep(rep_id)
            logger.info("Console of rep %s disconnected", rep_id)
        return ws

    async def _release(self, connection: RepConnection) -> None:
        handoff_id = await connection.end_call()
        if not handoff_id:
            return
        try:
            await self.queue.rep_disconnected(handoff_id, connection.rep_id)
        except HandoffError as error:
            # The call ended at the same moment (hang-up on either side).
            logger.info("Handoff %s not re-queued after rep %s left: %s", handoff_id, connection.rep_id, error)
        except UpstreamError as error:
            logger.error("Re-queueing handoff %s after rep %s left failed: %s", handoff_id, connection.rep_id, error)

    async def _on_text(self, connection: RepConnection, data: str) -> None:
        try:
            message = json.loads(data)
        except json.JSONDecodeError:
            await connection.send_json({"type": "error", "message": "invalid JSON message"})
            return
        if isinstance(message, dict) and message.get("type") == "ping":
            await connection.send_json({"type": "pong"})

    async def _heartbeat(self, rep_id: str) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval_s)
            try:
                await self.queue.heartbeat(rep_id)
            except UpstreamError as error:
                logger.warning("Presence heartbeat of rep %s failed: %s", rep_id, error)
