"""Two-way audio between a caller's call and a rep's console over Redis pub/sub.

The call and the console may run in different voicebot processes. Each handoff has two
channels, `{prefix}h:{id}:audio:caller` (call to rep: caller audio and the whisper) and
`{prefix}h:{id}:audio:rep` (rep to call). A message is a 3-byte header (kind, sample rate
in Hz as little-endian uint16) and at most one 20 ms frame of 16-bit little-endian mono PCM.

Pub/sub does not store messages: a message published before the other side subscribed is
lost. So the sides shake hands: the call side publishes HELLO until READY comes back
(`wait_rep_ready`), and the rep side publishes READY when it subscribes and in reply to each
HELLO. Either side may open first. The whisper and caller audio go out after READY.

An endpoint serves one rep. When the rep side closes it publishes END and the call side's
`rep_audio()` finishes; after RepDisconnected the call side opens a new endpoint for the
next rep.

Each endpoint buffers received frames in a bounded deque. When it is full the oldest frame
is dropped, because late audio is worse than a short gap in a live conversation.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import struct
import time
from collections.abc import AsyncIterator

import redis.asyncio as redis_asyncio
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from voicebot.errors import ConfigError, UpstreamError

logger = logging.getLogger(__name__)

FRAME_MS = 20
SAMPLE_WIDTH_BYTES = 2
SUPPORTED_RATES_HZ = (8000, 16000)

KIND_AUDIO = 1
KIND_WHISPER = 2
KIND_READY = 3
KIND_END = 4
KIND_HELLO = 5
_HEADER = struct.Struct("<BH")

_TRANSIENT_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)


def frame_bytes(sample_rate_hz: int) -> int:
    """Return the size in bytes of one 20 ms frame of 16-bit PCM at the rate."""
    return sample_rate_hz * FRAME_MS // 1000 * SAMPLE_WIDTH_BYTES


def encode_message(kind: int, sample_rate_hz: int, payload: bytes = b"") -> bytes:
    """Return a bridge message: the header and the payload."""
    return _HEADER.pack(kind, sample_rate_hz) + payload


def decode_message(message: bytes) -> tuple[int, int, bytes]:
    """Return (kind, sample rate in Hz, payload) of a bridge message.

    Raises:
        ValueError: If the message is shorter than the header.
    """
    if len(message) < _HEADER.size:
        raise ValueError(f"Bridge message of {len(message)} bytes is shorter than the {_HEADER.size}-byte header.")
    kind, rate = _HEADER.unpack_from(message)
    return kind, rate, bytes(message[_HEADER.size :])


class _BridgeEndpoint:
    """One side of the bridge: publishes on one channel, buffers what arrives on the other."""

    def __init__(
        self,
        *,
        client: redis_asyncio.Redis,
        handoff_id: str,
        key_prefix: str,
        sample_rate_hz: int,
        max_queued_frames: int,
        send_channel: str,
        receive_channel: str,
    ) -> None:
        if sample_rate_hz not in SUPPORTED_RATES_HZ:
            raise ConfigError(f"Invalid bridge sample_rate_hz {sample_rate_hz}: use 8000 or 16000.")
        if max_queued_frames < 1:
            raise ConfigError(f"Invalid bridge max_queued_frames {max_queued_frames}: use 1 or more.")
        self.handoff_id = handoff_id
        self.sample_rate_hz = sample_rate_hz
        self.frame_bytes = frame_bytes(sample_rate_hz)
        self.send_channel = f"{key_prefix}h:{handoff_id}:audio:{send_channel}"
        self.receive_channel = f"{key_prefix}h:{handoff_id}:audio:{receive_channel}"
        self._client = client
        self._pubsub: redis_asyncio.client.PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        # deque(maxlen=...) drops the oldest frame when a new one arrives and it is full.
        self._frames: collections.deque[bytes] = collections.deque(maxlen=max_queued_frames)
        self._frame_ready = asyncio.Event()
        self._peer_ready = asyncio.Event()
        self._pending = b""
        self._closed = False
        self.peer_ended = False
        self.frames_sent = 0
        self.frames_received = 0
        self.frames_dropped = 0

    async def open(self) -> None:
        """Subscribe to the receive channel and start the reader task.

        Raises:
            UpstreamError: If Redis fails.
        """
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        try:
            await self._pubsub.subscribe(self.receive_channel)
        except _TRANSIENT_ERRORS as error:
            raise UpstreamError(
                f"Subscribing to the audio bridge of handoff {self.handoff_id} failed ({type(error).__name__}): "
                "check that Redis is running."
            ) from error
        self._reader = asyncio.create_task(self._read_loop(), name=f"bridge-reader-{self.handoff_id}")

    async def close(self) -> None:
        """Tell the peer this side is gone, stop the reader and unsubscribe."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(UpstreamError):
            await self._publish(KIND_END, b"")
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._pubsub is not None:
            with contextlib.suppress(*_TRANSIENT_ERRORS):
                await self._pubsub.unsubscribe()
            await self._pubsub.aclose()
        self._frame_ready.set()
        logger.info(
            "Bridge endpoint of handoff %s closed: %s frames sent, %s received, %s dropped",
            self.handoff_id,
            self.frames_sent,
            self.frames_received,
            self.frames_dropped,
        )

    async def __aenter__(self) -> _BridgeEndpoint:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _receive(self) -> AsyncIterator[bytes]:
        """Yield received PCM frames until this side closes or the peer ends."""
        while True:
            if self._frames:
                yield self._frames.popleft()
                continue
            if self._closed or self.peer_ended:
                return
            self._frame_ready.clear()
            await self._frame_ready.wait()

    async def _send_pcm(self, pcm: bytes, kind: int) -> int:
        """Publish PCM as whole 20 ms frames, keeping a partial frame for the next call."""
        data = self._pending + pcm
        whole = len(data) // self.frame_bytes * self.frame_bytes
        self._pending = data[whole:]
        sent = 0
        for start in range(0, whole, self.frame_bytes):
            await self._publish(kind, data[start : start + self.frame_bytes])
            sent += 1
        return sent

    async def _publish(self, kind: int, payload: bytes) -> None:
        try:
            await self._client.publish(self.send_channel, encode_message(kind, self.sample_rate_hz, payload))
        except _TRANSIENT_ERRORS as error:
            raise UpstreamError(
                f"Publishing audio of handoff {self.handoff_id} failed ({type(error).__name__}): "
                "check that Redis is running."
            ) from error
        if kind in (KIND_AUDIO, KIND_WHISPER):
            self.frames_sent += 1

    async def _on_hello(self) -> None:
        """Handle the call side's HELLO; only the rep side replies."""

    async def _read_loop(self) -> None:
        assert self._pubsub is not None
        mismatched_rates = 0
        try:
            async for message in self._pubsub.listen():
                if message.get("type") != "message":
                    continue
                try:
                    kind, rate, payload = decode_message(message["data"])
                except ValueError:
                    logger.warning("Ignored a malformed bridge message on handoff %s", self.handoff_id)
                    continue
                if kind == KIND_READY:
                    self._peer_ready.set()
                elif kind == KIND_HELLO:
                    await self._on_hello()
                elif kind == KIND_END:
                    self.peer_ended = True
                    self._frame_ready.set()
                elif kind in (KIND_AUDIO, KIND_WHISPER):
                    if rate != self.sample_rate_hz:
                        mismatched_rates += 1
                        if mismatched_rates == 1:
                            logger.error(
                                "Bridge of handoff %s received %s Hz audio but runs at %s Hz; dropping it",
                                self.handoff_id,
                                rate,
                                self.sample_rate_hz,
                            )
                        continue
                    if len(self._frames) == self._frames.maxlen:
                        self.frames_dropped += 1
                        if self.frames_dropped in (1, 100) or self.frames_dropped % 1000 == 0:
                            logger.warning(
                                "Bridge queue of handoff %s full: dropped the oldest frame (%s dropped)",
                                self.handoff_id,
                                self.frames_dropped,
                            )
                    self._frames.append(payload)
                    self.frames_received += 1
                    self._frame_ready.set()
        except (UpstreamError, *_TRANSIENT_ERRORS) as error:
            logger.error(
                "Audio bridge of handoff %s lost Redis (%s); ending the bridge", self.handoff_id, type(error).__name__
            )
            self.peer_ended = True
            self._frame_ready.set()


