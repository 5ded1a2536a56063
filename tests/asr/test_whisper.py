"""Tests of WhisperTranscriber with the real embedded Whisper base model."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile

from voicebot.asr.whisper import WhisperTranscriber
from voicebot.errors import ConfigError, ModelError, OverloadedError

from .speech import read_manifest, read_wav_16k, read_wav_telephone

# (file under callers/, words of which at least one must be in the transcript)
CALLER_CASES = [
    ("faq_annual_fee.wav", ("年费",)),
    ("flow_lost_card.wav", ("挂失", "丢")),
    ("fraud_location_mismatch.wav", ("上海",)),
    ("emotion_distressed.wav", ("着急", "房租")),
    ("money_card_to_savings.wav", ("信用卡",)),
]


@pytest.fixture(scope="module")
def transcriber() -> Iterator[WhisperTranscriber]:
    """One loaded transcriber for the whole module, because loading takes seconds."""
    instance = WhisperTranscriber(max_concurrent=1, max_queued=1)
    instance.load()
    yield instance
    instance.close()


def _pcm(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


@pytest.mark.parametrize(
    ("settings", "named_value"),
    [
        ({"languages": ("zh", "fr")}, "'fr'"),
        ({"languages": ()}, "()"),
        ({"default_language": "en", "languages": ("zh",)}, "'en'"),
        ({"device": "tpu"}, "'tpu'"),
        ({"compute_type": "int4"}, "'int4'"),
        ({"cpu_threads": -1}, "-1"),
        ({"max_concurrent": 0}, "0"),
        ({"max_queued": -1}, "-1"),
        ({"model": " "}, "' '"),
        ({"silence_threshold_dbfs": 3.0}, "3.0"),
        ({"no_speech_threshold": 0.0}, "0.0"),
    ],
)
def test_invalid_settings_raise_config_error(settings: dict[str, object], named_value: str) -> None:
    """Each invalid setting raises ConfigError naming the value."""
    with pytest.raises(ConfigError) as error:
        WhisperTranscriber(**settings)  # type: ignore[arg-type]

    assert named_value in str(error.value)


async def test_transcribe_before_load_raises() -> None:
    """Calling transcribe before load raises ModelError saying to call load()."""
    with pytest.raises(ModelError, match="load"):
        await WhisperTranscriber().transcribe(b"\x00\x00" * 1600)


@pytest.mark.slow
@pytest.mark.parametrize(("file_name", "expected_words"), CALLER_CASES)
async def test_caller_clip_on_phone_path(
    transcriber: WhisperTranscriber, speech_dir: Path, file_name: str, expected_words: tuple[str, ...]
) -> None:
    """A caller clip sent through 8 kHz mu-law comes back in Simplified with its key word."""
    transcript = await transcriber.transcribe(read_wav_telephone(speech_dir / "callers" / file_name), language="zh")

    assert transcript.dropped is None
    assert any(word in transcript.text for word in expected_words), transcript.text
    assert transcript.language == "zh"
    assert 0.0 < transcript.confidence <= 1.0
    assert transcript.duration_s > 1.0


@pytest.mark.slow
async def test_recorded_clip_16k_and_phone(transcriber: WhisperTranscriber, speech_dir: Path) -> None:
    """A real Mandarin recording is recognised on the 16 kHz and the 8 kHz path."""
    path = speech_dir / "recorded" / "funasr_asr_example_zh.wav"

    wideband = await transcriber.transcribe(read_wav_16k(path), language="zh")
    narrowband = await transcriber.transcribe(read_wav_telephone(path), language="zh")

    assert "欢迎大家" in wideband.text
    assert "达摩院" in wideband.text
    assert "欢迎大家" in narrowband.text


@pytest.mark.slow
async def test_detected_language_limited_to_configured(transcriber: WhisperTranscriber, speech_dir: Path) -> None:
    """Without a language, detection returns one of the configured languages."""
    pcm = read_wav_telephone(speech_dir / "callers" / "flow_address_change.wav")

    transcript = await transcriber.transcribe(pcm)

    assert transcript.language == "zh"
    assert "地址" in transcript.text


@pytest.mark.slow
async def test_cantonese_decoded_with_zh_token(transcriber: WhisperTranscriber, speech_dir: Path) -> None:
    """On a model without a yue token, a yue call is decoded as zh and reported as yue."""
    pcm = read_wav_16k(speech_dir / "recorded" / "wsyue_xg0011541_133580_136570_yue.wav")

    transcript = await transcriber.transcribe(pcm, language="yue")

    assert transcript.language == "yue"
    assert "香港" in transcript.text


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "level"),
    [("digital silence", 0.0), ("near silence", 0.0005), ("white noise", 0.1), ("loud white noise", 0.3)],
)
async def test_silence_and_noise_give_empty_text(transcriber: WhisperTranscriber, name: str, level: float) -> None:
    """Silence, near-silence and white noise return no text and a drop reason."""
    samples = np.random.default_rng(7).normal(0.0, level, 32_000) if level else np.zeros(32_000)

    transcript = await transcriber.transcribe(_pcm(samples), language="zh")

    assert transcript.text == "", name
    assert transcript.dropped in {"silence", "noise", "no_speech", "hallucination"}, name


@pytest.mark.slow
async def test_low_hum_gives_empty_text(transcriber: WhisperTranscriber) -> None:
    """A 50 Hz mains hum, loud but not flat, is dropped by Whisper's no-speech check."""
    samples = 0.1 * np.sin(2 * np.pi * 50 * np.arange(32_000) / 16_000)

    transcript = await transcriber.transcribe(_pcm(samples), language="zh")

    assert transcript.text == ""
    assert transcript.dropped is not None


