"""Tests of the Chinese text normaliser that runs before espeak-ng."""

from __future__ import annotations

import pytest

from voicebot.tts.normalize import (
    normalize_for_speech,
    read_digits,
    read_integer,
    read_money,
    read_number,
)

INTEGERS = [
    (0, "零"),
    (1, "一"),
    (2, "二"),
    (10, "十"),
    (11, "十一"),
    (12, "十二"),
    (20, "二十"),
    (22, "二十二"),
    (100, "一百"),
    (101, "一百零一"),
    (110, "一百一十"),
    (111, "一百一十一"),
    (200, "两百"),
    (1000, "一千"),
    (1001, "一千零一"),
    (1010, "一千零一十"),
    (1200, "一千二百"),
    (2000, "两千"),
    (2002, "两千零二"),
    (10000, "一万"),
    (10010, "一万零一十"),
    (20000, "两万"),
    (100000, "十万"),
    (120000, "十二万"),
    (1010101, "一百零一万零一百零一"),
    (100000000, "一亿"),
    (100000001, "一亿零一"),
    (100001000, "一亿零一千"),
    (200000000, "两亿"),
]


@pytest.mark.parametrize(("value", "expected"), INTEGERS)
def test_read_integer_table(value: int, expected: str) -> None:
    """Integers read with 十 for 10-19, one 零 per gap of zeros and 两 before 百千万亿."""
    assert read_integer(value) == expected


def test_read_integer_without_liang() -> None:
    """With liang=False a leading 2 stays 二 (百分之二百)."""
    assert read_integer(200, liang=False) == "二百"
    assert read_integer(2000, liang=False) == "二千"


def test_read_integer_rejects_negative() -> None:
    """A negative value raises ValueError that names the value."""
    with pytest.raises(ValueError, match="-5"):
        read_integer(-5)


def test_read_number_decimals() -> None:
    """Decimals read the fraction digit by digit, keeping trailing zeros."""
    assert read_number("0.5") == "零点五"
    assert read_number("0.05") == "零点零五"
    assert read_number("3.50") == "三点五零"
    assert read_number("12.25") == "十二点二五"
    assert read_number("2.5") == "二点五"


def test_read_digits_one_per_language() -> None:
    """Mandarin digit strings read 1 as 幺, Cantonese as 一."""
    assert read_digits("13800", "zh") == "幺三八零零"
    assert read_digits("13800", "yue") == "一三八零零"
    assert read_digits("6288", "zh") == "六二八八"


def test_read_money_table() -> None:
    """Amounts read with 元 角 分, 零 before a lone 分 and 两 for a lone 2."""
    assert read_money("1234.50") == "一千二百三十四元五角"
    assert read_money("1234.56") == "一千二百三十四元五角六分"
    assert read_money("1234.05") == "一千二百三十四元零五分"
    assert read_money("0.5") == "五角"
    assert read_money("0.05") == "五分"
    assert read_money("0") == "零元"
    assert read_money("2") == "两元"
    assert read_money("10.20") == "十元两角"
    assert read_money("100.00") == "一百元"
    assert read_money("0.125") == "零点一二五元"


