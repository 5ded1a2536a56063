"""Recognition hints: context and an n-best grammar check for the answer a flow expects."""

from __future__ import annotations

from pathlib import Path

import pytest

from voicebot.asr.hints import ExpectedInput, hint_for, sample_answer
from voicebot.asr.whisper import WhisperTranscriber, _first_accepted
from voicebot.dialog.flows import SlotSpec
from voicebot.dialog.engine import _accepts

from .speech import read_wav_telephone

CARD_LAST4 = SlotSpec("card_last4", "digits", length=4, dtmf=True, min_confidence=0.6)
DIGITS = ExpectedInput("digits", lambda text: _accepts(CARD_LAST4, text), length=4)
QUESTION = "请告诉我丢失的那张卡卡号的后四位。"


def test_no_hint_without_expectation() -> None:
    assert hint_for(None, QUESTION) is None


def test_digit_hint_has_question_sample_and_digit_hotwords() -> None:
    hint = hint_for(DIGITS, QUESTION)
    assert hint is not None and hint.kind == "digits"
    assert hint.prompt is not None and hint.prompt.startswith(QUESTION)
    assert hint.prompt.endswith(sample_answer(DIGITS))
    assert hint.hotwords is not None and "六" in hint.hotwords
    assert hint.accept is not None


def test_yes_no_hint_has_no_sample_answer() -> None:
    hint = hint_for(ExpectedInput("yes_no", lambda text: True), "您说的卡号后四位是六二八八，对吗？")
    assert hint is not None and hint.prompt == "您说的卡号后四位是六二八八，对吗？"


def test_first_accepted_hypothesis_wins() -> None:
    texts = ["我的卡号后四位是六二 八 八 八", "我的卡号后四位是六二 八 八", "我的卡号后四位是六"]
    assert _first_accepted(texts, DIGITS.accepts) == 1
    assert _first_accepted(["宿泪"], DIGITS.accepts) == 0


def test_broken_check_keeps_the_best_hypothesis() -> None:
    def broken(text: str) -> bool:
        raise ValueError("bad grammar")

    assert _first_accepted(["a", "b"], broken) == 0


@pytest.fixture
def transcriber(whisper_base: WhisperTranscriber) -> WhisperTranscriber:
    return whisper_base


@pytest.mark.slow
def test_digit_hint_recovers_spoken_card_digits(transcriber: WhisperTranscriber, speech_dir: Path) -> None:
    """On the 8 kHz phone path Whisper base hears 我的卡号后四位是六二八八 as 我的卡后后塑微信用.

    With the hint, the card digits come out right wherever the turn's audio starts (VAD
    cuts vary by a few hundred milliseconds).
    """
    pcm = read_wav_telephone(speech_dir / "callers" / "slot_card_last4.wav")
    plain = transcriber.transcribe_blocking(pcm, language="zh")
    assert not DIGITS.accepts(plain.text)
    hint = hint_for(DIGITS, QUESTION)
    heard = []
    for cut_ms in (0, 50, 100, 150, 200):
        text = transcriber.transcribe_blocking(pcm[cut_ms * 32:], language="zh", hint=hint).text
        heard.append((text, _accepts(CARD_LAST4, text)))
    right = sum(1 for text, ok in heard if ok and "6288" in _digits(text))
    assert right >= 4, heard


def _digits(text: str) -> str:
    from voicebot.dialog.nlu import extract_digits

    value = extract_digits(text, length=4)
    return value.value if value is not None else ""


def test_echoed_sample_opening_is_dropped() -> None:
    from voicebot.asr.hints import strip_prompt_echo

    hint = hint_for(DIGITS, QUESTION)
    assert hint is not None
    assert strip_prompt_echo("好的，后四位是六二八八", hint) == "后四位是六二八八"
    assert strip_prompt_echo("我的卡号后四位是六二八八", hint) == "我的卡号后四位是六二八八"
    no_sample = hint_for(ExpectedInput("yes_no", lambda text: True), "对吗？")
    assert no_sample is not None
    assert strip_prompt_echo("好的", no_sample) == "好的"
