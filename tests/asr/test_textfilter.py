"""Tests of the Whisper transcript filters."""

from __future__ import annotations

import pytest

from voicebot.asr.textfilter import (
    collapse_repetitions,
    echoes_word_list,
    join_cjk_spaces,
    strip_hallucinations,
    to_simplified,
)

HALLUCINATION_CASES = [
    # (Whisper output, expected text)
    ("字幕由Amara.org社区提供", ""),
    ("我想查账单。字幕由Amara.org社区提供", "我想查账单"),
    ("请不吝点赞 订阅 转发 打赏支持明镜与点点栏目", ""),
    ("字幕志愿者 李宗盛", ""),
    ("谢谢观看", ""),
    ("感谢观看！", ""),
    ("我想查账单 谢谢观看！", "我想查账单"),
    ("订阅我的频道", ""),
    ("Thanks for watching!", ""),
    ("我的卡丢了。Subscribe", "我的卡丢了"),
    ("第一行\n谢谢观看", "第一行"),
    ("信用卡年费是多少?拜拜", "信用卡年费是多少?"),
    ("信用卡年费是多少？ 拜拜。", "信用卡年费是多少？"),
    ("我想查账单拜拜", "我想查账单"),
    ("我要挂失。Bye-bye.", "我要挂失。"),
    ("好的，谢谢，拜拜", "好的，谢谢，拜拜"),
    ("拜拜", "拜拜"),
    ("我要转人工我要转人工我要转人工我要转人工", "我要转人工"),
    ("谢谢你，谢谢你，谢谢你", "谢谢你"),
    ("忽然从光线转出一只大猫忽然从光线转出一只大猫忽然从光线", "忽然从光线转出一只大猫"),
    ("后四位是六六六六", "后四位是六六六六"),
    ("卡号8888 8888 8888", "卡号8888 8888 8888"),
    ("对对对", "对对对"),
    ("我要转人工我要转人工", "我要转人工我要转人工"),
    ("信用卡年费是多少？", "信用卡年费是多少？"),
]


@pytest.mark.parametrize(("raw", "expected"), HALLUCINATION_CASES)
def test_strip_hallucinations_table(raw: str, expected: str) -> None:
    """Each known hallucination is dropped and real speech is kept."""
    assert strip_hallucinations(raw) == expected


def test_to_simplified_converts_traditional() -> None:
    """Traditional characters become Simplified, and Simplified text is unchanged."""
    assert to_simplified("對，沒錯。帳單") == "对，没错。帐单"
    assert to_simplified("我想查账单") == "我想查账单"
    assert to_simplified("") == ""


def test_collapse_keeps_two_repeats() -> None:
    """Two repeats are normal speech and stay, three collapse to one."""
    assert collapse_repetitions("好的好的") == "好的好的"
    assert collapse_repetitions("好的好的好的") == "好的"


def test_join_cjk_spaces_keeps_latin_spaces() -> None:
    """Spaces between Chinese characters go, spaces next to Latin words or digits stay."""
    assert join_cjk_spaces("我 想 查一下 信用卡") == "我想查一下信用卡"
    assert join_cjk_spaces("转账 5 万") == "转账 5 万"
    assert join_cjk_spaces("my card 丢了") == "my card 丢了"


def test_echoes_word_list_needs_a_run() -> None:
    """Three listed words in a row count as an echo, scattered ones do not."""
    hotwords = "信用卡 年费 账单 还款"
    assert echoes_word_list("信用卡 年费 账单", hotwords)
    assert not echoes_word_list("信用卡年费是多少", hotwords)
    assert not echoes_word_list("信用卡 多少 年费 账单", hotwords)
