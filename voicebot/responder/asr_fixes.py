"""Normalisation of ASR transcripts before FAQ matching.

Whisper on 8 kHz telephone audio confuses characters that sound alike (帐单 for 账单,
转员工 for 转人工), may answer in Traditional characters, puts spaces between words,
and sometimes loops on one phrase. `normalize_transcript` undoes these so that the
matcher compares like with like. The text is used for matching only: what the caller
said is never rewritten in the dialog history.

The replacement table is conservative. Each wrong form is a string that is not a word
in banking Mandarin, or a phrase whose intended reading is clear on a credit-card
hotline, so a correct transcript is never changed. Add a row only for a confusion seen
in real transcripts.

`to_syllables` turns text into toneless pinyin syllables, so that a matcher can compare
how two texts sound when the ASR wrote a sound-alike character the table does not list.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import opencc
from pypinyin import Style, lazy_pinyin

# (wrong, right, why). `wrong` is a regular expression, mostly a plain string. The rows
# are applied in order, after the Traditional to Simplified conversion.
ASR_REPLACEMENTS: tuple[tuple[str, str, str], ...] = (
    ("帐", "账", "帐 is the old form of 账 in 账单, 账户, 对账 and 转账; the hotline never means a tent"),
    ("张单", "账单", "张单 is not a word; zhang4 dan1 misheard"),
    ("挂事", "挂失", "挂事 is not a word; gua4 shi1 misheard"),
    ("年肺", "年费", "年肺 (a lung) never comes up on a card hotline; nian2 fei4 misheard"),
    ("挂湿", "挂失", "挂湿 is not a word"),
    ("倒刷", "盗刷", "倒刷 is not a word; dao4 shua1 misheard"),
    ("转员工", "转人工", "callers ask to 转人工 (transfer to a person); 转员工 is not a request"),
    ("转人公", "转人工", "转人公 is not a word"),
    ("(?<![爱开])心卡", "新卡", "心卡 is not a word (爱心卡 may be a card product); 新卡 is"),
    ("(?<![关联体派])系用(?=卡|额度)", "信用", "系用卡 and 系用额度 are xin4 yong4 misheard; 关系 stays"),
    ("积分对换", "积分兑换", "points are 兑换 (redeemed), never 对换 (swapped)"),
    ("对换什么", "兑换什么", "对换什么 on this hotline asks what points redeem for"),
    ("力品", "礼品", "力品 is not a word"),
    ("一切还款", "逾期还款", "一切还款 is not a phrase; yu2 qi1 misheard as yi2 qie4"),
    ("鱼期", "逾期", "鱼期 is not a word"),
    ("年废", "年费", "年废 is not a word"),
    ("最底还款", "最低还款", "最底 is a misspelling of 最低"),
    ("额渡", "额度", "额渡 is not a word"),
    ("手续废", "手续费", "手续废 is not a word"),
    ("储畜", "储蓄", "储畜 is not a word"),
)

# Characters removed before matching: whitespace, punctuation and symbols. Letters,
# digits and CJK characters stay.
_DROPPED_CATEGORIES = ("Z", "P", "S", "C")

# A phrase of 2 to 8 characters repeated three or more times in a row: the shape of a
# Whisper repetition loop ("账单还款账单还款账单还款"). One copy is kept.
_REPEATED_PHRASE = re.compile(r"(.{2,8}?)\1{2,}")


@lru_cache(maxsize=1)
def _to_simplified() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def strip_punctuation(text: str) -> str:
    """Remove whitespace, punctuation and symbols, and fold full-width forms (NFKC)."""
    folded = unicodedata.normalize("NFKC", text)
    kept = [char for char in folded if unicodedata.category(char)[0] not in _DROPPED_CATEGORIES]
    return "".join(kept).lower()


def collapse_repetitions(text: str) -> str:
    """Keep one copy of a short phrase that repeats three or more times in a row."""
    return _REPEATED_PHRASE.sub(r"\1", text)


_COMPILED_REPLACEMENTS = tuple((re.compile(wrong), right) for wrong, right, _ in ASR_REPLACEMENTS)


def apply_replacements(text: str) -> str:
    """Apply ASR_REPLACEMENTS in order."""
    for pattern, right in _COMPILED_REPLACEMENTS:
        text = pattern.sub(right, text)
    return text


def normalize_transcript(text: str) -> str:
    """Return the form of a transcript used for matching.

    Steps: Traditional to Simplified (OpenCC t2s), punctuation and spaces removed,
    repetition loops collapsed, then the confusions of ASR_REPLACEMENTS fixed.
    """
    simplified = _to_simplified().convert(text)
    compact = strip_punctuation(simplified)
    collapsed = collapse_repetitions(compact)
    return apply_replacements(collapsed)


# Sound merges of Southern Mandarin accents, applied by `to_syllables(fuzzy=True)`: the
# retroflex initials fall together with the dental ones (zhi/zi), n with l (nan/lan), the
# velar nasal finals with the alveolar ones (xing/xin, feng/fen), and ü with i (xu/xi).
# Whisper makes the same swaps on 8 kHz audio: 手续费 heard as 手细费, 逾期 as 遗迄.
FUZZY_INITIALS: dict[str, str] = {"zh": "z", "ch": "c", "sh": "s", "n": "l"}
FUZZY_FINALS: dict[str, str] = {
    "ing": "in",
    "eng": "en",
    "v": "i",
    "ve": "ie",
    "van": "ian",
    "vn": "in",
}


def to_syllables(text: str, *, fuzzy: bool = True) -> list[str]:
    """Convert text to toneless pinyin syllables, one per CJK character.

    A polyphonic character gets the reading of its word (pypinyin's phrase dictionary). A
    run of letters or digits stays one token, as it is. With `fuzzy`, the merges of
    FUZZY_INITIALS and FUZZY_FINALS are applied, so 手续费 and 手细费 give the same syllables.
    """
    if not fuzzy:
        return lazy_pinyin(text, style=Style.NORMAL)
    # Strict initials and finals: y and w are not initials, and ü is written v, so every
    # syllable splits into one initial (possibly empty) and one final.
    initials = lazy_pinyin(text, style=Style.INITIALS, strict=True)
    finals = lazy_pinyin(text, style=Style.FINALS, strict=True)
    syllables = []
    for initial, final in zip(initials, finals, strict=True):
        if initial == final:
            # A run of non-CJK characters, returned unchanged by both styles.
            syllables.append(initial)
            continue
        initial = FUZZY_INITIALS.get(initial, initial)
        final = FUZZY_FINALS.get(final, final)
        syllables.append(f"{initial}{final}")
    return syllables
