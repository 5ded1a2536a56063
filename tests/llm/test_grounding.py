"""Grounding guard: numbers and promises of an answer must come from the approved passages."""

from decimal import Decimal

import pytest

from voicebot.llm.grounding import GroundingGuard, check_grounding, extract_quantities, parse_chinese_number

# Passages in the style of dialogs/faq.yaml: numbers written as Chinese numerals.
ANNUAL_FEE = "普卡年费每年一百元，金卡每年三百元，首年免年费。一个年度内刷卡消费满六次，就可以免掉下一年的年费。"
MIN_PAYMENT = (
    "最低还款额是本期消费金额的百分之十，加上全部费用、利息和当期分期款。"
    "没还的部分要从记账日起按日利率万分之五计算利息。"
)
INSTALMENT = "账单分期按期收取手续费：三期每期百分之零点七五，六期和十二期每期百分之零点六五，二十四期每期百分之零点六。"
GRACE = "到期还款日后有三天宽限期，宽限期内还清不算逾期。超过宽限期要收最低还款额未还部分百分之五的违约金。"
INTEREST_FREE = "消费的免息期是二十天到五十天，账单日后第一天消费的免息期最长。"
CASH = "信用卡取现每笔收百分之一的手续费，最低十元。取现额度是信用额度的一半。"
FOREIGN = "境外外币消费收取交易金额百分之一点五的货币转换费。"
TRANSFER = "跨行转账可能要一到两个工作日到账，请提前还款。"
BILL_DATE = "到期还款日是账单日后第二十天。每年可以申请修改一次账单日。"
AUTOPAY = "到期还款日当天自动扣款。请保证储蓄卡余额足够。"
DATED = "新费率从2025年3月1日起执行，客服热线服务时间为早上九点到晚上九点。"
LIMIT = "临时额度有效期最长九十天，固定额度最高五万元。"
SUPPLEMENTARY = "主卡持卡人可以为年满十四岁的家人申请附属卡。"
ALL_PASSAGES = (
    ANNUAL_FEE, MIN_PAYMENT, INSTALMENT, GRACE, INTEREST_FREE, CASH, FOREIGN, TRANSFER, BILL_DATE, AUTOPAY,
    DATED, LIMIT, SUPPLEMENTARY,
)

