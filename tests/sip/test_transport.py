"""asyncio transport tests on 127.0.0.1: framing and survival of bad input."""

from __future__ import annotations

import asyncio

import pytest

from telephony.sip import UserAgentConfig
from telephony.sip.message import SipResponse, parse_message
from telephony.sip.transport import SipServer
from tests.sip.messages import request

pytestmark = pytest.mark.timeout(30)


class _Collector(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple) -> None:  # type: ignore[override]
        self.received.put_nowait(data)


def options(port: int, transport: str = "UDP") -> bytes:
    data = request("OPTIONS", content_type=None, uri=f"sip:bot@127.0.0.1:{port}")
    return data.replace(b"SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-inv-1",
                        f"SIP/2.0/{transport} 127.0.0.1:9;branch=z9hG4bK-o;rport".encode())


async def test_udp_survives_garbage() -> None:
    """Garbage datagrams get no answer and a later OPTIONS still gets 200."""
    server = SipServer(config=UserAgentConfig(host="127.0.0.1", port=0), on_event=lambda event: None)
    await server.start()
    loop = asyncio.get_running_loop()
    transport, collector = await loop.create_datagram_endpoint(_Collector, local_addr=("127.0.0.1", 0))
    try:
        for junk in (b"\x00" * 10, b"INVITE\r\n\r\n", b"\r\n\r\n", b"SIP/2.0 200 OK\r\n\r\n"):
            transport.sendto(junk, ("127.0.0.1", server.port))
        transport.sendto(options(server.port), ("127.0.0.1", server.port))
        reply = parse_message(await asyncio.wait_for(collector.received.get(), timeout=5))
    finally:
        transport.close()
        await server.close()
    assert isinstance(reply, SipResponse)
    assert reply.status == 200


async def test_tcp_framing_split_and_pipelined() -> None:
    """Messages split across writes and two in one write are both framed by Content-Length."""
    server = SipServer(config=UserAgentConfig(host="127.0.0.1", port=0), on_event=lambda event: None)
    await server.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        data = options(server.port, "TCP")
        writer.write(b"\r\n\r\n" + data[:30])
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(data[30:] + data.replace(b"z9hG4bK-o", b"z9hG4bK-p"))
        await writer.drain()
        pong = await asyncio.wait_for(reader.readexactly(2), timeout=5)
        first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
        second = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
    finally:
        writer.close()
        await server.close()
    assert pong == b"\r\n"
    assert first.startswith(b"SIP/2.0 200 OK")
    assert b"branch=z9hG4bK-o" in first
    assert b"branch=z9hG4bK-p" in second
