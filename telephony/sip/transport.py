"""Asyncio UDP and TCP transports around the pure `SipUserAgent` core.

`SipServer` binds one host and port for both UDP and TCP. It feeds every datagram or framed
stream message to the core with the loop's monotonic clock, sends the `SendMessage` actions,
hands events to the application callback and runs the core's timers. TCP messages are framed
by Content-Length (RFC 3261 section 18.3). Bad input never ends the server: the core answers
it, and a stream that cannot be framed is closed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from typing import Callable

from telephony.sip.callstate import UserAgentConfig
from telephony.sip.events import Action, Address, Event, SendMessage
from telephony.sip.uas import SipUserAgent

logger = logging.getLogger(__name__)

_CONTENT_LENGTH_RE = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*(\d{1,9})[ \t]*$", re.IGNORECASE | re.MULTILINE)
# Bytes read per TCP receive call.
_READ_CHUNK_BYTES = 65_536


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: SipServer) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: tuple) -> None:  # type: ignore[override]
        self.server._feed(data, (addr[0], addr[1]), "UDP", datagram=True)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and similar: the peer is gone; timers end its transactions.
        logger.info("UDP send failed: %s", exc)


class SipServer:
    """Serve a `SipUserAgent` over UDP and TCP; `on_event` receives every application event.

    The callback runs on the event loop and must not block. It may call the agent's methods
    (`server.agent.answer(...)`) and pass their result to `server.execute()`.
    """

    def __init__(self, *, config: UserAgentConfig, on_event: Callable[[Event], None], udp: bool = True,
                 tcp: bool = True) -> None:
        self._config = config
        self._on_event = on_event
        self._udp_enabled = udp
        self._tcp_enabled = tcp
        self._agent: SipUserAgent | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._writers: dict[Address, asyncio.StreamWriter] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_deadline: float | None = None

    @property
    def agent(self) -> SipUserAgent:
        if self._agent is None:
            raise RuntimeError("SipServer.start() has not run; start the server before using its agent")
        return self._agent

    @property
    def port(self) -> int:
        return self.agent.config.port

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def start(self) -> None:
        """Bind UDP and TCP on the configured host and port; port 0 picks a free port for both."""
        loop = asyncio.get_running_loop()
        host, port = self._config.host, self._config.port
        if self._udp_enabled:
            transport, _ = await loop.create_datagram_endpoint(lambda: _UdpProtocol(self), local_addr=(host, port))
            self._udp = transport
            port = transport.get_extra_info("sockname")[1]
        if self._tcp_enabled:
            self._tcp = await asyncio.start_server(self._serve_stream, host, port)
            port = self._tcp.sockets[0].getsockname()[1]
        self._agent = SipUserAgent(config=dataclasses.replace(self._config, port=port))
        logger.info("SIP server listening on %s:%d (udp=%s, tcp=%s)", host, port, self._udp_enabled,
                    self._tcp_enabled)

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
        for writer in list(self._writers.values()):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._tcp is not None:
            await self._tcp.wait_closed()
        logger.info("SIP server stopped")

    def execute(self, actions: list[Action]) -> None:
        """Send the messages, deliver the events and re-arm the timer."""
        for action in actions:
            if isinstance(action, SendMessage):
                self._send(action)
            else:
                self._on_event(action)
        self._arm_timer()

    def _feed(self, data: bytes, source: Address, transport: str, *, datagram: bool) -> None:
        try:
            actions = self.agent.receive(data, source, transport, self.now(), datagram=datagram)
        except Exception:
            # The core answers malformed input itself; anything reaching here is a bug in it.
            # Log with the traceback and keep serving the other calls.
            logger.exception("SIP core failed on a %d-byte %s message from %s", len(data), transport, source[0])
            return
        self.execute(actions)

    def _send(self, action: SendMessage) -> None:
        if action.transport.upper() == "UDP":
            if self._udp is None:
                logger.warning("dropped a SIP message for %s: UDP is disabled", action.address[0])
                return
            self._udp.sendto(action.data, action.address)
            return
        writer = self._writers.get(action.address)
        if writer is not None and not writer.is_closing():
            writer.write(action.data)
            return
        self._spawn(self._connect_and_send(action), name=f"sip-tcp-connect-{action.address[0]}:{action.address[1]}")

    def _spawn(self, coroutine: object, *, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coroutine, name=name)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect_and_send(self, action: SendMessage) -> None:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(*action.address), timeout=5.0)
        except (OSError, asyncio.TimeoutError) as e:
            # The transaction timer (B or F) reports the failure to the application.
            logger.warning("TCP connection to %s:%d failed: %s", action.address[0], action.address[1], e)
            return
        writer.write(action.data)
        await self._read_stream(reader, writer, action.address)

    async def _serve_stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await self._read_stream(reader, writer, (peer[0], peer[1]))

    async def _read_stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: Address) -> None:
        self._writers[peer] = writer
        buffer = b""
        max_bytes = self.agent.config.max_message_bytes
        try:
            while True:
                chunk = await reader.read(_READ_CHUNK_BYTES)
                if not chunk:
                    return
                buffer += chunk
                buffer = self._drain_messages(buffer, peer, writer, max_bytes)
                if buffer is None:
                    return
        except (ConnectionError, asyncio.IncompleteReadError) as e:
            logger.info("TCP connection from %s closed: %s", peer[0], e)
        finally:
            if self._writers.get(peer) is writer:
                del self._writers[peer]
            writer.close()

    def _drain_messages(
        self, buffer: bytes, peer: Address, writer: asyncio.StreamWriter, max_bytes: int
    ) -> bytes | None:
        """Feed every complete message in `buffer`; return the rest, or None to close the connection."""
        while True:
            stripped = buffer.lstrip(b"\r\n")
            if stripped != buffer and buffer.startswith(b"\r\n\r\n"):
                # RFC 5626 keep-alive ping (CRLF CRLF) gets a pong (CRLF).
                writer.write(b"\r\n")
            buffer = stripped
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > max_bytes:
                    logger.info("closing TCP connection from %s: no header end in %d bytes", peer[0], len(buffer))
                    return None
                return buffer
            match = _CONTENT_LENGTH_RE.search(buffer[:end])
            # RFC 3261 section 18.3: on a stream a missing Content-Length means no body; the
            # core answers a message with a body and no Content-Length as best it can.
            body_length = int(match.group(1)) if match else 0
            total = end + 4 + body_length
            if total > max_bytes:
                self._feed(buffer[: end + 4], peer, "TCP", datagram=False)
                logger.info("closing TCP connection from %s: message of %d bytes is too large", peer[0], total)
                return None
            if len(buffer) < total:
                return buffer
            self._feed(buffer[:total], peer, "TCP", datagram=False)
            buffer = buffer[total:]

    def _arm_timer(self) -> None:
        if self._agent is None:
            return
        deadline = self._agent.next_deadline()
        if deadline == self._timer_deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_deadline = deadline
        if deadline is not None:
            self._timer = asyncio.get_running_loop().call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_deadline = None
        try:
            actions = self.agent.tick(self.now())
        except Exception:
            logger.exception("SIP core failed while running timers")
            actions = []
        self.execute(actions)