# (case id, passage, answer, expected grounded)
GROUNDING_CASES = [
    # Grounded: the same numbers, as written or reworded.
    ("same_text", ANNUAL_FEE, "普卡年费每年一百元，金卡每年三百元。", True),
    ("arabic_for_chinese", ANNUAL_FEE, "普卡年费每年100元。", True),
    ("kuai_for_yuan", ANNUAL_FEE, "普卡年费一百块。", True),
    ("kuai_qian", ANNUAL_FEE, "金卡年费三百块钱。", True),
    ("cantonese_man", ANNUAL_FEE, "普卡年费一百蚊，金卡三百蚊。", True),
    ("count_times", ANNUAL_FEE, "一年内刷卡满6次就免下一年年费。", True),
    ("percent_sign", MIN_PAYMENT, "最低还款额是消费金额的10%。", True),
    ("fullwidth_percent", MIN_PAYMENT, "最低还款额是消费金额的10％。", True),
    ("wanfen_as_percent", MIN_PAYMENT, "日利率是0.05%。", True),
    ("wanfen_same", MIN_PAYMENT, "日利率万分之五。", True),
    ("decimal_percent", INSTALMENT, "三期每期0.75%的手续费。", True),
    ("chinese_decimal_percent", INSTALMENT, "十二期每期百分之零点六五。", True),
    ("period_count", INSTALMENT, "可以分24期。", True),
    ("grace_days", GRACE, "还款日后有3天宽限期。", True),
    ("range_days", INTEREST_FREE, "免息期是20天到50天。", True),
    ("range_shared_unit", TRANSFER, "跨行转账要1到2个工作日。", True),
    ("min_fee_yuan", CASH, "取现手续费百分之一，最低10元。", True),
    ("one_point_five", FOREIGN, "货币转换费是1.5%。", True),
    ("ordinal_day", BILL_DATE, "到期还款日是账单日后第20天。", True),
    ("ordinal_vs_plain", BILL_DATE, "账单日后二十天内还款。", True),
    ("date_parts", DATED, "新费率2025年3月1日开始。", True),
    ("clock_times", DATED, "热线服务时间是9点到21点。", True),
    ("clock_colon", DATED, "服务时间是早上9:00到晚上9:00。", True),
    ("wan_amount", LIMIT, "固定额度最高50000元。", True),
    ("wan_arabic_multiplier", LIMIT, "固定额度最高5万元。", True),
    ("age", SUPPLEMENTARY, "附属卡要年满14岁。", True),
    ("no_numbers", ANNUAL_FEE, "您可以在手机银行查看。", True),
    ("filler_one", ANNUAL_FEE, "这一张卡每年一百元。", True),
    ("fixed_words", ANNUAL_FEE, "请稍等一下，一般来说普卡年费一百元。", True),
    ("negated_promise", ANNUAL_FEE, "不一定会免年费，要看刷卡次数。", True),
    ("promise_in_passage", AUTOPAY, "请保证储蓄卡余额足够。", True),
    ("bare_number_found", LIMIT, "额度最高五万。", True),
    # Ungrounded: a number or a unit that no passage states.
    ("invented_fee", ANNUAL_FEE, "普卡年费每年二百元。", False),
    ("invented_arabic_fee", ANNUAL_FEE, "普卡年费每年200元。", False),
    ("unit_changed", ANNUAL_FEE, "刷卡满六天就免年费。", False),
    ("invented_percent", MIN_PAYMENT, "最低还款额是消费金额的5%。", False),
    ("wanfen_vs_qianfen", MIN_PAYMENT, "日利率千分之五。", False),
    ("percent_not_wanfen", MIN_PAYMENT, "日利率百分之五。", False),
    ("invented_decimal_percent", INSTALMENT, "三期每期百分之零点八。", False),
    ("invented_days", GRACE, "还款日后有五天宽限期。", False),
    ("invented_range_end", INTEREST_FREE, "免息期最长五十六天。", False),
    ("invented_workdays", TRANSFER, "跨行转账要三个工作日。", False),
    ("invented_hotline", ANNUAL_FEE, "请拨打95555咨询年费。", False),
    ("invented_date", DATED, "新费率从2025年4月1日起执行。", False),
    ("invented_day_of_month", BILL_DATE, "每月五号是还款日。", False),
    ("invented_clock", DATED, "服务时间到晚上十点。", False),
    ("invented_amount_wan", LIMIT, "固定额度最高十万元。", False),
    ("invented_month_duration", LIMIT, "临时额度有效期三个月。", False),
    ("two_thousand", LIMIT, "临时额度两千元。", False),
    ("liang_qian_wu", ANNUAL_FEE, "年费两千五。", False),
    ("yi_amount", LIMIT, "额度最高一亿。", False),
    ("half_year", LIMIT, "临时额度有效期半年。", False),
    ("cheng_percent", CASH, "取现额度是信用额度的五成。", False),
    ("promise_guarantee", ANNUAL_FEE, "我保证您不用交年费。", False),
    ("promise_yiding_mian", ANNUAL_FEE, "金卡一定免年费。", False),
    ("promise_kending", GRACE, "肯定不会影响征信。", False),
    ("promise_cantonese", GRACE, "实唔会影响你嘅信贷记录。", False),
    ("promise_absolute", CASH, "取现绝对没有手续费。", False),
]


@pytest.mark.parametrize(
    ("passage", "answer", "expected"),
    [case[1:] for case in GROUNDING_CASES],
    ids=[case[0] for case in GROUNDING_CASES],
)
def test_grounding_table(passage: str, answer: str, expected: bool) -> None:
    """Each answer is accepted exactly when its numbers and promises are in the passage."""
    result = check_grounding(answer, [passage])
    assert result.grounded is expected, result.violations


