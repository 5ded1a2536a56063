"""Numbers in Chinese text: spoken digits, Chinese numerals with units, and the numbers a reply contains.

Callers read card digits one by one (六二八八, 幺三五七), sometimes with the radio
readings 幺 (1), 两 (2), 拐 (7), 洞 (0) and 勾 (9). Amounts come with units (五万,
三万五, 两千五百块, 5万). Whisper on 8 kHz audio writes some digits as sound-alike
characters (溜 for 六, 吧 for 八); those count as digits only next to a real digit, and
lower the confidence.
"""

from __future__ import annotations

import re

# Characters read as one digit.
DIGIT_CHARACTERS: dict[str, str] = {
    **{str(value): str(value) for value in range(10)},
    **{chr(0xFF10 + value): str(value) for value in range(10)},
    "零": "0", "〇": "0", "洞": "0",
    "一": "1", "幺": "1", "壹": "1",
    "二": "2", "两": "2", "贰": "2",
    "三": "3", "叁": "3",
    "四": "4", "肆": "4",
    "五": "5", "伍": "5",
    "六": "6", "陆": "6",
    "七": "7", "拐": "7", "柒": "7",
    "八": "8", "捌": "8",
    "九": "9", "勾": "9", "玖": "9",
}

# Sound-alike characters Whisper writes for a spoken digit. Common words (是, 要, 就, 把,
# 期) are left out: they occur next to digits in ordinary sentences ("是六二八八").
DIGIT_SOUND_ALIKES: dict[str, str] = {
    "令": "0", "铃": "0", "玲": "0",
    "腰": "1", "依": "1", "衣": "1", "医": "1",
    "尔": "2", "儿": "2", "耳": "2",
    "伞": "3", "散": "3", "山": "3",
    "似": "4", "死": "4", "思": "4", "丝": "4", "寺": "4",
    "吴": "5", "无": "5", "舞": "5", "午": "5", "武": "5",
    "溜": "6", "留": "6", "流": "6", "刘": "6",
    "漆": "7", "妻": "7", "齐": "7",
    "吧": "8", "巴": "8", "爸": "8", "扒": "8",
    "酒": "9", "久": "9", "旧": "9",
}

_SMALL_UNITS = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000}
_LARGE_UNITS = {"万": 10_000, "萬": 10_000, "亿": 100_000_000}
_NUMERAL_CHARACTERS = "".join(DIGIT_CHARACTERS) + "".join(_SMALL_UNITS) + "".join(_LARGE_UNITS) + "点."
_NUMBER_RUN = re.compile(f"[{re.escape(_NUMERAL_CHARACTERS)}]+")


def parse_chinese_number(text: str) -> float | None:
    """Convert a number written with digits and/or Chinese numerals to its value.

    Handles 一百, 两千五百, 三万五 (35000, the colloquial dropped unit), 5万, 1.5万,
    一百二十点五 and 1234.50. Returns None when `text` holds no number.
    """
    text = text.strip()
    if not text:
        return None
    if re.fullmatch(r"[0-9]+(?:\.[0-9]+)?", text):
        return float(text)
    if len(text) > 1 and all(char in DIGIT_CHARACTERS for char in text):
        # Digits read one by one (六二八八) are a digit string, not a sum.
        return float("".join(DIGIT_CHARACTERS[char] for char in text))
    integer_part, _, fraction_part = text.replace("点", ".").partition(".")
    value = _parse_integer(integer_part)
    if value is None:
        return None
    if fraction_part:
        digits = "".join(DIGIT_CHARACTERS.get(char, "") for char in fraction_part)
        if digits and not any(char in _LARGE_UNITS for char in fraction_part):
            return value + float(f"0.{digits}")
        # "1.5万": the fraction belongs to the unit after it.
        unit = next((char for char in fraction_part if char in _LARGE_UNITS), None)
        if digits and unit is not None:
            return (value + float(f"0.{digits}")) * _LARGE_UNITS[unit]
    return float(value)


def _parse_integer(text: str) -> int | None:
    total = 0
    section = 0
    number: int | None = None
    arabic = ""
    last_unit = 0
    seen_any = False
    for char in text + "\0":
        if char.isdigit() and char.isascii():
            arabic += char
            continue
        if arabic:
            number = int(arabic)
            arabic = ""
            seen_any = True
        if char == "\0":
            break
        if char in DIGIT_CHARACTERS:
            number = int(DIGIT_CHARACTERS[char])
            seen_any = True
        elif char in _SMALL_UNITS:
            unit = _SMALL_UNITS[char]
            section += (1 if number is None else number) * unit
            number = None
            last_unit = unit
            seen_any = True
        elif char in _LARGE_UNITS:
            unit = _LARGE_UNITS[char]
            section += number or 0
            total += max(section, 1) * unit
            section = 0
            number = None
            last_unit = unit
            seen_any = True
        else:
            return None
    if not seen_any:
        return None
    if number is not None:
        # A bare digit after a unit means the next lower unit: 三万五 is 35000, 两千五 is 2500.
        if last_unit >= 100 and number < 10 and not text[-1].isascii():
            number *= last_unit // 10
        section += number
    return total + section


def numbers_in(text: str) -> set[str]:
    """Return every number in `text`, normalised, for the grounding check.

    A run of digits without units (六二八八, 2024) yields its digit string and its value;
    a run with units (一百二十元) yields its value. A lone 一 or 两 is skipped because it
    is mostly a word (一下, 两个). Values are written without leading zeros or a trailing
    ".0", so "07" and "七" both give "7".
    """
    found: set[str] = set()
    for match in _NUMBER_RUN.finditer(text):
        run = match.group(0).strip(".点")
        if not run or run in {"一", "两", "万", "千", "百", "十"}:
            continue
        if all(char in DIGIT_CHARACTERS for char in run):
            digits = "".join(DIGIT_CHARACTERS[char] for char in run)
            found.add(_canonical(float(int(digits))))
            if len(digits) > 1 and not run.isascii():
                found.add(digits)
            continue
        value = parse_chinese_number(run)
        if value is not None:
            found.add(_canonical(value))
    return found


def _canonical(value: float) -> str:
    if value == int(value):
        return str(int(value))
    return f"{value:.2f}".rstrip("0").rstrip(".")


def spell_digits(digits: str) -> str:
    """Write a digit string as one Chinese digit per character for a read-back: 6288 → 六二八八.

    Mandarin and Cantonese share these characters. Speech synthesis reads 6288 as a
    number (六千二百八十八), which is not how a caller checks card digits.
    """
    names = "零一二三四五六七八九"
    return "".join(names[int(char)] if char.isdigit() else char for char in digits)
