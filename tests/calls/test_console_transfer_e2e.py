"""A fraud call is handed to a rep in the web console, with headless Chromium as the rep's browser.

Everything is real: the service with its models, Redis, the console and Debian's Chromium
at /usr/bin/chromium driven by Playwright. Chromium's fake microphone plays a caller
clip, so the rep "speaks" recorded speech. The caller is a RawPhone on the media stream.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import re
import secrets
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import numpy as np
import pytest
import pytest_asyncio
import soundfile
import soxr
import yaml

from telephony import g711
from tests.calls.rawphone import RawPhone
from tests.calls.test_handoff_e2e import PhoneLine, clip_mulaw, rms
from voicebot.config import REPO_ROOT
from voicebot.console import hash_password
from voicebot.server import running_server
from voicebot.services import Services

if TYPE_CHECKING:
    from playwright.async_api import Page

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(120)]

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO_ROOT / "test-artifacts"
SCREENSHOT = ARTIFACTS / "console-transfer-screen-pop.png"
REP_PASSWORD = "fraud desk 7"
# A low scrypt cost keeps the login fast. Production hashes use the default n=2**14.
TEST_SCRYPT_N = 2**10
MICROPHONE_RATE_HZ = 48000
# Caller-side loudness of rep speech: RMS of 200 ms (10 frames) of decoded mu-law, int16 scale.
# The loudest window of rep speech measured about 4700 in runs of this test, and silence decodes to 0.
REP_SPEECH_MIN_RMS = 300.0
# Browser-side loudness in window.voicebotStats (full scale 1.0): speech and the whisper peak
# at about 0.1-0.2, well above 0.02 (655 in int16). The peak decays by 2% per received frame,
# so caller silence brings it below 0.005.
CALLER_SPEECH_MIN_RMS = 0.02
QUIET_MAX_RMS = 0.005
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]


@dataclasses.dataclass
class ConsoleService:
    """The running service with the console mounted: base URL, media URL and the rep's login."""

    url: str
    media_url: str
    username: str


def caller_clip(callers_dir: Path, name: str) -> Path:
    path = callers_dir / name
    if not path.is_file():
        pytest.skip(f"caller clip {path} not found: set VOICEBOT_SHARED_SPEECH to the folder holding callers/")
    return path


def write_microphone_wav(clip: Path, path: Path) -> Path:
    """Write `clip` as the 48 kHz mono 16-bit WAV that Chromium's fake microphone loops."""
    samples, rate = soundfile.read(clip, dtype="float32", always_2d=True)
    resampled = soxr.resample(samples.mean(axis=1), rate, MICROPHONE_RATE_HZ)
    with wave.open(str(path), "wb") as output:
        output.setnchannels(1)
        output.setsampwidth(2)
        output.setframerate(MICROPHONE_RATE_HZ)
        output.writeframes((np.clip(resampled, -1.0, 1.0) * 32767).astype("<i2").tobytes())
    return path


def write_users_file(path: Path, username: str) -> Path:
    """Write a console users file with one fraud rep whose password is REP_PASSWORD."""
    entry = {
        "username": username,
        "name": "周敏",
        "password_hash": hash_password(REP_PASSWORD, n=TEST_SCRYPT_N),
        "skills": ["fraud"],
        "roles": ["rep"],
    }
    path.write_text(yaml.safe_dump({"users": [entry]}, allow_unicode=True), encoding="utf-8")
    return path


def loudest_window(received: list[dict[str, Any]], start: int, *, frames: int = 10) -> float:
    """Return the highest RMS over `frames` consecutive media frames received from index `start` on."""
    pcm = [
        g711.mulaw_to_pcm(base64.b64decode(message["media"]["payload"]))
        for message in received[start:]
        if message.get("event") == "media"
    ]
    loudest = 0.0
    for first in range(0, max(1, len(pcm) - frames + 1)):
        loudest = max(loudest, rms(b"".join(pcm[first : first + frames])))
    return loudest


async def wait_for_rep_speech(phone: RawPhone, start: int, *, timeout_s: float) -> float:
    """Wait until media after message `start` reaches REP_SPEECH_MIN_RMS and return the loudest window seen."""
    loudest = 0.0
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            while loudest <= REP_SPEECH_MIN_RMS:
                loudest = loudest_window(phone.received, start)
                await asyncio.sleep(0.2)
    return loudest


@pytest_asyncio.fixture(loop_scope="session")
async def console_service(services: Services, tmp_path: Path) -> AsyncIterator[ConsoleService]:
    """The service on 127.0.0.1:0 sharing the session's models, with the console and one fraud rep."""
    username = "fraud-" + secrets.token_hex(3)
    users_file = write_users_file(tmp_path / "console-users.yaml", username)
    # create_app reads the console settings from services.settings, so they go on a copy of it.
    settings = dataclasses.replace(services.settings, port=0, console_users=str(users_file))
    console_services = dataclasses.replace(services, settings=settings)
    async with running_server(settings, console_services) as (url, _):
        yield ConsoleService(url=url, media_url=url.replace("http://", "ws://") + "/media", username=username)
    await services.handoff_queue.remove_rep(username)


