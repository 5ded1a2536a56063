"""Grounding guard: an LLM answer may state only the numbers and promises of its approved passages.

`GroundingGuard.check(answer)` extracts every quantity of the answer (fees, rates,
percentages, amounts, dates, day counts, time limits, counts), normalises each one to a value
and a unit, and reports a violation for each quantity that no passage contains. It also reports
guarantee phrases (保证, 一定免, 肯定不会, ...) that no passage contains.

Numbers are read in Arabic digits and in Chinese numerals, so 一百元, 100元 and 100块 are the
same quantity (100, CNY), and 百分之零点五, 千分之五 and 0.5% are all (0.5, %).

Matching rules:
- An answer quantity is grounded when a passage quantity has the same value and the same unit,
  or when either of the two has no unit. A bare number in the answer ("两千") therefore passes
  when any passage quantity has that value, and "100元" passes against a bare "一百".
- The ordinal 第 is not compared: 第二十天 and 二十天 are both (20, day).
- The caller's own words are no source. A caller who asks "年费是不是五十元" must not get the
  model's confirmation of an amount that no passage states.

Not counted as quantities: a lone 一 or 两 without a unit ("一张卡", "这一笔"), and fixed words
that contain numerals without stating an amount (一下, 一定, 十分, 千万, 万一, 统一, ...).

NOTE: The guard knows numbers, units and a fixed list of guarantee phrases. It cannot tell
whether a sentence without numbers states a rule that the passages do not contain, for example
a wrong channel or a wrong condition.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

# Chinese digits, including the formal forms used on cheques and contracts.
_CN_DIGITS = {
    "零": 0, "〇": 0, "一": 1, "壹": 1, "二": 2, "贰": 2, "两": 2, "三": 3, "叁": 3, "四": 4, "肆": 4,
    "五": 5, "伍": 5, "六": 6, "陆": 6, "七": 7, "柒": 7, "八": 8, "捌": 8, "九": 9, "玖": 9,
}
_CN_SMALL_UNITS = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000}
_CN_LARGE_UNITS = {"万": 10_000, "亿": 100_000_000}
_CN_NUMERAL_CHARS = "".join(_CN_DIGITS) + "".join(_CN_SMALL_UNITS) + "".join(_CN_LARGE_UNITS)
_CN_DIGIT_CHARS = "".join(_CN_DIGITS)

# Fixed words that contain numerals but state no quantity. Each is replaced by spaces of the
# same length before extraction, so offsets stay valid. A numeral right before the word keeps
# it (一千万 is ten million, 千万 alone means "by all means"), and so does a following 之, digit,
# 钟 or 半 (十分之一 is a fraction, 一点五 a decimal, 一点钟 a clock time).
_NON_QUANTITY_WORDS = (
    "一下", "一起", "一定", "一般", "一些", "一样", "一直", "一旦", "一切", "一致", "一律", "一并",
    "一方面", "一边", "一向", "一经", "一再", "一会儿", "一会", "一模一样", "一如既往", "一次性",
    "一点点", "一点儿", "有一点", "一点", "一共", "一系列", "一同", "一早", "一时", "一口气", "第一时间",
    "统一", "唯一", "逐一", "万一", "千万", "十分", "百分百", "万分", "一一", "一路",
    "一声", "一遍", "一趟", "一阵", "一刻", "三思", "四处", "一手", "同一", "单一", "一对一",
    "一揽子", "一应", "一概", "一味",
)
_NON_QUANTITY_PATTERN = re.compile(
    rf"(?<![{_CN_NUMERAL_CHARS}\d])(?:{'|'.join(sorted(map(re.escape, _NON_QUANTITY_WORDS), key=len, reverse=True))})(?![之钟半{_CN_DIGIT_CHARS}])"
)

# Units after a number, longest first. Values are (unit key, multiplier of the value).
_UNITS: tuple[tuple[str, str, Decimal], ...] = (
    ("个工作日", "workday", Decimal(1)), ("工作日", "workday", Decimal(1)),
    ("个自然日", "day", Decimal(1)), ("自然日", "day", Decimal(1)),
    ("个小时", "hour", Decimal(1)), ("小时", "hour", Decimal(1)), ("钟头", "hour", Decimal(1)),
    ("个钟", "hour", Decimal(1)),
    ("个星期", "week", Decimal(1)), ("星期", "week", Decimal(1)), ("个礼拜", "week", Decimal(1)),
    ("礼拜", "week", Decimal(1)), ("周", "week", Decimal(1)),
    ("个月", "month", Decimal(1)), ("个年度", "year", Decimal(1)), ("年度", "year", Decimal(1)),
    ("分钟", "minute", Decimal(1)), ("秒钟", "second", Decimal(1)), ("秒", "second", Decimal(1)),
    ("块钱", "CNY", Decimal(1)), ("块", "CNY", Decimal(1)), ("元", "CNY", Decimal(1)), ("圆", "CNY", Decimal(1)),
    ("蚊", "CNY", Decimal(1)), ("人民币", "CNY", Decimal(1)), ("毛钱", "CNY", Decimal("0.1")),
    ("毛", "CNY", Decimal("0.1")), ("角", "CNY", Decimal("0.1")),
    ("美元", "USD", Decimal(1)), ("美金", "USD", Decimal(1)),
    ("港元", "HKD", Decimal(1)), ("港币", "HKD", Decimal(1)), ("港纸", "HKD", Decimal(1)),
    ("个百分点", "%", Decimal(1)), ("%", "%", Decimal(1)), ("％", "%", Decimal(1)), ("成", "%", Decimal(10)),
    ("点钟", "clock", Decimal(1)), ("点半", "clock", Decimal("1")),  # 点半 adds 0.5 below
    ("天", "day", Decimal(1)), ("日", "day", Decimal(1)), ("号", "day_of_month", Decimal(1)),
    ("月", "month_of_year", Decimal(1)), ("年", "year", Decimal(1)),
    ("点", "clock", Decimal(1)), ("分", "minute", Decimal(1)),
    ("次", "count:次", Decimal(1)), ("笔", "count:笔", Decimal(1)), ("期", "count:期", Decimal(1)),
    ("张", "count:张", Decimal(1)), ("倍", "count:倍", Decimal(1)), ("岁", "count:岁", Decimal(1)),
    ("位", "count:位", Decimal(1)), ("个", "count:个", Decimal(1)), ("份", "count:份", Decimal(1)),
)
_UNIT_BY_TEXT = {text: (key, factor) for text, key, factor in _UNITS}
# Longest first, because the regex takes the first alternative that matches: 个月 before 个.
_UNIT_PATTERN = "|".join(re.escape(text) for text in sorted(_UNIT_BY_TEXT, key=len, reverse=True))

_ARABIC = r"\d+(?:,\d{3})*(?:\.\d+)?"
_CHINESE = rf"[{_CN_NUMERAL_CHARS}]+(?:点[{_CN_DIGIT_CHARS}]+)?"
_QUANTITY = re.compile(
    rf"(?P<ordinal>第)?"
    rf"(?:(?P<fraction>十分之|百分之|千分之|万分之)(?P<fraction_number>{_ARABIC}|{_CHINESE})"
    rf"|(?P<clock>\d{{1,2}}):(?P<clock_minutes>[0-5]\d)"
    rf"|(?P<arabic>{_ARABIC})(?P<arabic_multiplier>[十百千万亿]*)"
    rf"|(?P<chinese>{_CHINESE}))"
    rf"(?P<unit>{_UNIT_PATTERN})?"
)
_FRACTION_SCALE = {"十分之": Decimal(10), "百分之": Decimal(1), "千分之": Decimal("0.1"), "万分之": Decimal("0.01")}
_HALF_UNIT = re.compile(r"半(?P<unit>个月|个小时|小时|年|个钟|天)")
_AFTERNOON = ("下午", "晚上", "傍晚", "夜里", "夜晚")
_CURRENCY_SIGNS = {"¥": "CNY", "￥": "CNY", "$": "USD"}
_RANGE_WORDS = ("到", "至", "-", "~", "～", "或")

# Promises that a bank agent must not make unless the approved text makes them. Negated forms
# (不一定, 唔一定) are not promises, so the patterns exclude a 不 or 唔 before them.
DEFAULT_FORBIDDEN_PHRASES: tuple[str, ...] = (
    "保证", "担保", "承诺", "包保", "包你", "一定免", "一定会", "一定能", "一定可以", "一定不会",
    "一定唔会", "肯定会", "肯定能", "肯定可以", "肯定不会", "肯定唔会", "绝对", "百分之百", "百分百",
    "永久免", "终身免", "永远免", "零风险", "无风险", "稳赚", "必定", "必然", "实会", "实唔会",
)


@dataclass(frozen=True)
class Quantity:
    """One quantity found in a text, normalised to a value and a unit key ("" when none)."""

    value: Decimal
    unit: str
    text: str  # the span as written
    start: int  # offset of the span in the text

    def describe(self) -> str:
        """Return the value and unit for messages, for example "0.5 %" or "100 CNY"."""
        return f"{_format_decimal(self.value)} {self.unit}".strip()


@dataclass(frozen=True)
class Violation:
    """One part of an answer that the passages do not support."""

    kind: str  # "ungrounded_quantity" or "forbidden_phrase"
    text: str  # the span of the answer
    detail: str


@dataclass(frozen=True)
class GroundingResult:
    """Outcome of checking one answer against its passages."""

    violations: tuple[Violation, ...]
    quantities: tuple[Quantity, ...]

    @property
    def grounded(self) -> bool:
        """True when the answer has no violation."""
        return not self.violations


def _format_decimal(value: Decimal) -> str:
    return format(value.normalize(), "f")


def parse_chinese_number(text: str) -> Decimal:
    """Convert a Chinese numeral to a Decimal: 一百二十 is 120, 两千五 is 2500, 零点五 is 0.5.

    Digit strings without a unit character are read digit by digit (二〇二四 is 2024). Raises
    ValueError for a character that is no Chinese numeral.
    """
    integer_text, _, fraction_text = text.partition("点")
    integer = _parse_chinese_integer(integer_text) if integer_text else 0
    if not fraction_text:
        return Decimal(integer)
    digits = "".join(str(_CN_DIGITS[ch]) for ch in fraction_text)
    return Decimal(f"{integer}.{digits}")


def _parse_chinese_integer(text: str) -> int:
    for ch in text:
        if ch not in _CN_DIGITS and ch not in _CN_SMALL_UNITS and ch not in _CN_LARGE_UNITS:
            raise ValueError(f"{ch!r} in {text!r} is not a Chinese numeral")
    if len(text) > 1 and all(ch in _CN_DIGITS for ch in text):
        return int("".join(str(_CN_DIGITS[ch]) for ch in text))

    total = 0  # completed 亿 and 万 groups
    section = 0  # value below the current 万 group
    digit: int | None = None
    last_unit = 0  # the last small or large unit seen, for 两千五 = 2500
    zero_seen = False
    for ch in text:
        if ch in _CN_DIGITS:
            value = _CN_DIGITS[ch]
            if value == 0:
                zero_seen = True
            digit = value
        elif ch in _CN_SMALL_UNITS:
            unit = _CN_SMALL_UNITS[ch]
            section += (digit if digit is not None else 1) * unit
            digit = None
            last_unit = unit
            zero_seen = False
        else:
            unit = _CN_LARGE_UNITS[ch]
            section += digit or 0
            if unit == 100_000_000:
                total = (total + section) * unit
            else:
                total += section * unit
            section = 0
            digit = None
            last_unit = unit
            zero_seen = False
    if digit is not None:
        # A digit right after a unit, with no 零 between, is one place below it: 两千五 is 2500.
        if last_unit >= 10 and not zero_seen:
            section += digit * (last_unit // 10)
        else:
            section += digit
    return total + section


def _mask_non_quantity_words(text: str) -> str:
    return _NON_QUANTITY_PATTERN.sub(lambda m: " " * len(m.group(0)), text)


def extract_quantities(text: str) -> list[Quantity]:
    """Return every quantity in `text`, in order, with values and units normalised."""
    masked = _mask_non_quantity_words(text)
    found: list[Quantity] = []
    for match in _QUANTITY.finditer(masked):
        quantity = _quantity_from_match(match, masked)
        if quantity is not None:
            found.append(quantity)
    for match in _HALF_UNIT.finditer(masked):
        key, _ = _UNIT_BY_TEXT[match.group("unit")]
        found.append(Quantity(Decimal("0.5"), key, match.group(0), match.start()))
    found.sort(key=lambda q: q.start)
    found = _share_range_units(found, masked)
    return [q for q in found if not _is_filler(q)]


def _quantity_from_match(match: re.Match[str], text: str) -> Quantity | None:
    unit_text = match.group("unit") or ""
    unit, factor = _UNIT_BY_TEXT.get(unit_text, ("", Decimal(1)))
    span = match.group(0)
    start = match.start()

    if match.group("fraction"):
        value = _number(match.group("fraction_number")) * _FRACTION_SCALE[match.group("fraction")]
        # 百分之五十个 is odd, but the percentage is what counts.
        return Quantity(value.normalize(), "%", span, start)

    if match.group("clock"):
        hours = Decimal(match.group("clock")) + Decimal(match.group("clock_minutes")) / 60
        return Quantity(_afternoon(hours, text, start).normalize(), "clock", span, start)

    if match.group("arabic"):
        value = Decimal(match.group("arabic").replace(",", ""))
        for ch in match.group("arabic_multiplier"):
            value *= _CN_SMALL_UNITS.get(ch) or _CN_LARGE_UNITS[ch]
    else:
        numeral = match.group("chinese")
        # A lone 百, 千, 万 or 亿 is no number, but 十 alone is ten.
        if len(numeral) == 1 and numeral in "百佰千仟万亿":
            return None
        try:
            value = parse_chinese_number(numeral)
        except (ValueError, KeyError):
            return None

    if unit == "clock" and unit_text == "点":
        # 三点五 is 3.5 (a decimal), which the numeral pattern already read, so 点 here is
        # followed by no digit and is the hour of a clock time.
        value = _afternoon(value, text, start)
    if unit_text == "点半":
        value = _afternoon(value, text, start) + Decimal("0.5")
    if not unit and start > 0 and text[start - 1] in _CURRENCY_SIGNS:
        unit = _CURRENCY_SIGNS[text[start - 1]]
    if unit == "day" and unit_text == "日" and _is_date_day(text, start):
        unit = "day_of_month"
    if unit == "year" and unit_text == "年" and value >= 1900 and value == value.to_integral_value():
        unit = "calendar_year"
    return Quantity((value * factor).normalize(), unit, span, start)


def _number(text: str) -> Decimal:
    if text[0].isdigit():
        return Decimal(text.replace(",", ""))
    return parse_chinese_number(text)


def _afternoon(hours: Decimal, text: str, start: int) -> Decimal:
    before = text[max(0, start - 3):start]
    if hours < 12 and any(word in before for word in _AFTERNOON):
        return hours + 12
    return hours


def _is_date_day(text: str, start: int) -> bool:
    """True when the 日 at `start` belongs to a date: after 月 (三月五日) or 每月 (每月五日)."""
    before = text[max(0, start - 2):start]
    return before.endswith("月") or before.endswith("每月")


def _share_range_units(quantities: list[Quantity], text: str) -> list[Quantity]:
    """Give the unit of the second number of a range to a first one without a unit: 一到两个工作日."""
    result = list(quantities)
    for i in range(len(result) - 1):
        first, second = result[i], result[i + 1]
        between = text[first.start + len(first.text):second.start].strip()
        if not first.unit and second.unit and between in _RANGE_WORDS:
            result[i] = Quantity(first.value, second.unit, first.text, first.start)
    return result


def _is_filler(quantity: Quantity) -> bool:
    """True for a lone 一 or 两 that counts a thing and states no amount: 一张卡, 这一笔."""
    if quantity.text[0].isdigit() or quantity.unit not in ("", "count:个", "count:位", "count:张", "count:笔", "count:份"):
        return False
    return quantity.value in (1, 2) and quantity.text.lstrip("第")[0] in "一两"


class GroundingGuard:
    """Check answers against one set of approved passages.

    Build one guard per set of passages and call `check` for the whole answer or for each
    sentence before it is spoken. `forbidden_phrases` replaces the default list of guarantees.
    """

    def __init__(self, passages: Iterable[str], *, forbidden_phrases: Sequence[str] = DEFAULT_FORBIDDEN_PHRASES) -> None:
        self.passages = tuple(passages)
        self._passage_quantities = [q for passage in self.passages for q in extract_quantities(passage)]
        joined = "\n".join(self.passages)
        self._forbidden = [
            (phrase, re.compile(rf"(?<![不唔]){re.escape(phrase)}"))
            for phrase in forbidden_phrases
            if phrase not in joined
        ]

    def is_supported(self, quantity: Quantity) -> bool:
        """True when a passage quantity has the same value and a compatible unit."""
        for known in self._passage_quantities:
            if known.value != quantity.value:
                continue
            if known.unit == quantity.unit or not known.unit or not quantity.unit:
                return True
        return False

    def check(self, answer: str) -> GroundingResult:
        """Return the quantities of `answer` and a violation for each unsupported quantity or promise."""
        quantities = extract_quantities(answer)
        violations: list[Violation] = []
        for quantity in quantities:
            if not self.is_supported(quantity):
                violations.append(
                    Violation(
                        kind="ungrounded_quantity",
                        text=quantity.text,
                        detail=f"{quantity.describe()} ({quantity.text!r}) is in no approved passage",
                    )
                )
        for phrase, pattern in self._forbidden:
            for match in pattern.finditer(answer):
                violations.append(
                    Violation(
                        kind="forbidden_phrase",
                        text=match.group(0),
                        detail=f"guarantee {phrase!r} is in no approved passage",
                    )
                )
        return GroundingResult(violations=tuple(violations), quantities=tuple(quantities))


def check_grounding(answer: str, passages: Iterable[str]) -> GroundingResult:
    """Check `answer` against `passages` with the default guarantee phrases."""
    return GroundingGuard(passages).check(answer)
