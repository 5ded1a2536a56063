"""Clean-up of Whisper output: Simplified characters, known hallucinations, repetition loops.

Whisper was trained on subtitled video. On silence, noise or the end of a short clip it tends
to write subtitle credits ("字幕由Amara.org社区提供"), channel slogans ("请不吝点赞 订阅 转发"),
closings ("谢谢观看", "Thanks for watching") or an invented "拜拜". Greedy decoding can also loop
on one phrase. The functions here are pure and work on one transcript string.

Each rule is a row in a table below, so a new hallucination seen in production is one new row.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

import opencc

# Whole lines or trailing phrases that Whisper writes without anybody saying them. Each pattern
# matches one complete phrase. Matching ignores case, and `_strip_phrase_tail` also eats the
# punctuation and spaces around the phrase.
HALLUCINATION_PATTERNS: tuple[str, ...] = (
    r"字幕由\s*Amara\.org\s*社区提供",
    r"字幕(?:志愿者|制作|翻译|校对|提供)[:：]?\s*\S{0,12}",
    r"(?:中文)?字幕\s*by\s*\S{0,20}",
    r"请不吝点赞\s*订阅\s*转发\s*打赏支持明镜与点点栏目",
    r"(?:请|欢迎)?(?:不吝)?点赞\s*(?:订阅|关注)\s*(?:转发|分享)?\s*(?:打赏)?",
    r"(?:请|欢迎)?订阅我的频道",
    r"(?:请|欢迎)?(?:订阅|关注)(?:我们的|本)?频道",
    r"(?:谢谢|感谢)(?:大家|各位)?(?:的)?(?:收看|观看|收听)",
    r"明镜与点点栏目",
    r"thanks?\s+(?:you\s+)?for\s+watching",
    r"please\s+subscribe(?:\s+to\s+(?:my|our|the)\s+channel)?",
    r"subscribe(?:\s+to\s+(?:my|our|the)\s+channel)?",
    r"like\s+and\s+subscribe",
)

# Punctuation and spaces that may sit between or around phrases.
_SEPARATORS = r"[\s,，。.!！?？、;；:：~～…]*"

_HALLUCINATION_TAIL_RES: tuple[re.Pattern[str], ...] = tuple(
    re.compile(_SEPARATORS + "(?:" + pattern + ")" + _SEPARATORS + r"$", re.IGNORECASE)
    for pattern in HALLUCINATION_PATTERNS
)

# "拜拜" that Whisper appends after a request. It is removed only when the words before it end a
# question or a request. A caller who closes politely ("好的，谢谢，拜拜") keeps it, and so does
# a transcript that is "拜拜" alone.
_BYE_TAIL_RE = re.compile(
    r"^(?P<body>.*?[^\s,，。.!！?？、;；:：~～…拜])(?P<separator>" + _SEPARATORS + r")(?:拜拜|拜|bye[\s-]*bye|bye)+"
    + _SEPARATORS + r"$",
    re.IGNORECASE | re.DOTALL,
)
# Endings after which callers do say goodbye, so a trailing 拜拜 stays.
_POLITE_CLOSINGS: tuple[str, ...] = (
    "谢谢", "多谢", "感谢", "好的", "好", "行", "可以", "没事了", "没有了", "就这样", "那就这样",
    "再见", "嗯", "ok", "okay", "thanks", "thank you",
)

# Repetition loops as (minimum phrase length in characters, minimum repeats in a row). Short
# phrases repeat in real speech ("好的好的"), so they count as a loop from 3 repeats on. A phrase
# of 6 or more characters said twice back to back is a decoder loop.
REPETITION_RULES: tuple[tuple[int, int], ...] = ((2, 3), (6, 2))
_REPEAT_RES: tuple[re.Pattern[str], ...] = tuple(
    re.compile(
        r"(?P<unit>\S.{%d,39}?)(?:" % (min_length - 1) + _SEPARATORS + r"(?P=unit)){%d,}" % (min_repeats - 1),
        re.DOTALL,
    )
    for min_length, min_repeats in REPETITION_RULES
)
# A repeated unit made only of digits is kept: "六六六六" or "8888" can be a card number.
_DIGIT_CHARS = set("0123456789零〇一二三四五六七八九十百千万幺两点 ")


@lru_cache(maxsize=1)
def _t2s_converter() -> Callable[[str], str]:
    return opencc.OpenCC("t2s").convert


def to_simplified(text: str) -> str:
    """Convert Traditional Chinese characters to Simplified with the OpenCC t2s dictionaries."""
    if not text:
        return text
    return _t2s_converter()(text)


def _strip_phrase_tail(text: str) -> str:
    # Remove hallucinated phrases from the end until none is left, so "谢谢观看 字幕志愿者 李宗盛"
    # loses both phrases.
    changed = True
    while changed and text:
        changed = False
        for pattern in _HALLUCINATION_TAIL_RES:
            stripped = pattern.sub("", text)
            if stripped != text:
                text = stripped
                changed = True
    return text


def strip_bye_tail(text: str) -> str:
    """Remove a trailing "拜拜" that follows a question or request rather than a polite closing."""
    match = _BYE_TAIL_RE.match(text)
    if match is None:
        return text
    body = match.group("body")
    if any(body.lower().endswith(closing) for closing in _POLITE_CLOSINGS):
        return text
    # Keep a question mark or full stop that ended the real sentence before the invented tail.
    first_mark = match.group("separator").strip()[:1]
    return body + (first_mark if first_mark in "?？。.!！" else "")


def collapse_repetitions(text: str) -> str:
    """Replace a repetition loop with one copy of the phrase (see REPETITION_RULES).

    Runs of digits or Chinese numerals are kept, because a card number can repeat a group.
    """

    def keep_one(match: re.Match[str]) -> str:
        unit = match.group("unit")
        if len(unit.strip()) < 2 or set(unit) <= _DIGIT_CHARS:
            return match.group(0)
        # A loop cut off by the token limit ends with the start of one more copy, which goes too.
        rest = re.sub(_SEPARATORS + "$", "", match.string[match.end():])
        rest = re.sub("^" + _SEPARATORS, "", rest)
        if rest and len(rest) < len(unit) and unit.startswith(rest):
            return unit + "\x00"
        return unit

    previous = None
    while previous != text:
        previous = text
        for pattern in _REPEAT_RES:
            text = pattern.sub(keep_one, text)
            if "\x00" in text:
                text = text[: text.index("\x00")]
    return text


_CJK = r"[\u3400-\u9fff\uf900-\ufaff]"
_SPACE_BETWEEN_CJK_RE = re.compile(r"(?<=" + _CJK + r")\s+(?=" + _CJK + r")")


def join_cjk_spaces(text: str) -> str:
    """Remove spaces between two Chinese characters, which Whisper inserts when prompted with word lists."""
    return _SPACE_BETWEEN_CJK_RE.sub("", text)


def echoes_word_list(text: str, words: str, *, min_run: int = 3) -> bool:
    """Return True when `text` contains `min_run` or more words of the space-separated `words` in a row.

    Whisper prompted with hotwords sometimes copies the list into the transcript instead of
    transcribing the audio.
    """
    vocabulary = set(words.split())
    run = 0
    for piece in re.split(_SEPARATORS[:-1] + "+", text):
        if piece in vocabulary:
            run += 1
            if run >= min_run:
                return True
        elif piece:
            run = 0
    return False


def strip_hallucinations(text: str) -> str:
    """Drop known Whisper hallucinations from a transcript and return what is left.

    Removes subtitle credits, channel slogans and video closings when they are a whole line or
    trail the real words, an invented trailing "拜拜" (see `strip_bye_tail`), and repetition loops
    (see `collapse_repetitions`). Returns "" when nothing real is left.
    """
    lines = []
    for line in text.splitlines():
        line = collapse_repetitions(line.strip())
        line = _strip_phrase_tail(line).strip()
        line = strip_bye_tail(line).strip()
        if line:
            lines.append(line)
    return "\n".join(lines)