@pytest_asyncio.fixture(loop_scope="session")
async def rep_page(callers_dir: Path, tmp_path: Path) -> AsyncIterator[Page]:
    """A page of headless Chromium that reaches only 127.0.0.1, its microphone playing a caller clip."""
    playwright_api = pytest.importorskip("playwright.async_api")
    if not CHROMIUM.is_file():
        pytest.skip("Chromium not found at /usr/bin/chromium: apt-get install -y chromium")
    microphone = write_microphone_wav(caller_clip(callers_dir, "human_request.wav"), tmp_path / "rep-microphone.wav")
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={microphone}"],
        )
        context = await browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
        page = await context.new_page()
        page.set_default_timeout(30_000)
        try:
            yield page
        finally:
            await context.close()
            await browser.close()


async def test_fraud_call_to_console_rep(
    console_service: ConsoleService, rep_page: Page, callers_dir: Path, services: Services
) -> None:
    """A fraud caller reaches the rep's browser, both sides hear each other and the rep's hang-up ends the call."""
    page = rep_page
    fraud_clip = caller_clip(callers_dir, "fraud_unauthorized.wav")
    second_clip = caller_clip(callers_dir, "faq_annual_fee.wav")

    # The rep logs in through the form and goes available.
    await page.goto(f"{console_service.url}/console/")
    await page.fill("#login-username", console_service.username)
    await page.fill("#login-password", REP_PASSWORD)
    await page.click("#login-submit")
    await page.wait_for_selector("#work-panel:not(.hidden)")
    await page.wait_for_function("() => window.voicebotStats.socket === 'open'")
    await page.click("#presence-available")
    await page.wait_for_selector("#presence-status[data-status='available']")

    async with RawPhone(console_service.media_url) as phone:
        await phone.start()
        line = PhoneLine(phone)
        try:
            # The caller reports an unauthorized transaction and the bot hands the call off.
            line.say(clip_mulaw(fraud_clip))
            handoff = await phone.wait_for(lambda m: m.get("type") == "handoff", timeout=60)
            assert handoff["reason"] == "fraud"
            queued = await phone.wait_for(lambda m: m.get("type") == "handoff_queued", timeout=30)
            assert queued["skill"] == "fraud"
            stored = await services.handoff_queue.get(queued["handoff_id"])
            assert stored.screen_pop is not None
            caller_lines = [text for role, text in stored.screen_pop.transcript if role == "caller"]
            assert caller_lines, f"no caller line in the stored screen-pop transcript {stored.screen_pop.transcript}"

            # The screen-pop shows the fraud reason and the masked transcript.
            await page.wait_for_selector("#offer-panel:not(.hidden)")
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(SCREENSHOT), full_page=True)
            reasons = await page.inner_text("#screen-pop .reasons")
            assert "疑似欺诈" in reasons, f"screen-pop reasons read {reasons!r}"
            transcript = await page.inner_text("#screen-pop .transcript")
            for text in caller_lines:
                assert f"客户：{text}" in transcript
            assert not re.search(r"\d{8,}", transcript), f"unmasked digits in the transcript {transcript!r}"

            # The rep accepts, and after the whisper the caller is bridged to the browser.
            await page.click("#accept-btn")
            await page.wait_for_selector("#call-panel:not(.hidden)")
            connected = await phone.wait_for(lambda m: m.get("type") == "rep_connected", timeout=30)
            connected_at = phone.received.index(connected)
            await page.wait_for_function("() => window.voicebotStats.audioState === 'connected'")

            # Rep to caller: speech from the fake microphone arrives as media on the caller's stream.
            # Hold music was cleared before the whisper, so media after rep_connected is bridged rep audio.
            await page.wait_for_function("() => window.voicebotStats.sentFrames > 50")
            loudest = await wait_for_rep_speech(phone, connected_at, timeout_s=20)
            assert loudest > REP_SPEECH_MIN_RMS, f"rep audio on the caller's stream peaked at RMS {loudest:.0f}"

            # Caller to rep: once the whisper has faded in the browser, the caller speaks again.
            await page.wait_for_function(f"() => window.voicebotStats.receivedRms < {QUIET_MAX_RMS}")
            frames_before = await page.evaluate("() => window.voicebotStats.receivedFrames")
            line.say(clip_mulaw(second_clip))
            await page.wait_for_function(f"() => window.voicebotStats.receivedRms > {CALLER_SPEECH_MIN_RMS}")
            assert await page.evaluate("() => window.voicebotStats.receivedFrames") > frames_before

            # The rep hangs up: the console moves to wrap-up and the service ends the call.
            await line.stop()
            await page.click("#hangup-btn")
            await page.wait_for_selector("#wrapup-panel:not(.hidden)")
            close_code, _ = await phone.wait_closed(timeout=15)
            assert close_code == 1000
        finally:
            await line.stop()

    async with aiohttp.ClientSession() as http:
        async with http.get(f"{console_service.url}/calls/{phone.call_id}") as response:
            assert response.status == 200
            record = (await response.json())["call"]
    assert record["end_reason"] == "rep_hung_up"
