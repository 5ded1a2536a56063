"""Tests of sentence splitting for streamed synthesis."""

from __future__ import annotations

import pytest

from voicebot.tts.sentences import split_sentences


def test_split_at_sentence_ends() -> None:
    """Text splits after 。！？； and their ASCII forms, keeping the punctuation."""
    assert split_sentences("您好！请问有什么可以帮您？好的；谢谢。") == ["您好！", "请问有什么可以帮您？", "好的；", "谢谢。"]
    assert split_sentences("Hi! OK? Yes; bye") == ["Hi!", "OK?", "Yes;", "bye"]


def test_split_at_newlines() -> None:
    """A newline ends a sentence even without punctuation."""
    assert split_sentences("第一行\n第二行\n\n第三行") == ["第一行", "第二行", "第三行"]


def test_closing_quote_stays_with_sentence() -> None:
    """A closing quote or bracket after 。 stays with its sentence."""
    assert split_sentences("他说：“您好。”然后挂断。") == ["他说：“您好。”", "然后挂断。"]


def test_long_sentence_splits_at_commas() -> None:
    """A sentence over max_chars splits at ，、 into pieces of at most max_chars."""
    text = "您的信用卡年费为两百元，刷卡满六次可免次年年费，如有疑问请拨打客服热线，我们将竭诚为您服务。"
    pieces = split_sentences(text, max_chars=25)
    assert "".join(pieces) == text
    assert len(pieces) > 1
    for piece in pieces:
        assert len(piece) <= 25, piece
    assert pieces[0].endswith("，")


def test_short_sentence_keeps_commas() -> None:
    """A sentence within max_chars is not split at its commas."""
    assert split_sentences("您好，请讲。", max_chars=40) == ["您好，请讲。"]


def test_number_not_split_at_thousands_comma() -> None:
    """An ASCII comma between digits is a thousands separator, not a break."""
    pieces = split_sentences("本期账单金额为1,234,567.89元，请按时还款，谢谢您的配合与支持。", max_chars=12)
    assert any("1,234,567.89元" in piece for piece in pieces), pieces


def test_hard_cut_avoids_numbers() -> None:
    """A clause with no comma is cut at max_chars, but never inside a digit run."""
    text = "请您在收到短信后拨打客服热线4008208888进行激活操作"
    pieces = split_sentences(text, max_chars=16)
    assert "".join(pieces) == text
    assert any("4008208888" in piece for piece in pieces), pieces


def test_unbreakable_number_stays_whole() -> None:
    """A digit run longer than max_chars stays one piece."""
    assert split_sentences("62220212345678901234", max_chars=8) == ["62220212345678901234"]


def test_colon_is_no_break() -> None:
    """A label and its number stay together so the number is read digit by digit."""
    pieces = split_sentences("为了核实您的身份信息，请确认您的卡号尾号：6288是否正确", max_chars=20)
    assert any("尾号：6288" in piece for piece in pieces), pieces


def test_empty_and_punctuation_only() -> None:
    """Empty text and text of only punctuation give no pieces."""
    assert split_sentences("") == []
    assert split_sentences("。！？\n  \n") == []


def test_rejects_bad_max_chars() -> None:
    """max_chars below 1 raises ValueError that names the value."""
    with pytest.raises(ValueError, match="0"):
        split_sentences("您好", max_chars=0)
