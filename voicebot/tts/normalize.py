"""Text normalisation for Chinese speech synthesis.

espeak-ng reads Arabic digits in Chinese text poorly: it reads card numbers as one huge
quantity, does not know that ¥ means 元, and reads symbols such as ``%`` or ``/`` by
their English names. `normalize_for_speech` rewrites a reply so that every number is
spelled out in Chinese characters the way a hotline agent would say it:

- amounts: ``¥1,234.50`` -> 一千二百三十四元五角, ``200元`` -> 两百元, ``RMB 300`` -> 三百元
- percentages: ``0.5%`` -> 百分之零点五
- dates and times: ``2026-12-04`` -> 二零二六年十二月四日, ``14:30`` -> 十四点三十分
- card, phone and account numbers digit by digit: ``尾号6288`` -> 尾号六二八八; Mandarin
  reads 1 as 幺 in digit strings (``138...`` -> 幺三八...), Cantonese as 一
- other numbers as quantities, with 两 for a lone 2 before a measure word (两张)
  and for a leading 2 before 百, 千, 万 or 亿 (两千, but 十二 and 二十)

The output uses Simplified characters for both languages because the espeak-ng ``yue``
voice reads Simplified and Traditional number characters alike. ASCII words such as
APP or VIP are left for espeak-ng to read.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = [
    "LANGUAGES",
    "normalize_for_speech",
    "read_digits",
    "read_integer",
    "read_money",
    "read_number",
]

LANGUAGES = ("zh", "yue")

_DIGITS = "零一二三四五六七八九"
_SMALL_UNITS = ("", "十", "百", "千")
# Sections of four digits: 万 is 10^4, 亿 is 10^8, 万亿 is 10^12.
_SECTION_UNITS = ("", "万", "亿", "万亿")

# Words that start a quantity: a lone 2 before them is read 两 (两张, 两个月, 两点).
# Months and days are absent on purpose, so 2月 stays 二月 and 2日 stays 二日.
_MEASURE_WORDS = (
    "元", "块", "角", "毛", "分", "秒", "个", "张", "次", "天", "年", "周", "小时",
    "期", "笔", "位", "倍", "种", "条", "份", "项", "家", "台", "岁", "斤", "公里",
    "百", "千", "万", "亿", "点", "件", "本", "名", "款", "套", "遍", "趟", "积分",
    "個", "張", "條", "筆", "項", "歲", "點", "萬", "億", "塊", "週",
)  # fmt: skip

# Words after which a number of three or more digits is a card, phone or account
# number, read digit by digit (尾号6288, 电话：95588). Simplified and Traditional forms.
_CONTEXT_WORDS = (
    "卡号", "尾号", "后四位", "末四位", "后三位", "账号", "账户", "电话", "手机", "号码",
    "热线", "拨打", "致电", "验证码", "编号", "工号", "卡號", "尾號", "後四位", "帳號",
    "賬號", "帳戶", "賬戶", "電話", "手機", "號碼", "熱線", "撥打", "致電", "驗證碼", "編號",
)  # fmt: skip

_FULLWIDTH = str.maketrans(
    {chr(code): chr(code - 0xFEE0) for code in range(0xFF10, 0xFF1A)}  # ０-９
    | {chr(code): chr(code - 0xFEE0) for code in range(0xFF21, 0xFF3B)}  # Ａ-Ｚ
    | {chr(code): chr(code - 0xFEE0) for code in range(0xFF41, 0xFF5B)}  # ａ-ｚ
    | {"％": "%", "＊": "*", "＃": "#", "～": "~", "－": "-", "＋": "+", "＝": "=", "／": "/"}
)

_THOUSANDS = re.compile(r"(?<![\d,.])\d{1,3}(?:,\d{3})+(?![\d,])")
_DATE = re.compile(
    r"(?<![\d.])((?:19|20)\d{2})\s*(?:[-/.]|年)\s*(\d{1,2})\s*(?:[-/.]|月)\s*(\d{1,2})(日|号|號)?(?![\d.])"
)
# A number ends where no digit follows, directly or after a decimal point or colon.
_NUMBER_END = r"(?!\d|[.:：]\d)"
_YEAR_MONTH = re.compile(r"(?<![\d.])((?:19|20)\d{2})[-/](0?[1-9]|1[0-2])(?![\d.])")
_CONTEXT_NUMBER = re.compile(
    "(" + "|".join(_CONTEXT_WORDS) + r")([^\d，。！？；、,!?;\n]{0,6}?)"
    r"((?:\d|\*{2,})+(?:[ \-](?:\d|\*{2,})+)*)" + _NUMBER_END
)
# Digits in groups split by spaces or dashes, with optional masks: 6222 **** **** 6288.
_GROUPED_NUMBER = re.compile(r"(?<![\d.:：])(?:\d|\*{2,})+(?:[ \-](?:\d|\*{2,})+)+" + _NUMBER_END)
_RANGE = re.compile(r"(\d)\s*[-~〜–—]\s*(?=\d)")
_TIME = re.compile(r"(?<![\d.])([01]?\d|2[0-3])[:：]([0-5]\d)(?:[:：]([0-5]\d))?(?![\d.])")
_AMOUNT = r"(\d+(?:\.\d+)?)"
# \b does not work next to Chinese characters, which are word characters too.
_MONEY_PREFIX = re.compile(r"(?:¥|￥|(?<![A-Za-z])(?:RMB|CNY))\s*" + _AMOUNT + r"(?:\s*元)?", re.IGNORECASE)
_MONEY_SUFFIX = re.compile(r"(?<![\d.])" + _AMOUNT + r"\s*(?:元|(?:RMB|CNY)(?![A-Za-z]))", re.IGNORECASE)
_PERCENT = re.compile(r"(?<![\d.])" + _AMOUNT + r"\s*(%|‰)")
_YEAR = re.compile(r"(?<![\d.])(\d{4})(?=\s*年)")
_LONG_DIGITS = re.compile(r"(?<![\d.])\d{5,}" + _NUMBER_END)
_NUMBER = re.compile(r"(?<!\d)(\d+)(?:\.(\d+))?")
# Phone keypad keys: 按#, #键, *号键 -> 按井号, 井号键, 星号键.
_KEYPAD = re.compile(r"(?<=按)\s*([#*])\s*[号號]?|([#*])\s*[号號]?(?=\s*[键鍵])")
_PER_UNIT = re.compile(r"/(?=[月年天日次笔人张個张筆])")
_MASK = re.compile(r"\*{2,}")
_SPACE_BETWEEN_CJK = re.compile(r"(?<=[^\x00-\x7F])\s+|\s+(?=[^\x00-\x7F])")

# Symbols that espeak-ng reads by their English names or as long pauses, mapped to what
# a speaker says. Anything left in the Unicode symbol categories (emoji, arrows) is dropped.
_SYMBOLS = {
    "&": "和", "+": "加", "=": "等于", "~": "至", "/": " ", "\\": " ", "|": " ", "_": " ",
    "^": " ", "`": "", "#": "", "*": "", "@": " at ", "%": "", "‰": "", "$": "",
    "【": "", "】": "", "「": "", "」": "", "『": "", "』": "", "《": "", "》": "",
    "〈": "", "〉": "", "(": "，", ")": "，", "（": "，", "）": "，", "[": "", "]": "",
    "{": "", "}": "", "<": "", ">": "", '"': "", "“": "", "”": "", "‘": "", "’": "",
    "'": "", "·": "", "…": "，", "—": "，", "–": "，", "¥": "", "￥": "",
}  # fmt: skip


def read_integer(value: int, *, liang: bool = True) -> str:
    """Spell a non-negative integer in Chinese characters: 10010 -> 一万零一十.

    With `liang`, a leading 2 before 百, 千, 万 or 亿 is read 两 (两百, 两千), as both
    Mandarin and Cantonese speakers say amounts. Percentages and dates pass False.
    """
    if value < 0:
        raise ValueError(f"read_integer expects a non-negative integer, got {value}; pass abs(value)")
    if value == 0:
        return _DIGITS[0]

    sections: list[int] = []
    while value:
        sections.append(value % 10000)
        value //= 10000
    if len(sections) > len(_SECTION_UNITS):
        raise ValueError(f"read_integer supports numbers below 10^16, got {len(sections) * 4} digits")

    words = ""
    zero_pending = False
    for index in range(len(sections) - 1, -1, -1):
        section = sections[index]
        if section == 0:
            zero_pending = bool(words)
            continue
        # A gap of zeros between two non-zero parts is read as one 零: 一亿零一, 一万零一十.
        if words and (zero_pending or section < 1000):
            words += _DIGITS[0]
        words += _read_section(section) + _SECTION_UNITS[index]
        zero_pending = False

    # 10-19 at the start are read 十, 十一, not 一十, 一十一. An inner 一十 stays (一百一十).
    if words.startswith("一十"):
        words = words[1:]
    if liang and words.startswith("二") and words[1:2] in ("百", "千", "万", "亿"):
        words = "两" + words[1:]
    return words


def _read_section(section: int) -> str:
    """Spell 1..9999 with 千, 百, 十 and inner 零: 1001 -> 一千零一."""
    words = ""
    zero_pending = False
    for position in range(3, -1, -1):
        digit = section // 10**position % 10
        if digit == 0:
            zero_pending = bool(words)
            continue
        if zero_pending:
            words += _DIGITS[0]
            zero_pending = False
        words += _DIGITS[digit] + _SMALL_UNITS[position]
    return words


def read_number(number: str, *, liang: bool = True) -> str:
    """Spell a decimal number such as "12", "0.05" or "3.50" as a quantity: 三点五零.

    The fraction is read digit by digit, as written, so trailing zeros are kept.
    """
    integer, _, fraction = number.partition(".")
    words = read_integer(int(integer), liang=liang)
    if fraction:
        words += "点" + "".join(_DIGITS[int(digit)] for digit in fraction)
    return words


def read_digits(digits: str, language: str) -> str:
    """Read a digit string one digit at a time: 1380 -> 幺三八零 (zh) or 一三八零 (yue).

    Mandarin reads 1 as 幺 in phone, card and account numbers so that it cannot be
    heard as 七. Cantonese has no such habit and reads 一. Non-digits are dropped.
    """
    word_for_one = "幺" if language == "zh" else "一"
    return "".join(word_for_one if char == "1" else _DIGITS[int(char)] for char in digits if char.isdigit())


def read_money(amount: str) -> str:
    """Spell an amount of yuan with 元, 角 and 分: "1234.50" -> 一千二百三十四元五角.

    Amounts with more than two decimals are read as a quantity followed by 元.
    """
    integer, _, fraction = amount.partition(".")
    if len(fraction) > 2:
        return read_number(amount) + "元"
    yuan = int(integer)
    fraction = fraction.ljust(2, "0")
    jiao, fen = int(fraction[0]), int(fraction[1])

    words = ""
    if yuan or (not jiao and not fen):
        words = _read_quantity(yuan) + "元"
    if jiao:
        words += _read_quantity(jiao) + "角"
    if fen:
        if yuan and not jiao:
            words += _DIGITS[0]
        words += _read_quantity(fen) + "分"
    return words


def _read_quantity(value: int) -> str:
    """Spell a counted value, with a lone 2 read 两 (两元, 两角)."""
    return "两" if value == 2 else read_integer(value)


def _read_time(hour: int, minute: int, second: int | None) -> str:
    words = _read_quantity(hour) + "点"
    if minute:
        words += ("零" if minute < 10 else "") + read_integer(minute, liang=False) + "分"
    if second:
        words += ("零" if second < 10 else "") + read_integer(second, liang=False) + "秒"
    return words


def _read_digit_groups(text: str, language: str) -> str:
    """Read grouped digits ("6222 **** 6288", "400-820-8888") with a pause between groups.

    Masked groups (``****``) are skipped because the caller cannot use them. One long
    group is split the way people say it: 11-digit mobile numbers 3-4-4, card numbers
    in fours, so that the listener hears the same groups that are printed on the card.
    """
    groups = [group for group in re.split(r"[ \-]|\*{2,}", text) if group.isdigit()]
    if len(groups) == 1:
        groups = _split_long_group(groups[0])
    return "，".join(read_digits(group, language) for group in groups)


def _split_long_group(digits: str) -> list[str]:
    if len(digits) == 11 and digits.startswith("1"):
        return [digits[:3], digits[3:7], digits[7:]]
    if len(digits) >= 12:
        return [digits[start : start + 4] for start in range(0, len(digits), 4)]
    return [digits]


def _starts_with_measure_word(text: str) -> bool:
    return text.lstrip().startswith(_MEASURE_WORDS)


def normalize_for_speech(text: str, language: str) -> str:
    """Rewrite `text` so that espeak-ng speaks its numbers and symbols the way people do.

    `language` is "zh" (Mandarin) or "yue" (Cantonese). Raises ValueError for any other.
    """
    if language not in LANGUAGES:
        raise ValueError(f"normalize_for_speech: unsupported language {language!r}; expected one of {LANGUAGES}")
    if not text:
        return ""

    text = text.translate(_FULLWIDTH)
    text = _THOUSANDS.sub(lambda match: match.group(0).replace(",", ""), text)
    text = _DATE.sub(_replace_date, text)
    text = _YEAR_MONTH.sub(_replace_year_month, text)
    text = _CONTEXT_NUMBER.sub(lambda match: _replace_context_number(match, language), text)
    text = _GROUPED_NUMBER.sub(lambda match: _replace_grouped_number(match, language), text)
    text = _RANGE.sub(r"\1至", text)
    text = _TIME.sub(_replace_time, text)
    text = _MONEY_PREFIX.sub(lambda match: read_money(match.group(1)), text)
    text = _MONEY_SUFFIX.sub(lambda match: read_money(match.group(1)), text)
    text = _PERCENT.sub(_replace_percent, text)
    text = _YEAR.sub(lambda match: _read_year(match.group(1)), text)
    text = _LONG_DIGITS.sub(lambda match: _replace_long_digits(match, language), text)
    text = _NUMBER.sub(_replace_number, text)
    return _clean_symbols(text)


def _read_year(digits: str) -> str:
    # Years are read digit by digit with 一, never 幺: 二零二六年, 一九九八年.
    return "".join(_DIGITS[int(char)] for char in digits)


def _replace_date(match: re.Match[str]) -> str:
    year, month, day = match.group(1), int(match.group(2)), int(match.group(3))
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return match.group(0)
    day_word = match.group(4) or "日"
    return f"{_read_year(year)}年{read_integer(month)}月{read_integer(day)}{day_word}"


def _replace_year_month(match: re.Match[str]) -> str:
    # 2026-12 is a month unless a unit follows, as in a range of amounts (2000-12元).
    if _starts_with_measure_word(match.string[match.end() :]):
        return match.group(0)
    return f"{_read_year(match.group(1))}年{read_integer(int(match.group(2)))}月"


def _replace_context_number(match: re.Match[str], language: str) -> str:
    number = match.group(3)
    digit_count = sum(char.isdigit() for char in number)
    following = match.string[match.end() :]
    # A short number or one followed by a unit is a quantity even after a context
    # word: 电话银行转账3次, 手机银行限额500元.
    if digit_count < 3 or _starts_with_measure_word(following):
        return match.group(0)
    return match.group(1) + match.group(2) + _read_digit_groups(number, language)


def _replace_grouped_number(match: re.Match[str], language: str) -> str:
    number = match.group(0)
    # Seven or more digits in groups are a phone or card number. Fewer are a range
    # (3-5, 10-20), which later rules read.
    if sum(char.isdigit() for char in number) < 7:
        return number
    return _read_digit_groups(number, language)


def _replace_time(match: re.Match[str]) -> str:
    second = match.group(3)
    return _read_time(int(match.group(1)), int(match.group(2)), int(second) if second else None)


def _replace_percent(match: re.Match[str]) -> str:
    prefix = "百分之" if match.group(2) == "%" else "千分之"
    return prefix + read_number(match.group(1), liang=False)


def _replace_long_digits(match: re.Match[str], language: str) -> str:
    digits = match.group(0)
    if _starts_with_measure_word(match.string[match.end() :]):
        return digits
    return _read_digit_groups(digits, language)


def _replace_number(match: re.Match[str]) -> str:
    integer, fraction = match.group(1), match.group(2)
    # A leading zero marks a code (007, 0571), not a quantity.
    if len(integer) > 1 and integer.startswith("0") and not fraction:
        return "".join(_DIGITS[int(char)] for char in integer)
    if fraction:
        return read_number(f"{integer}.{fraction}")
    preceding = match.string[max(0, match.start() - 2) : match.start()]
    following = match.string[match.end() :]
    is_ordinal = preceding.endswith(("第", "初")) or preceding in ("星期", "礼拜", "禮拜")
    if integer == "2" and not is_ordinal and _starts_with_measure_word(following):
        return "两"
    return read_integer(int(integer))


def _clean_symbols(text: str) -> str:
    text = _KEYPAD.sub(lambda match: "井号" if "#" in match.group(0) else "星号", text)
    text = _PER_UNIT.sub("每", text)
    text = _MASK.sub("", text)
    pieces = []
    for char in text:
        if char in _SYMBOLS:
            pieces.append(_SYMBOLS[char])
        elif unicodedata.category(char) in ("So", "Sk", "Co", "Cs") or char in "\ufe0f\u200d":
            continue
        else:
            pieces.append(char)
    text = "".join(pieces)
    text = re.sub(r"\s+", " ", text)
    text = _SPACE_BETWEEN_CJK.sub("", text)
    text = re.sub(r"，{2,}", "，", text)
    text = re.sub(r"^，|，(?=[。！？；])", "", text)
    return text.strip()
