"""Normalisation of ASR transcripts before FAQ matching."""

from __future__ import annotations

import pytest

from voicebot.responder.asr_fixes import collapse_repetitions, normalize_transcript, to_syllables

FIXED = (
    ("我的心卡怎么激活?", "我的新卡怎么激活"),
    ("积分 可以对换什么力品", "积分可以兑换什么礼品"),
    ("我想提高系用额度了。", "我想提高信用额度了"),
    ("一切还款会有什么影响", "逾期还款会有什么影响"),
    ("我要转员工", "我要转人工"),
    ("我要挂事", "我要挂失"),
    ("是不是被倒刷了", "是不是被盗刷了"),
    ("查一下张单", "查一下账单"),
    ("信用卡帐单", "信用卡账单"),
    ("信用卡帳單", "信用卡账单"),
)

UNCHANGED = (
    "没关系用卡吧",
    "我的爱心卡",
    "我想查一下这个月的信用卡账单",
    "我要给我儿子转账5万块钱",
)


@pytest.mark.parametrize(("transcript", "expected"), FIXED)
def test_confusion_fixed(transcript, expected):
    """A known ASR confusion, spaces and punctuation are normalised away."""
    assert normalize_transcript(transcript) == expected


@pytest.mark.parametrize("text", UNCHANGED)
def test_correct_text_unchanged(text):
    """Text without a known confusion keeps every character, even near a pattern."""
    assert normalize_transcript(text) == text


def test_repetition_loop_collapsed():
    """A phrase that Whisper repeated three times is kept once."""
    assert collapse_repetitions("年费账单还款账单还款账单还款费") == "年费账单还款费"


def test_two_repeats_kept():
    """A phrase said twice, as callers do, is not collapsed."""
    assert collapse_repetitions("喂喂你好") == "喂喂你好"
    assert collapse_repetitions("还款还款") == "还款还款"


SOUND_ALIKES = (
    ("手续费", "手细费"),  # xu/xi: ü merged with i
    ("逾期", "遗迄"),  # yu qi/yi qi
    ("信用卡", "新用卡"),  # same syllables, other tone
    ("影响", "引响"),  # ying/yin
    ("是多少", "四多少"),  # shi/si
    ("年费", "连费"),  # nian/lian
    ("账单", "脏单"),  # zhang/zang
)


@pytest.mark.parametrize(("right", "heard"), SOUND_ALIKES)
def test_sound_alikes_same_syllables(right, heard):
    """A sound-alike that Southern accents or 8 kHz Whisper produce gives the same fuzzy syllables."""
    assert to_syllables(heard) == to_syllables(right)


def test_plain_syllables_keep_distinctions():
    """Without fuzzy merges, 手续费 and 手细费 differ, and tones are dropped."""
    assert to_syllables("手续费", fuzzy=False) == ["shou", "xu", "fei"]
    assert to_syllables("手细费", fuzzy=False) == ["shou", "xi", "fei"]


def test_syllables_keep_other_runs():
    """A run of letters or digits stays one token between the syllables."""
    assert to_syllables("atm取现5万") == ["atm", "qi", "xian", "5", "uan"]


def test_polyphone_read_in_word():
    """A polyphonic character takes the reading of its word: 行 is hang in 银行, xing in 行不行."""
    assert to_syllables("银行", fuzzy=False) == ["yin", "hang"]
    assert to_syllables("行不行", fuzzy=False) == ["xing", "bu", "xing"]
