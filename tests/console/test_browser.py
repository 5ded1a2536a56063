"""The rep console in headless Chromium: screen-pop, accept, two-way audio, decline, disconnect.

Chromium is the Debian package at /usr/bin/chromium driven by Playwright; its fake
microphone plays a caller clip, so the audio the rep "speaks" is real speech.
"""

from __future__ import annotations

import asyncio
import os
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.console.conftest import PASSWORDS, ConsoleSite
from tests.handoff.conftest import fraud_request
from voicebot.handoff import Accepted, Declined, Offered, RepDisconnected

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

CHROMIUM = Path("/usr/bin/chromium")
REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts"
BRIDGE_RATE_HZ = 8000
FRAME_SAMPLES = BRIDGE_RATE_HZ // 50


def speech_folder() -> Path:
    """Return $VOICEBOT_SHARED_SPEECH, or shared/speech beside the repository."""
    configured = os.environ.get("VOICEBOT_SHARED_SPEECH", "").strip()
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "speech"


def load_clip(name: str, rate_hz: int) -> np.ndarray:
    """Load a caller clip as mono int16 at `rate_hz` (linear interpolation)."""
    path = speech_folder() / "callers" / name
    if not path.is_file():
        pytest.skip(f"caller clip {path} not found: set VOICEBOT_SHARED_SPEECH")
    samples, source_rate = sf.read(path, dtype="float32", always_2d=True)
    mono = samples.mean(axis=1)
    duration_s = len(mono) / source_rate
    target_times = np.arange(int(duration_s * rate_hz)) / rate_hz
    resampled = np.interp(target_times, np.arange(len(mono)) / source_rate, mono)
    return (np.clip(resampled, -1.0, 1.0) * 32767).astype("<i2")


def rms(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples**2))) if len(samples) else 0.0


@pytest.fixture
def fake_microphone_wav(tmp_path: Path) -> Path:
    """A 48 kHz WAV of a caller clip for Chromium's fake microphone, in a temp folder."""
    samples = load_clip("human_request.wav", 48000)
    path = tmp_path / "rep-microphone.wav"
    with wave.open(str(path), "wb") as output:
        output.setnchannels(1)
        output.setsampwidth(2)
        output.setframerate(48000)
        output.writeframes(samples.tobytes())
    return path


@pytest.fixture
async def page(fake_microphone_wav: Path) -> AsyncIterator[object]:
    """A page of headless Chromium that can reach only 127.0.0.1."""
    playwright_api = pytest.importorskip("playwright.async_api")
    if not CHROMIUM.is_file():
        pytest.skip("Chromium not found at /usr/bin/chromium: apt-get install -y chromium")
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
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
                f"--use-file-for-fake-audio-capture={fake_microphone_wav}",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        context = await browser.new_context(locale="zh-CN")
        page = await context.new_page()
        try:
            yield page
        finally:
            await context.close()
            await browser.close()


async def log_in_available(page, site: ConsoleSite) -> None:  # type: ignore[no-untyped-def]
    """Log in as rep1 through the form and press 空闲 (available)."""
    await page.goto(f"{site.url}/console/")
    await page.fill("#login-username", "rep1")
    await page.fill("#login-password", PASSWORDS["rep1"])
    await page.click("#login-submit")
    await page.wait_for_selector("#work-panel:not(.hidden)")
    await page.wait_for_function("() => window.voicebotStats.socket === 'open'")
    await page.click("#presence-available")
    await page.wait_for_selector("#presence-status[data-status='available']")