class CallBridgeEndpoint(_BridgeEndpoint):
    """The call side: sends caller audio and the whisper to the rep, yields the rep's audio."""

    def __init__(
        self,
        *,
        client: redis_asyncio.Redis,
        handoff_id: str,
        key_prefix: str,
        sample_rate_hz: int = 8000,
        max_queued_frames: int = 50,
    ) -> None:
        """Create the endpoint; `open()` subscribes.

        Args:
            client: Redis client with decode_responses=False.
            handoff_id: The handoff this bridge belongs to.
            key_prefix: The handoff queue's key prefix.
            sample_rate_hz: PCM rate of both directions, 8000 or 16000 Hz.
            max_queued_frames: Rep frames buffered before the oldest is dropped (50 frames are 1 s).
        """
        super().__init__(
            client=client,
            handoff_id=handoff_id,
            key_prefix=key_prefix,
            sample_rate_hz=sample_rate_hz,
            max_queued_frames=max_queued_frames,
            send_channel="caller",
            receive_channel="rep",
        )
        self._whispering = False
        self.caller_frames_held = 0

    async def wait_rep_ready(self, timeout_s: float, *, hello_interval_s: float = 0.2) -> bool:
        """Publish HELLO until the rep's endpoint replies READY; return False after `timeout_s` seconds."""
        deadline = time.monotonic() + timeout_s
        while not self._peer_ready.is_set():
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                return False
            await self._publish(KIND_HELLO, b"")
            try:
                await asyncio.wait_for(self._peer_ready.wait(), timeout=min(hello_interval_s, remaining_s))
            except asyncio.TimeoutError:
                continue
        return True

    async def send_whisper(self, pcm: bytes) -> int:
        """Send a whisper to the rep only, paced in real time, and return the frames sent.

        Caller audio passed to `send_caller_audio` while the whisper plays is dropped, so the
        rep hears the whisper alone. Call it after `wait_rep_ready` and before the caller talks.
        """
        self._whispering = True
        try:
            frame_s = FRAME_MS / 1000
            whole = len(pcm) // self.frame_bytes * self.frame_bytes
            frames = [pcm[i : i + self.frame_bytes] for i in range(0, whole, self.frame_bytes)]
            if whole < len(pcm):
                # Pad the last partial frame with silence.
                frames.append(pcm[whole:] + b"\x00" * (self.frame_bytes - (len(pcm) - whole)))
            next_send_at = time.monotonic()
            for frame in frames:
                delay_s = next_send_at - time.monotonic()
                if delay_s > 0:
                    await asyncio.sleep(delay_s)
                await self._publish(KIND_WHISPER, frame)
                next_send_at += frame_s
            return len(frames)
        finally:
            self._whispering = False

    async def send_caller_audio(self, pcm: bytes) -> int:
        """Send caller PCM at the bridge rate in 20 ms frames and return the frames sent.

        Any length is accepted; a partial frame waits for the next call. The caller audio is
        not paced here because it arrives in real time from the line.
        """
        if self._closed:
            return 0
        if self._whispering:
            self.caller_frames_held += len(pcm) // self.frame_bytes
            return 0
        return await self._send_pcm(pcm, KIND_AUDIO)

    async def rep_audio(self) -> AsyncIterator[bytes]:
        """Yield the rep's 20 ms PCM frames until the rep's endpoint or this one closes."""
        async for frame in self._receive():
            yield frame


