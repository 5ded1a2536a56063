"""asyncio adapter around the RTP state machines: one UDP socket per call.

Receive path: each datagram from the accepted remote address is parsed and pushed into a
`JitterBuffer`. RTCP (packet types 200-204) and malformed datagrams are counted and dropped.
DTMF digits go to the bounded queue `dtmf_digits`. The call's pipeline reads 20 ms PCM frames
with `read_frame()` or the paced iterator `frames()`.

Send path: a task sends one packet every frame_ms on a fixed grid from a bounded queue of
PCM frames. When the queue is empty it sends encoded silence or nothing, as configured.
When `send_audio()` finds the queue full it waits for room, which slows a faster-than-real-time
producer such as TTS down to real time. `send_audio_nowait()` raises OverloadedError instead.

Remote address: set from SDP with `set_remote()`. With `symmetric_rtp=True`, the session latches
onto the source of the first valid RTP packet, which may differ from SDP behind NAT (RFC 4961
symmetric RTP), and then accepts packets only from that address.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass

from telephony.rtp.dtmf import DtmfDigit, telephone_event_packets
from telephony.rtp.jitter import JitterBuffer
from telephony.rtp.packet import (
    DEFAULT_TELEPHONE_EVENT_PAYLOAD_TYPE,
    PAYLOAD_TYPE_PCMU,
    RtpError,
    RtpPacket,
    is_rtcp,
    parse_rtp,
)
from telephony.rtp.sender import RtpPacketizer, split_frames
from voicebot.errors import ConfigError, OverloadedError, ProtocolError

logger = logging.getLogger(__name__)

# A send that is this many frames behind its grid slot restarts the grid instead of sending a
# burst to catch up, because a burst only fills the far end's jitter buffer.
MAX_SEND_LAG_FRAMES = 5
DTMF_QUEUE_SIZE = 32


class RtpSessionClosedError(ProtocolError):
    """An operation on an RTP session after `close()`."""


@dataclass
class SendTiming:
    """Deviation of actual send times from the frame grid, in ms, over all packets sent."""

    packets: int = 0
    mean_abs_ms: float = 0.0
    max_ms: float = 0.0
    grid_restarts: int = 0


@dataclass
class SessionCounters:
    """Datagram counters of the receive path. The jitter buffer counts the packets it accepts."""

    datagrams: int = 0
    rtcp: int = 0
    invalid: int = 0
    foreign_source: int = 0
    dtmf_dropped: int = 0


@dataclass(frozen=True)
class _DtmfRequest:
    digit: str
    duration_ms: int


@dataclass(frozen=True)
class _Mark:
    name: str


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, session: RtpSession) -> None:
        self._session = session

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self._session._on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a peer that has not bound yet or has gone. Sending goes on.
        logger.debug("RTP socket error: %s", exc)


class RtpSession:
    """RTP media of one call: a UDP socket, a jitter buffer, a packetizer and a paced send task."""

    def __init__(
        self,
        *,
        local_host: str = "127.0.0.1",
        port_range: tuple[int, int] | None = None,
        payload_type: int = PAYLOAD_TYPE_PCMU,
        audio_payload_types: Mapping[int, str] | None = None,
        telephone_event_payload_type: int = DEFAULT_TELEPHONE_EVENT_PAYLOAD_TYPE,
        frame_ms: int = 20,
        remote: tuple[str, int] | None = None,
        symmetric_rtp: bool = True,
        send_silence_when_idle: bool = True,
        max_queued_frames: int = 250,
        min_delay_ms: float = 20.0,
        max_delay_ms: float = 200.0,
        on_mark: Callable[[str], None] | None = None,
    ) -> None:
        if port_range is not None:
            low, high = port_range
            if not 1024 <= low <= high <= 65535:
                raise ConfigError(f"RTP port range {low}-{high} is invalid; use 1024 <= low <= high <= 65535")
        if max_queued_frames < 1:
            raise ConfigError(f"max_queued_frames={max_queued_frames} must be at least 1")
        self.local_host = local_host
        self.port_range = port_range
        self.frame_ms = frame_ms
        self.symmetric_rtp = symmetric_rtp
        self.send_silence_when_idle = send_silence_when_idle
        self.packetizer = RtpPacketizer(
            payload_type=payload_type, frame_ms=frame_ms, telephone_event_payload_type=telephone_event_payload_type
        )
        self.jitter_buffer = JitterBuffer(
            frame_ms=frame_ms,
            min_delay_ms=min_delay_ms,
            max_delay_ms=max_delay_ms,
            audio_payload_types=audio_payload_types,
            telephone_event_payload_type=telephone_event_payload_type,
        )
        self.dtmf_digits: asyncio.Queue[DtmfDigit] = asyncio.Queue(maxsize=DTMF_QUEUE_SIZE)
        self.counters = SessionCounters()
        self.send_timing = SendTiming()
        self.on_hold = False
        self._remote = remote
        self._latched = False
        # Bounded queue of 16-bit PCM frames and DTMF key presses to send in order.
        self._queue: asyncio.Queue[bytes | _DtmfRequest | _Mark] = asyncio.Queue(maxsize=max_queued_frames)
        # Called from the send task with the name of each mark once the audio queued before it is sent.
        self._on_mark = on_mark
        # Telephone-event packets of the digit being sent, one per frame slot.
        self._pending_packets: deque[RtpPacket] = deque()
        self._transport: asyncio.DatagramTransport | None = None
        self._send_task: asyncio.Task[None] | None = None
        self._closed = False
        self._abs_lag_sum_ms = 0.0

    # Lifecycle.

    async def start(self) -> tuple[str, int]:
        """Bind the UDP socket, start the send task and return the local (host, port) for SDP."""
        if self._closed:
            raise RtpSessionClosedError("this RTP session is closed; create a new one for the next call")
        loop = asyncio.get_running_loop()
        # RTP uses even ports (RFC 3550 section 11), leaving the odd one above for RTCP.
        if self.port_range is None:
            ports: range | list[int] = [0]
        else:
            ports = range(self.port_range[0] + self.port_range[0] % 2, self.port_range[1] + 1, 2)
        for port in ports:
            try:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _Protocol(self), local_addr=(self.local_host, port)
                )
            except OSError as e:
                if e.errno == errno.EADDRINUSE and self.port_range is not None:
                    continue
                raise ConfigError(f"cannot bind RTP socket on {self.local_host}:{port} ({e}); check local_host") from e
            self._transport = transport
            break
        else:
            raise OverloadedError(
                f"no free even UDP port in {self.port_range[0]}-{self.port_range[1]} on {self.local_host}; "
                "widen the RTP port range"
            )
        self._send_task = asyncio.create_task(self._send_loop(), name=f"rtp-send-{self.local_address[1]}")
        logger.info("RTP session bound to %s:%d", *self.local_address)
        return self.local_address

    @property
    def local_address(self) -> tuple[str, int]:
        if self._transport is None:
            raise RtpSessionClosedError("the RTP session is not started; call start() first")
        host, port = self._transport.get_extra_info("sockname")[:2]
        return host, port

    @property
    def remote(self) -> tuple[str, int] | None:
        return self._remote

    def set_remote(self, host: str, port: int) -> None:
        """Set the remote RTP address from SDP (connection address and media port)."""
        if not 0 < port <= 65535:
            raise ProtocolError(f"SDP media port {port} is invalid; expected 1-65535")
        self._remote = (host, port)
        self._latched = False

    async def close(self) -> None:
        """Stop the send task and close the socket. No packet is sent after this returns."""
        if self._closed:
            return
        self._closed = True
        if self._send_task is not None:
            self._send_task.cancel()
            # The send loop only awaits sleeps, so it stops at once.
            with contextlib.suppress(asyncio.CancelledError):
                await self._send_task
        if self._transport is not None:
            self._transport.close()
        logger.info(
            "RTP session closed: %d packets sent, %d received, %d lost",
            self.packetizer.packets_sent,
            self.jitter_buffer.stats.received,
            self.jitter_buffer.stats.lost,
        )

    async def __aenter__(self) -> RtpSession:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # Receive path.

    def _on_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        if self._closed:
            return
        self.counters.datagrams += 1
        source = (addr[0], addr[1])
        if not self._accept_source(source):
            self.counters.foreign_source += 1
            return
        if is_rtcp(data):
            self.counters.rtcp += 1
            return
        try:
            packet = parse_rtp(data)
        except RtpError as e:
            self.counters.invalid += 1
            if self.counters.invalid == 1 or self.counters.invalid % 100 == 0:
                logger.warning(
                    "dropped invalid RTP datagram from %s:%d (%d so far): %s", *source, self.counters.invalid, e
                )
            return
        if self.symmetric_rtp and not self._latched:
            if self._remote != source:
                logger.info("RTP latched to %s:%d (symmetric RTP)", *source)
            self._remote = source
            self._latched = True
        digit = self.jitter_buffer.push(packet, asyncio.get_running_loop().time())
        if digit is not None:
            try:
                self.dtmf_digits.put_nowait(digit)
            except asyncio.QueueFull:
                self.counters.dtmf_dropped += 1
                logger.warning("DTMF queue full (%d digits); dropped a digit", DTMF_QUEUE_SIZE)

    def _accept_source(self, source: tuple[str, int]) -> bool:
        if self._remote is None:
            # NOTE: without an SDP address, symmetric RTP latches onto whoever sends first, so
            # call set_remote() before start() where the address is known.
            return self.symmetric_rtp
        if source == self._remote:
            return True
        # Before latching, symmetric RTP accepts the first packet from any port of the SDP host,
        # because NAT rewrites the port. Once latched, only the latched address is accepted.
        return self.symmetric_rtp and not self._latched and source[0] == self._remote[0]

    def read_frame(self) -> bytes:
        """Return the next frame_ms of received audio (16-bit PCM, 8 kHz), real or concealed."""
        return self.jitter_buffer.pop(asyncio.get_running_loop().time())

    async def frames(self) -> AsyncIterator[bytes]:
        """Yield one received frame every frame_ms in real time until the session closes."""
        loop = asyncio.get_running_loop()
        period = self.frame_ms / 1000
        next_time = loop.time()
        while not self._closed:
            yield self.read_frame()
            next_time += period
            delay = next_time - loop.time()
            if delay < -MAX_SEND_LAG_FRAMES * period:
                next_time = loop.time()
            await asyncio.sleep(max(0.0, delay))

    # Send path.

    async def send_audio(self, pcm: bytes) -> None:
        """Queue 16-bit 8 kHz PCM for sending, waiting while the queue is full."""
        for frame in split_frames(pcm, frame_ms=self.frame_ms):
            self._check_open()
            await self._queue.put(frame)

    def send_audio_nowait(self, pcm: bytes) -> None:
        """Queue 16-bit 8 kHz PCM for sending. Raises OverloadedError, queueing nothing, when it does not fit."""
        self._check_open()
        frames = split_frames(pcm, frame_ms=self.frame_ms)
        room = self._queue.maxsize - self._queue.qsize()
        if len(frames) > room:
            raise OverloadedError(
                f"RTP send queue has room for {room} frames, got {len(frames)}; "
                "use send_audio() to wait or raise max_queued_frames"
            )
        for frame in frames:
            self._queue.put_nowait(frame)

    async def send_dtmf(self, digit: str, *, duration_ms: int = 100) -> None:
        """Queue an RFC 4733 key press after the audio already queued."""
        self._check_open()
        telephone_event_packets(digit, ssrc=0, first_sequence_number=0, timestamp=0, duration_ms=duration_ms)
        await self._queue.put(_DtmfRequest(digit, duration_ms))

    async def send_mark(self, name: str) -> None:
        """Queue a mark: `on_mark(name)` runs once every frame queued before it has been sent.

        A mark takes a queue slot but no frame slot. `clear()` drops queued marks with the audio.
        """
        self._check_open()
        await self._queue.put(_Mark(name))

    def clear(self) -> int:
        """Drop all queued audio and marks (barge-in) and return the number of items dropped."""
        # A key press already being sent is finished, so the far end sees its end packets.
        dropped = 0
        while not self._queue.empty():
            self._queue.get_nowait()
            dropped += 1
        if dropped:
            self.packetizer.start_talkspurt()
        return dropped

    @property
    def queued_ms(self) -> int:
        """Audio queued and not yet sent, in ms."""
        return self._queue.qsize() * self.frame_ms

    def hold(self, on_hold: bool = True) -> None:
        """Pause (True) or resume (False) sending. Queued audio waits and the timestamp keeps running."""
        self.on_hold = on_hold

    def _check_open(self) -> None:
        if self._closed:
            raise RtpSessionClosedError("cannot send audio: the RTP session is closed")

    async def _send_loop(self) -> None:
        loop = asyncio.get_running_loop()
        period = self.frame_ms / 1000
        grid_start = loop.time()
        slot = 0
        while True:
            due = grid_start + slot * period
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            now = loop.time()
            lag = now - due
            if lag > MAX_SEND_LAG_FRAMES * period:
                logger.warning("RTP send loop was %.0f ms late; restarting the frame grid", lag * 1000)
                self.send_timing.grid_restarts += 1
                grid_start, slot, lag = now, 0, 0.0
            self._send_one()
            self._record_lag(lag)
            slot += 1

    def _send_one(self) -> None:
        if self._closed or self._transport is None:
            return
        if self.on_hold or self._remote is None:
            self.packetizer.skip_frame()
            return
        if self._pending_packets:
            packet = self._pending_packets.popleft()
            self._transport.sendto(packet.to_bytes(), self._remote)
            return
        try:
            item = self._queue.get_nowait()
            while isinstance(item, _Mark):
                if self._on_mark is not None:
                    self._on_mark(item.name)
                item = self._queue.get_nowait()
        except asyncio.QueueEmpty:
            if not self.send_silence_when_idle:
                self.packetizer.skip_frame()
                return
            packet = self.packetizer.silence()
        else:
            if isinstance(item, _DtmfRequest):
                self._pending_packets.extend(self.packetizer.telephone_event(item.digit, duration_ms=item.duration_ms))
                packet = self._pending_packets.popleft()
            else:
                packet = self.packetizer.packetize(item)
        self._transport.sendto(packet.to_bytes(), self._remote)

    def _record_lag(self, lag_s: float) -> None:
        timing = self.send_timing
        lag_ms = lag_s * 1000
        timing.packets += 1
        self._abs_lag_sum_ms += abs(lag_ms)
        timing.mean_abs_ms = self._abs_lag_sum_ms / timing.packets
        timing.max_ms = max(timing.max_ms, lag_ms)