def test_grounding_case_count() -> None:
    """The table keeps at least 40 cases."""
    assert len(GROUNDING_CASES) >= 40


@pytest.mark.parametrize(
    ("numeral", "value"),
    [
        ("一百", "100"), ("一百二十", "120"), ("一百二", "120"), ("一百零五", "105"), ("两千", "2000"),
        ("两千五", "2500"), ("三万五", "35000"), ("十五", "15"), ("二十", "20"), ("一万零二百", "10200"),
        ("五千万", "50000000"), ("一亿二千万", "120000000"), ("零点五", "0.5"), ("一点五", "1.5"),
        ("二〇二四", "2024"), ("壹佰", "100"), ("十", "10"),
    ],
)
def test_parse_chinese_number(numeral: str, value: str) -> None:
    """Chinese numerals, including colloquial and formal forms, parse to their values."""
    assert parse_chinese_number(numeral) == Decimal(value)


@pytest.mark.parametrize(
    ("text", "value", "unit"),
    [
        ("一百元", "100", "CNY"), ("100块", "100", "CNY"), ("¥100", "100", "CNY"), ("五十美元", "50", "USD"),
        ("百分之零点五", "0.5", "%"), ("0.5%", "0.5", "%"), ("千分之五", "0.5", "%"), ("万分之五", "0.05", "%"),
        ("十分之一", "10", "%"), ("三个百分点", "3", "%"),
        ("五十天", "50", "day"), ("第3天", "3", "day"), ("七个工作日", "7", "workday"), ("六个月", "6", "month"),
        ("三年", "3", "year"), ("2024年", "2024", "calendar_year"), ("每月五号", "5", "day_of_month"),
        ("每月5日", "5", "day_of_month"), ("24小时", "24", "hour"), ("三十分钟", "30", "minute"),
        ("下午三点", "15", "clock"), ("九点半", "9.5", "clock"), ("1.5万", "15000", ""), ("两千", "2000", ""),
        ("五毛", "0.5", "CNY"), ("十二期", "12", "count:期"),
    ],
)
def test_extract_quantity_units(text: str, value: str, unit: str) -> None:
    """Each written form normalises to one value and unit."""
    quantities = extract_quantities(text)
    assert len(quantities) == 1, quantities
    assert quantities[0].value == Decimal(value)
    assert quantities[0].unit == unit


def test_extract_date_parts() -> None:
    """A full date yields its year, month and day."""
    quantities = extract_quantities("2025年3月1日")
    assert [(q.value, q.unit) for q in quantities] == [
        (Decimal(2025), "calendar_year"), (Decimal(3), "month_of_year"), (Decimal(1), "day_of_month"),
    ]


def test_guard_reports_every_violation() -> None:
    """An answer with two invented numbers and a promise gets three violations naming them."""
    guard = GroundingGuard(ALL_PASSAGES)
    result = guard.check("年费二百元，宽限期七天，绝对不收利息。")
    kinds = sorted(v.kind for v in result.violations)
    assert kinds == ["forbidden_phrase", "ungrounded_quantity", "ungrounded_quantity"]
    texts = {v.text for v in result.violations}
    assert "二百元" in texts
    assert "七天" in texts


def test_guard_over_many_passages() -> None:
    """Numbers from different passages are all accepted by one guard."""
    guard = GroundingGuard(ALL_PASSAGES)
    result = guard.check("普卡年费100元，取现最低10元，货币转换费1.5%。")
    assert result.grounded, result.violations
    assert len(result.quantities) == 3


def test_guard_custom_forbidden_phrases() -> None:
    """A custom phrase list replaces the default guarantees."""
    guard = GroundingGuard([ANNUAL_FEE], forbidden_phrases=("免息",))
    assert not guard.check("这个是免息的。").grounded
    assert guard.check("我保证。").grounded
