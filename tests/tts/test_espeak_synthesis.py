"""Tests of EspeakSynthesizer against the real espeak-ng program."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import numpy as np
import pytest

from voicebot.errors import ConfigError, UpstreamError
from voicebot.tts.espeak import EspeakSynthesizer

pytestmark = pytest.mark.timeout(60)

GREETING = {
    "zh": "您好，欢迎致电信用卡中心，请问有什么可以帮您？",
    "yue": "您好，歡迎致電信用卡中心，請問有咩可以幫到您？",
}
# Long enough that espeak-ng runs for about a second on one core.
LONG_TEXT = "您好，欢迎致电信用卡中心，我们将竭诚为您服务。" * 150


def espeak_children() -> list[tuple[int, str]]:
    """Return (pid, state) of every espeak-ng child of this process, zombies included."""
    children = []
    for stat_path in Path("/proc").glob("[0-9]*/stat"):
        try:
            stat = stat_path.read_text()
        except OSError:
            continue
        command = stat[stat.index("(") + 1 : stat.rindex(")")]
        state, parent = stat[stat.rindex(")") + 2 :].split()[:2]
        if int(parent) == os.getpid() and command.startswith("espeak"):
            children.append((int(stat_path.parent.name), state))
    return children


async def wait_for_espeak_child() -> None:
    """Poll until an espeak-ng child runs, so a test can act while it is busy."""
    for _ in range(500):
        if espeak_children():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("no espeak-ng child process started")


def samples_of(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def test_check_passes_with_default_voices() -> None:
    """check() accepts the installed espeak-ng and its default zh, yue and en voices."""
    EspeakSynthesizer().check()


def test_check_rejects_missing_voice() -> None:
    """A voice espeak-ng lacks raises ConfigError naming the voice and the install fix."""
    synthesizer = EspeakSynthesizer(voices={"zh": "cmn-latn-pinyin", "yue": "no-such-voice"})
    with pytest.raises(ConfigError) as raised:
        synthesizer.check()
    assert "'no-such-voice'" in str(raised.value)
    assert "apt-get install espeak-ng" in str(raised.value)


def test_check_rejects_missing_executable() -> None:
    """A missing espeak-ng program raises ConfigError with the install fix."""
    synthesizer = EspeakSynthesizer(executable="/nonexistent/espeak-ng")
    with pytest.raises(ConfigError, match="apt-get install espeak-ng"):
        synthesizer.check()


def test_constructor_rejects_bad_settings() -> None:
    """Invalid settings raise ConfigError naming the value."""
    with pytest.raises(ConfigError, match="4000"):
        EspeakSynthesizer(sample_rate=4000)
    with pytest.raises(ConfigError, match="max_concurrent"):
        EspeakSynthesizer(max_concurrent=0)
    with pytest.raises(ConfigError, match="rate_wpm"):
        EspeakSynthesizer(rate_wpm=10)


@pytest.mark.parametrize("language", ["zh", "yue"])
@pytest.mark.parametrize("sample_rate", [8000, 16000])
async def test_synthesize_gives_speech(language: str, sample_rate: int) -> None:
    """A greeting gives non-silent 16-bit PCM of plausible length at the requested rate."""
    synthesizer = EspeakSynthesizer(sample_rate=sample_rate)
    pcm = await synthesizer.synthesize(GREETING[language], language)

    assert len(pcm) % 2 == 0
    samples = samples_of(pcm)
    duration_s = samples.size / sample_rate
    # About 22 syllables at 165 words per minute: espeak-ng takes 3-5 s for this greeting.
    assert 1.5 < duration_s < 10.0, duration_s
    rms = float(np.sqrt(np.mean(samples**2)))
    assert rms > 0.02, rms

    keep_samples = int(0.05 * sample_rate)
    loud = np.flatnonzero(np.abs(samples) > 0.01)
    assert loud[0] <= keep_samples + 1
    assert samples.size - 1 - loud[-1] <= keep_samples + 1


async def test_rates_give_same_duration() -> None:
    """8000 Hz and 16000 Hz output of one text last the same time."""
    narrowband = await EspeakSynthesizer(sample_rate=8000).synthesize(GREETING["zh"], "zh")
    wideband = await EspeakSynthesizer(sample_rate=16000).synthesize(GREETING["zh"], "zh")
    assert abs(len(narrowband) / 2 / 8000 - len(wideband) / 2 / 16000) < 0.01


async def test_numbers_are_normalised_before_synthesis() -> None:
    """Card digits are spoken one by one, which takes longer than one short quantity."""
    synthesizer = EspeakSynthesizer()
    digits = await synthesizer.synthesize("尾号6288", "zh")
    quantity = await synthesizer.synthesize("共6288", "zh")
    assert len(digits) > 0
    assert len(quantity) > 0
    # 尾号六二八八 is six syllables and 共六千二百八十八 is eight.
    assert len(digits) < len(quantity)


async def test_english_voice() -> None:
    """English text goes to the en voice without Chinese normalisation."""
    pcm = await EspeakSynthesizer().synthesize("Your card ending 6288 is active.", "en")
    assert len(pcm) / 2 / 16000 > 1.0


@pytest.mark.parametrize("text", ["", "   ", "。！？", "😀"])
async def test_empty_text_gives_empty_audio(text: str) -> None:
    """Text with nothing to speak gives b"" without starting espeak-ng."""
    assert await EspeakSynthesizer().synthesize(text, "zh") == b""


async def test_unknown_language_raises() -> None:
    """A language without a voice raises ConfigError naming it."""
    with pytest.raises(ConfigError, match="'fr'"):
        await EspeakSynthesizer().synthesize("Bonjour", "fr")


async def test_failing_voice_raises_upstream_error() -> None:
    """espeak-ng exiting with an error raises UpstreamError with its exit code."""
    synthesizer = EspeakSynthesizer(voices={"zh": "nosuchvoice"})
    with pytest.raises(UpstreamError, match="exit code"):
        await synthesizer.synthesize("您好", "zh")
    assert espeak_children() == []


async def test_cancel_kills_process() -> None:
    """Cancelling a synthesis kills espeak-ng and reaps it, leaving no zombie."""
    synthesizer = EspeakSynthesizer()
    task = asyncio.create_task(synthesizer.synthesize(LONG_TEXT, "zh"))
    await wait_for_espeak_child()

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert espeak_children() == []


async def test_timeout_kills_process() -> None:
    """A synthesis over timeout_s raises UpstreamError and leaves no process behind."""
    synthesizer = EspeakSynthesizer(timeout_s=0.01)
    with pytest.raises(UpstreamError, match="timed out"):
        await synthesizer.synthesize(LONG_TEXT, "zh")
    assert espeak_children() == []


async def test_concurrency_is_bounded() -> None:
    """No more than max_concurrent espeak-ng processes run at a time."""
    synthesizer = EspeakSynthesizer(max_concurrent=2)
    tasks = [asyncio.create_task(synthesizer.synthesize(LONG_TEXT[:1200], "zh")) for _ in range(5)]
    peak = 0
    while not all(task.done() for task in tasks):
        running = [pid for pid, state in espeak_children() if state != "Z"]
        peak = max(peak, len(running))
        await asyncio.sleep(0.002)
    for task in tasks:
        assert len(task.result()) > 0
    assert 1 <= peak <= 2


async def test_stream_yields_sentences_in_order() -> None:
    """stream() yields each sentence with its own audio, in text order."""
    synthesizer = EspeakSynthesizer()
    text = "您好！您的账单金额为¥1,234.50。请于3月5日前还款。谢谢。"
    pieces = [piece async for piece in synthesizer.stream(text, "zh")]

    assert [sentence for sentence, _ in pieces] == ["您好！", "您的账单金额为¥1,234.50。", "请于3月5日前还款。", "谢谢。"]
    for _, pcm in pieces:
        assert len(pcm) > 0


async def test_stream_close_early_leaves_no_process() -> None:
    """Closing stream() after the first sentence cancels the look-ahead synthesis."""
    synthesizer = EspeakSynthesizer()
    text = "您好。" + LONG_TEXT
    stream = synthesizer.stream(text, "zh")
    sentence, pcm = await anext(stream)
    assert sentence == "您好。"
    assert len(pcm) > 0

    await stream.aclose()
    assert espeak_children() == []
