"""A minimal scripted media-stream client for protocol-level tests (the softphone hides the wire)."""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

import aiohttp
import websockets

from telephony import mediastream as ms


class RawPhone:
    """Speaks the media-stream protocol message by message and records everything the service sends."""

    def __init__(self, url: str, *, params: dict[str, str] | None = None, echo_marks: bool = True) -> None:
        self.url = url
        self.echo_marks = echo_marks
        self.params = {"voicebot_events": "1", **(params or {})}
        self.stream_sid = "MZ" + secrets.token_hex(16)
        self.call_sid = "CA" + secrets.token_hex(16)
        self.received: list[dict[str, Any]] = []
        self.call_id = ""
        self.close_code: int | None = None
        self.close_reason = ""
        self._changed = asyncio.Event()
        self._sequence = 0
        self._reader: asyncio.Task[None] | None = None
        self._ws: Any = None

    async def __aenter__(self) -> RawPhone:
        self._ws = await websockets.connect(self.url)
        self._reader = asyncio.create_task(self._read(), name="rawphone-reader")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._ws.close()
        if self._reader is not None:
            await asyncio.wait({self._reader}, timeout=5)

    async def _read(self) -> None:
        try:
            async for message in self._ws:
                data = json.loads(message)
                self.received.append(data)
                if self.echo_marks and data.get("event") == "mark":
                    # Echo at once: this phone has no playout clock, it only keeps the protocol.
                    await self._ws.send(ms.mark_message(self.stream_sid, data["mark"]["name"]))
                if data.get("event") == "voicebot" and data.get("type") == "call":
                    self.call_id = data["call_id"]
                self._changed.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            if self._ws.close_code is not None:
                self.close_code = self._ws.close_code
                self.close_reason = self._ws.close_reason or ""
            self._changed.set()

    def _next(self) -> int:
        self._sequence += 1
        return self._sequence

    async def send_raw(self, text: str | bytes) -> None:
        await self._ws.send(text)

    async def start(self) -> None:
        await self.send_raw(ms.connected_message())
        await self.send_raw(ms.start_message(self.stream_sid, self.call_sid, custom_parameters=self.params))
        await self.wait_for(lambda m: m.get("type") == "call")

    async def send_mulaw(self, payload: bytes, *, frame_interval_s: float = 0.0) -> None:
        """Send mu-law audio as 20 ms media messages, optionally paced."""
        for offset in range(0, len(payload), 160):
            sequence = self._next()
            await self.send_raw(
                ms.inbound_media_message(
                    self.stream_sid,
                    payload[offset : offset + 160],
                    sequence_number=sequence,
                    chunk=sequence,
                    timestamp_ms=offset // 8,
                )
            )
            if frame_interval_s:
                await asyncio.sleep(frame_interval_s)

    async def wait_for(self, predicate: Any, *, timeout: float = 30.0) -> dict[str, Any]:
        async def scan() -> dict[str, Any]:
            seen = 0
            while True:
                for message in self.received[seen:]:
                    if predicate(message):
                        return message
                seen = len(self.received)
                if self.close_code is not None or (self._reader is not None and self._reader.done()):
                    raise AssertionError(f"socket closed ({self.close_code} {self.close_reason!r}) before the message came")
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(scan(), timeout)

    async def wait_for_media(self, *, timeout: float = 30.0) -> dict[str, Any]:
        return await self.wait_for(lambda m: m.get("event") == "media", timeout=timeout)

    async def stop(self) -> None:
        await self.send_raw(ms.stop_message(self.stream_sid, self.call_sid, sequence_number=self._next()))

    async def drop(self) -> None:
        """Drop the TCP connection without a WebSocket close, as a crashed gateway would."""
        self._ws.transport.abort()

    async def wait_closed(self, *, timeout: float = 10.0) -> tuple[int | None, str]:
        if self._reader is not None:
            await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        return self.close_code, self.close_reason

    async def calls_in_progress(self) -> int:
        health_url = self.url.replace("ws://", "http://").rsplit("/", 1)[0] + "/healthz"
        async with aiohttp.ClientSession() as session:
            async with session.get(health_url) as response:
                return int((await response.json())["calls"])