async def test_screen_pop_accept_and_audio(site: ConsoleSite, page) -> None:  # type: ignore[no-untyped-def]
    """The rep sees the fraud reason, accepts, hears the caller and is heard by the call."""
    await log_in_available(page, site)
    handoff_id = await site.call_queue.request(fraud_request("call-browser"))
    events = site.call_queue.events(handoff_id)
    call = site.call_queue.call_endpoint(handoff_id, sample_rate_hz=BRIDGE_RATE_HZ)
    await call.open()

    await page.wait_for_selector("#offer-panel:not(.hidden)")
    reasons = await page.inner_text("#screen-pop .reasons")
    assert "疑似欺诈" in reasons
    transcript = await page.inner_text("#screen-pop .transcript")
    assert "[CARD]" in transcript
    assert "6222021234567890" not in transcript
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "console-screen-pop.png"), full_page=True)

    await page.click("#accept-btn")
    assert isinstance(await asyncio.wait_for(anext(events), timeout=10), Offered)
    accepted = await asyncio.wait_for(anext(events), timeout=10)
    assert isinstance(accepted, Accepted)
    assert accepted.rep_id == "rep1"
    assert await call.wait_rep_ready(timeout_s=10)
    await page.wait_for_selector("#call-panel:not(.hidden)")

    caller = load_clip("fraud_unauthorized.wav", BRIDGE_RATE_HZ).tobytes()
    frame_bytes = FRAME_SAMPLES * 2
    for start in range(0, len(caller) - frame_bytes, frame_bytes):
        await call.send_caller_audio(caller[start : start + frame_bytes])
        await asyncio.sleep(0.02)
    await page.wait_for_function("() => window.voicebotStats.receivedRms > 0.02")
    received_frames = await page.evaluate("() => window.voicebotStats.receivedFrames")
    assert received_frames > 0

    loudest = 0.0
    frames_read = 0
    async for frame in call.rep_audio():
        frames_read += 1
        loudest = max(loudest, rms(frame))
        if loudest > 300 or frames_read > 1500:
            break
    assert loudest > 300, f"rep microphone audio stayed silent over {frames_read} frames"
    assert len(frame) == frame_bytes

    await page.click("#hangup-btn")
    await page.wait_for_selector("#wrapup-panel:not(.hidden)")
    await page.select_option("#disposition-select", "fraud_confirmed")
    await page.fill("#notes", "客户确认迪拜交易非本人")
    await page.click("#save-disposition")
    await page.wait_for_selector("#disposition-saved:has-text('已保存')")
    stored = await site.console.notes.get_disposition("call-browser")
    assert stored is not None
    assert stored.disposition == "fraud_confirmed"
    await call.close()


async def test_decline_and_disconnect(site: ConsoleSite, page) -> None:  # type: ignore[no-untyped-def]
    """Decline puts the handoff back; closing the page mid-call emits RepDisconnected."""
    await log_in_available(page, site)
    declined_id = await site.call_queue.request(fraud_request("call-declined"))
    events = site.call_queue.events(declined_id)
    await page.wait_for_selector("#offer-panel:not(.hidden)")
    await page.click("#decline-btn")
    assert isinstance(await asyncio.wait_for(anext(events), timeout=10), Offered)
    declined = await asyncio.wait_for(anext(events), timeout=10)
    assert isinstance(declined, Declined)
    assert declined.rep_id == "rep1"
    assert await site.call_queue.position(declined_id) == 1
    await page.wait_for_selector(f"#queue-table tr[data-handoff-id='{declined_id}']")

    handoff_id = await site.call_queue.request(fraud_request("call-dropped", priority=7))
    await page.wait_for_selector("#offer-panel:not(.hidden)")
    await page.click("#accept-btn")
    await page.wait_for_selector("#call-panel:not(.hidden)")
    events = site.call_queue.events(handoff_id)
    assert isinstance(await asyncio.wait_for(anext(events), timeout=10), Offered)
    assert isinstance(await asyncio.wait_for(anext(events), timeout=10), Accepted)
    await page.close()
    disconnected = await asyncio.wait_for(anext(events), timeout=15)
    assert isinstance(disconnected, RepDisconnected)
    assert disconnected.rep_id == "rep1"
    assert await site.call_queue.position(handoff_id) == 1