@pytest.mark.slow
async def test_concurrent_calls_share_model(speech_dir: Path) -> None:
    """Several tasks transcribing at once all get their own transcript."""
    transcriber = WhisperTranscriber(max_concurrent=2, max_queued=4)
    transcriber.load()
    files = ["faq_annual_fee.wav", "flow_lost_card.wav", "human_request.wav", "confirm_yes.wav"]
    try:
        transcripts = await asyncio.gather(
            *(
                transcriber.transcribe(read_wav_telephone(speech_dir / "callers" / name), language="zh")
                for name in files
            )
        )
    finally:
        transcriber.close()

    assert "年费" in transcripts[0].text
    assert "丢" in transcripts[1].text or "挂失" in transcripts[1].text
    assert all(t.dropped is None for t in transcripts), [t.dropped for t in transcripts]


@pytest.mark.slow
async def test_full_queue_rejects_tentative_only(transcriber: WhisperTranscriber, speech_dir: Path) -> None:
    """With 1 running and 1 waiting, a tentative decode is rejected and a finished turn waits."""
    pcm = read_wav_telephone(speech_dir / "callers" / "confirm_yes.wav")

    finished_turns = [asyncio.create_task(transcriber.transcribe(pcm, language="zh")) for _ in range(3)]
    await asyncio.sleep(0)
    with pytest.raises(OverloadedError, match="tentative") as rejected:
        await transcriber.transcribe(pcm, language="zh", urgent=False)
    results = await asyncio.gather(*finished_turns)

    assert rejected.value.retryable
    assert all(result.text for result in results), results


@pytest.mark.slow
async def test_plain_path_transcribes(speech_dir: Path) -> None:
    """short_window=False decodes through WhisperModel.transcribe with the same result shape."""
    transcriber = WhisperTranscriber(short_window=False)
    transcriber.load()
    try:
        transcript = await transcriber.transcribe(
            read_wav_telephone(speech_dir / "callers" / "faq_annual_fee.wav"), language="zh"
        )
    finally:
        transcriber.close()

    assert "年费" in transcript.text
    assert transcript.dropped is None


@pytest.mark.slow
async def test_hotword_copy_stopped_and_redone(
    transcriber: WhisperTranscriber, speech_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """信用卡年费… makes Whisper base copy the hotword list. That decode stops early and is redone without them."""
    decodes: list[tuple[bool, str, bool]] = []
    generate_once = WhisperTranscriber._generate_once

    def recording(self: WhisperTranscriber, *args: object, use_hotwords: bool) -> object:
        decoded = generate_once(self, *args, use_hotwords=use_hotwords)  # type: ignore[arg-type]
        decodes.append((use_hotwords, decoded.text, decoded.hit_token_limit))
        return decoded

    monkeypatch.setattr(WhisperTranscriber, "_generate_once", recording)
    transcript = await transcriber.transcribe(
        read_wav_telephone(speech_dir / "callers" / "faq_annual_fee.wav"), language="zh"
    )

    assert [used for used, _, _ in decodes] == [True, False], decodes
    _, copied, stopped = decodes[0]
    assert copied.startswith("信用卡 年费 账单"), copied
    assert stopped, decodes[0]
    assert transcriber._token_limit(4.0, 60, with_hotwords=True) < transcriber._token_limit(4.0, 60)
    assert "年费是多少" in transcript.text, transcript.text
    assert "免年费" in transcript.text, transcript.text



@pytest.mark.slow
@pytest.mark.parametrize("folder", ["callers", "recorded"])
def test_reference_transcripts_fit_hotword_limit(transcriber: WhisperTranscriber, speech_dir: Path, folder: str) -> None:
    """Every reference transcript of the shared clips fits under the token limit of the hotword decode."""
    tokenizer = transcriber._tokenizer("zh")

    for name, row in read_manifest(speech_dir / folder).items():
        reference = (row.get("text") or row["transcript_stated_by_repo"]).split(" (")[0]
        duration_s = soundfile.info(str(speech_dir / folder / name)).duration
        tokens = len(tokenizer.encode(reference))
        assert tokens < transcriber._token_limit(duration_s, 60, with_hotwords=True), (name, tokens, duration_s)
