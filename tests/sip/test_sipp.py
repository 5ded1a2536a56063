"""Integration tests against the real SIPp (Debian package sip-tester) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from telephony.sip import CallAnswered, CallEnded, Event, IncomingCall, UserAgentConfig
from telephony.sip.transport import SipServer

SIPP = shutil.which("sipp")
SCENARIOS = Path(__file__).parent / "scenarios"
pytestmark = [
    pytest.mark.skipif(SIPP is None, reason="sipp not found; install it with: apt-get install -y sip-tester"),
    pytest.mark.timeout(60),
]


class Bot:
    """Test application: rings, then answers unless told to wait."""

    def __init__(self, *, answer: bool) -> None:
        self.answer = answer
        self.events: list[Event] = []
        self.ended = asyncio.Event()
        self.server = SipServer(config=UserAgentConfig(host="127.0.0.1", port=0), on_event=self.on_event)

    def on_event(self, event: Event) -> None:
        self.events.append(event)
        agent = self.server.agent
        if isinstance(event, IncomingCall):
            self.server.execute(agent.ring(event.call_id, now=self.server.now()))
            if self.answer:
                actions = agent.answer(event.call_id, rtp_address=("127.0.0.1", 40000), now=self.server.now())
                self.server.execute(actions)
        if isinstance(event, CallEnded):
            self.ended.set()

    def kinds(self) -> list[str]:
        return [type(event).__name__ for event in self.events]


async def run_sipp(tmp_path: Path, port: int, *args: str) -> tuple[int, str]:
    # No -p or -mp: sipp binds the first free SIP port from 5060 and media ports from 6000 on its
    # own, and the bot listens on port 0, so parallel runs cannot pick the same port.
    process = await asyncio.create_subprocess_exec(
        SIPP or "sipp", f"127.0.0.1:{port}", "-m", "1", "-l", "1", "-i", "127.0.0.1", "-nostdin",
        "-timeout", "20s", "-timeout_error", "-trace_err", "-trace_screen", *args,
        cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=40)
    logs = "".join(p.read_text(errors="replace")[-3000:] for p in tmp_path.glob("*.log"))
    return process.returncode or 0, output.decode(errors="replace")[-2000:] + logs


async def test_sipp_uac_call(tmp_path: Path) -> None:
    """SIPp's built-in uac scenario places a call; the bot answers with SDP and SIPp hangs up."""
    bot = Bot(answer=True)
    await bot.server.start()
    try:
        code, output = await run_sipp(tmp_path, bot.server.port, "-sn", "uac", "-d", "200")
        assert code == 0, output
        await asyncio.wait_for(bot.ended.wait(), timeout=5)
    finally:
        await bot.server.close()
    assert bot.kinds() == ["IncomingCall", "CallAnswered", "CallEnded"]
    answered = bot.events[1]
    assert isinstance(answered, CallAnswered) and answered.media is not None
    assert answered.media.codec == "PCMU"
    assert bot.events[2].reason == "remote-bye"  # type: ignore[union-attr]


async def test_sipp_uac_call_over_tcp(tmp_path: Path) -> None:
    """The same call over TCP exercises Content-Length framing."""
    bot = Bot(answer=True)
    await bot.server.start()
    try:
        code, output = await run_sipp(tmp_path, bot.server.port, "-sn", "uac", "-t", "t1", "-d", "200")
        assert code == 0, output
        await asyncio.wait_for(bot.ended.wait(), timeout=5)
    finally:
        await bot.server.close()
    assert bot.kinds() == ["IncomingCall", "CallAnswered", "CallEnded"]


async def test_sipp_cancel_before_answer(tmp_path: Path) -> None:
    """SIPp cancels while the bot rings; the bot answers 200 and 487 and reports the cancel."""
    bot = Bot(answer=False)
    await bot.server.start()
    try:
        code, output = await run_sipp(tmp_path, bot.server.port, "-sf", str(SCENARIOS / "cancel.xml"))
        assert code == 0, output
    finally:
        await bot.server.close()
    assert bot.kinds() == ["IncomingCall", "CallEnded"]
    assert bot.events[1].reason == "cancelled"  # type: ignore[union-attr]


async def test_sipp_options_ping(tmp_path: Path) -> None:
    """An OPTIONS ping gets 200 with an Allow header listing INVITE."""
    bot = Bot(answer=True)
    await bot.server.start()
    try:
        code, output = await run_sipp(tmp_path, bot.server.port, "-sf", str(SCENARIOS / "options.xml"))
        assert code == 0, output
    finally:
        await bot.server.close()
    assert bot.events == []


async def test_sipp_no_common_codec(tmp_path: Path) -> None:
    """A G.729-only offer gets 488 before the application hears of the call."""
    bot = Bot(answer=True)
    await bot.server.start()
    try:
        code, output = await run_sipp(tmp_path, bot.server.port, "-sf", str(SCENARIOS / "no_common_codec.xml"))
        assert code == 0, output
    finally:
        await bot.server.close()
    assert bot.events == []
