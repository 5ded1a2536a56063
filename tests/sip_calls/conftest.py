"""Fixtures for SIP calls: the real services loaded once, a gateway per test on 127.0.0.1, sipp and tshark."""

from __future__ import annotations


import fcntl
import random
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from telephony.gateway import SipGateway, SipSettings, start_sip_gateway
from telephony.rtp.pcap import wav_to_rtp_pcap
from tests.sip_calls import harness
from tests.sip_calls.harness import SIPP, TSHARK, shared_speech_dir, wav_seconds
from voicebot.config import Settings
from voicebot.services import Services, load_services

pytestmark = [
    pytest.mark.skipif(SIPP is None, reason="sipp not found; install it with: apt-get install -y sip-tester"),
    pytest.mark.skipif(TSHARK is None, reason="tshark not found; install it with: apt-get install -y tshark"),
]


@pytest.fixture(scope="module")
def callers_dir() -> Path:
    folder = shared_speech_dir() / "callers"
    if not (folder / "faq_annual_fee.wav").is_file():
        pytest.skip(f"caller clips not found in {folder}: set VOICEBOT_SHARED_SPEECH to the folder holding callers/")
    return folder


@pytest.fixture(scope="module")
def pcap_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sip-pcaps")


@pytest.fixture(scope="module")
def caller_pcap(callers_dir: Path, pcap_dir: Path) -> Callable[[str], tuple[Path, float]]:
    """Return the pcap of a caller clip (written once into a temp dir) and the clip's length in seconds."""

    def make(name: str) -> tuple[Path, float]:
        pcap = pcap_dir / f"{name}.pcap"
        if not pcap.exists():
            wav_to_rtp_pcap(callers_dir / f"{name}.wav", pcap, payload_type=0)
        return pcap, wav_seconds(callers_dir / f"{name}.wav")

    return make


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def services() -> AsyncIterator[Services]:
    """Every model loaded once for the module, as the service does at start-up."""
    # A banking simulator of its own: another test run on the same Redis re-seeds the shared one.
    loaded = await load_services(Settings(port=0, banking_key_prefix=f"voicebot-test-{uuid.uuid4().hex[:8]}:banksim:"))
    yield loaded
    await loaded.banking.clear()
    await loaded.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def greeting_s(services: Services) -> float:
    """Length of the spoken greeting, so a caller can wait for it before speaking."""
    text = services.messages.render("greeting", services.settings.default_language)
    pcm = await services.synthesizer.synthesize(text, services.settings.default_language)
    return len(pcm) / 2 / getattr(services.synthesizer, "sample_rate", 16000)


# Test port blocks start at or above this port, below the kernel's ephemeral range (so sockets
# bound to port 0 elsewhere never land in a block) and outside the ports the service and sipp
# use by default.
BLOCK_LOW = 10000
BLOCK_SIZE = 100
# Port ranges other users of this machine bind by default: the service's RTP range, sipp's SIP,
# media and control ports when run without -p/-mp, and bench/sip.py's RTP range.
RESERVED_RANGES = ((20000, 20999), (5060, 5160), (6000, 6100), (8888, 8988), (36000, 36999))
PORT_LOCK_DIR = Path(tempfile.gettempdir()) / "voicebot-test-ports"


def ephemeral_port_low() -> int:
    """Return the lowest port the kernel hands out for port 0 (32768 when it cannot be read)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def port_is_free(port: int) -> bool:
    """Bind UDP and TCP on 127.0.0.1:`port` without SO_REUSEADDR and return True when both binds succeed."""
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as probe:
            try:
                probe.bind((harness.HOST, port))
            except OSError:
                return False
    return True


class Ports:
    """Port numbers for one test, from a block of 100 that this process has locked and found free.

    Each candidate block is locked with an exclusive flock on a file in PORT_LOCK_DIR, so two
    test processes on this machine never share a block. Each port the test uses is then bound
    once (UDP and TCP) to check that no other program uses it. Call `release()` after the test.
    NOTE: a program outside the tests can still bind a port between the check and sipp's bind.
    """

    def __init__(self, *, attempts: int = 50) -> None:
        high = min(ephemeral_port_low(), 65536) - BLOCK_SIZE
        bases = [
            base for base in range(BLOCK_LOW, high + 1, BLOCK_SIZE)
            if not any(low < base + BLOCK_SIZE and base <= top for low, top in RESERVED_RANGES)
        ]
        if not bases:
            raise RuntimeError(
                f"the ephemeral port range starts at {high + BLOCK_SIZE}, which leaves no {BLOCK_SIZE}-port test "
                f"block above {BLOCK_LOW}; set the first value of /proc/sys/net/ipv4/ip_local_port_range to 32768"
            )
        PORT_LOCK_DIR.mkdir(exist_ok=True)
        busy: list[int] = []
        candidates = random.sample(bases, min(attempts, len(bases)))
        for base in candidates:
            self._assign(base)
            lock = open(PORT_LOCK_DIR / f"{base}.lock", "w")  # noqa: SIM115 - held until release()
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.close()
                continue
            ports_in_use = [port for port in self.used_ports() if not port_is_free(port)]
            if not ports_in_use:
                self._lock = lock
                return
            busy.extend(ports_in_use)
            lock.close()
        raise RuntimeError(
            f"none of {len(candidates)} test port blocks was free: other test processes hold their locks "
            f"in {PORT_LOCK_DIR} or other programs bind ports {busy[:10]}; stop those programs and retry"
        )

    def _assign(self, base: int) -> None:
        self.rtp_range = (base, base + 39)
        self.caller_media = base + 50
        self.rep_media = base + 60
        self.caller_sip = base + 70
        self.rep_sip = base + 72

    def used_ports(self) -> list[int]:
        """Return every port of the block a test binds: the gateway's RTP range and sipp's SIP and media ports."""
        # sipp binds its audio port and the video port 2 above it, and RTP peers use the odd
        # port above for RTCP.
        media = [port + offset for port in (self.caller_media, self.rep_media) for offset in range(4)]
        return [*range(self.rtp_range[0], self.rtp_range[1] + 1), *media, self.caller_sip, self.rep_sip]

    def release(self) -> None:
        self._lock.close()


@pytest.fixture
def ports() -> Iterator[Ports]:
    block = Ports()
    yield block
    block.release()


@pytest_asyncio.fixture(loop_scope="module")
async def gateway_factory(services: Services, ports: Ports) -> AsyncIterator[Callable[..., object]]:
    """Start gateways on 127.0.0.1, port 0, with the test's RTP range; all are closed after the test."""
    started: list[SipGateway] = []

    async def start(**overrides: object) -> SipGateway:
        settings = SipSettings(host="127.0.0.1", port=0, rtp_port_range=ports.rtp_range, **overrides)  # type: ignore[arg-type]
        gateway = await start_sip_gateway(services, settings)
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        await gateway.close()