# (input, Mandarin, Cantonese)
SENTENCES = [
    ("200元", "两百元", "两百元"),
    ("¥1,234.50", "一千二百三十四元五角", "一千二百三十四元五角"),
    ("￥88", "八十八元", "八十八元"),
    ("RMB 300", "三百元", "三百元"),
    ("支付RMB300的费用", "支付三百元的费用", "支付三百元的费用"),
    ("300 CNY", "三百元", "三百元"),
    ("年费2000元", "年费两千元", "年费两千元"),
    ("额度50000元", "额度五万元", "额度五万元"),
    ("2万元", "两万元", "两万元"),
    ("1.5万", "一点五万", "一点五万"),
    ("0.5%", "百分之零点五", "百分之零点五"),
    ("利率0.05%", "利率百分之零点零五", "利率百分之零点零五"),
    ("手续费为10%", "手续费为百分之十", "手续费为百分之十"),
    ("200%", "百分之二百", "百分之二百"),
    ("日息万分之5即0.5‰", "日息万分之五即千分之零点五", "日息万分之五即千分之零点五"),
    ("3月5日", "三月五日", "三月五日"),
    ("2月2日", "二月二日", "二月二日"),
    ("12月31号", "十二月三十一号", "十二月三十一号"),
    ("2026-12-04", "二零二六年十二月四日", "二零二六年十二月四日"),
    ("2026/3/5", "二零二六年三月五日", "二零二六年三月五日"),
    ("2026年3月5日", "二零二六年三月五日", "二零二六年三月五日"),
    ("1998年", "一九九八年", "一九九八年"),
    ("2026-12账单", "二零二六年十二月账单", "二零二六年十二月账单"),
    ("2000-12元", "两千至十二元", "两千至十二元"),
    ("14:30", "十四点三十分", "十四点三十分"),
    ("9:05", "九点零五分", "九点零五分"),
    ("2:00", "两点", "两点"),
    ("0:00", "零点", "零点"),
    ("服务时间9:00-21:00", "服务时间九点至二十一点", "服务时间九点至二十一点"),
    ("尾号6288", "尾号六二八八", "尾号六二八八"),
    ("尾號6288", "尾號六二八八", "尾號六二八八"),
    ("卡号后四位为1234", "卡号后四位为幺二三四", "卡号后四位为一二三四"),
    ("尾号****6288的卡", "尾号六二八八的卡", "尾号六二八八的卡"),
    ("卡号6222 0212 3456 7890", "卡号六二二二，零二幺二，三四五六，七八九零", "卡号六二二二，零二一二，三四五六，七八九零"),
    ("请拨打13812345678", "请拨打幺三八，幺二三四，五六七八", "请拨打一三八，一二三四，五六七八"),
    ("电话：400-820-8888", "电话：四零零，八二零，八八八八", "电话：四零零，八二零，八八八八"),
    ("客服热线95588", "客服热线九五五八八", "客服热线九五五八八"),
    ("账号123", "账号幺二三", "账号一二三"),
    ("编号10010", "编号幺零零幺零", "编号一零零一零"),
    ("电话费200元", "电话费两百元", "电话费两百元"),
    ("电话银行转账3次", "电话银行转账三次", "电话银行转账三次"),
    ("10000积分", "一万积分", "一万积分"),
    ("2张卡", "两张卡", "两张卡"),
    ("2个月", "两个月", "两个月"),
    ("第2期", "第二期", "第二期"),
    ("分12期", "分十二期", "分十二期"),
    ("2.5倍", "二点五倍", "二点五倍"),
    ("3-5个工作日", "三至五个工作日", "三至五个工作日"),
    ("3~5天", "三至五天", "三至五天"),
    ("10元/月", "十元每月", "十元每月"),
    ("请按#键", "请按井号键", "请按井号键"),
    ("按*号键返回", "按星号键返回", "按星号键返回"),
    ("【通知】您好😀！", "通知您好！", "通知您好！"),
    ("请下载APP查看", "请下载APP查看", "请下载APP查看"),
    ("VIP客户", "VIP客户", "VIP客户"),
    ("代码007", "代码零零七", "代码零零七"),
    ("１２３元", "一百二十三元", "一百二十三元"),
    ("没有数字。", "没有数字。", "没有数字。"),
    ("", "", ""),
]


@pytest.mark.parametrize(("text", "mandarin", "cantonese"), SENTENCES)
def test_normalize_table(text: str, mandarin: str, cantonese: str) -> None:
    """Each sentence normalises to the expected Mandarin and Cantonese reading."""
    assert normalize_for_speech(text, "zh") == mandarin
    assert normalize_for_speech(text, "yue") == cantonese


def test_normalize_leaves_no_ascii_digits() -> None:
    """A typical bot answer keeps no Arabic digit for espeak-ng to misread."""
    answer = (
        "您尾号6288的信用卡本期账单金额为¥3,456.78，最低还款额为345.68元，"
        "请于2026-05-20前还款，逾期将按日息0.05%计息。如有疑问请致电95588或400-820-8888。"
    )
    for language in ("zh", "yue"):
        spoken = normalize_for_speech(answer, language)
        assert not any(char.isdigit() and char.isascii() for char in spoken), spoken


def test_normalize_rejects_unknown_language() -> None:
    """An unsupported language raises ValueError that names it."""
    with pytest.raises(ValueError, match="'en'"):
        normalize_for_speech("200元", "en")
