"""Fixtures for SIP calls: the real services loaded once, a gateway per test on 127.0.0.1, sipp and tshark."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio

from telephony.gateway import SipGateway, SipSettings, start_sip_gateway
from telephony.rtp.pcap import wav_to_rtp_pcap
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
    loaded = await load_services(Settings(port=0))
    yield loaded
    await loaded.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def greeting_s(services: Services) -> float:
    """Length of the spoken greeting, so a caller can wait for it before speaking."""
    text = services.messages.render("greeting", services.settings.default_language)
    pcm = await services.synthesizer.synthesize(text, services.settings.default_language)
    return len(pcm) / 2 / getattr(services.synthesizer, "sample_rate", 16000)


class Ports:
    """Port numbers for one test: a random block per test keeps parallel helpers apart."""

    def __init__(self) -> None:
        base = random.randrange(30000, 58000, 100)
        self.rtp_range = (base, base + 39)
        self.caller_media = base + 50
        self.rep_media = base + 60
        self.caller_sip = base + 70
        self.rep_sip = base + 72


@pytest.fixture
def ports() -> Ports:
    return Ports()


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