class RepBridgeEndpoint(_BridgeEndpoint):
    """The console side: yields caller audio and the whisper, sends the rep's microphone audio."""

    def __init__(
        self,
        *,
        client: redis_asyncio.Redis,
        handoff_id: str,
        key_prefix: str,
        sample_rate_hz: int = 8000,
        max_queued_frames: int = 50,
    ) -> None:
        """Create the endpoint; `open()` subscribes and tells the call side it is ready.

        Args:
            client: Redis client with decode_responses=False.
            handoff_id: The handoff this bridge belongs to.
            key_prefix: The handoff queue's key prefix.
            sample_rate_hz: PCM rate of both directions, 8000 or 16000 Hz.
            max_queued_frames: Caller frames buffered before the oldest is dropped (50 frames are 1 s).
        """
        super().__init__(
            client=client,
            handoff_id=handoff_id,
            key_prefix=key_prefix,
            sample_rate_hz=sample_rate_hz,
            max_queued_frames=max_queued_frames,
            send_channel="rep",
            receive_channel="caller",
        )

    async def open(self) -> None:
        """Subscribe to the caller channel, then publish READY to the call side."""
        await super().open()
        await self._publish(KIND_READY, b"")

    async def _on_hello(self) -> None:
        await self._publish(KIND_READY, b"")

    async def send_rep_audio(self, pcm: bytes) -> int:
        """Send the rep's PCM at the bridge rate in 20 ms frames and return the frames sent."""
        if self._closed:
            return 0
        return await self._send_pcm(pcm, KIND_AUDIO)

    async def caller_audio(self) -> AsyncIterator[bytes]:
        """Yield the whisper and then the caller's 20 ms PCM frames until either side closes."""
        async for frame in self._receive():
            yield frame
