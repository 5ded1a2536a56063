"""Normalisation and sound-alike correction of caller text for the escalation cues.

The cue rules match a normalised form of the transcript:

- Traditional characters become Simplified (OpenCC t2s), full-width forms are folded
  (NFKC) and Latin letters are lower-cased.
- Punctuation becomes the clause boundary `，`. Whitespace between two Chinese characters
  is also a boundary, because Whisper separates clauses with a space ("被刷了一笔 可是我人在上海").
  Whitespace next to a digit or letter is dropped, so "转账 5 万" reads "转账5万".
- A decimal point between two digits is kept ("1.5万").

Then `correct_sound_alikes` replaces sound-alike spellings of the words the rules look
for (TERMS in lexicon.py) by those words, comparing toneless pinyin syllables: 倒刷 becomes
盗刷, 有意比较意 becomes 有一笔交易, 转员工 becomes 转人工. A replacement always has the same
length as the characters it replaces, so a span in the corrected text is the same span in
the normalised text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import opencc
from pypinyin import Style, lazy_pinyin

BOUNDARY = "，"

# Sound merges of Southern Mandarin and of Cantonese speakers' Mandarin, which Whisper
# reproduces on 8 kHz audio: retroflex and dental initials (zh/z, ch/c, sh/s), n and l,
# and the velar and alveolar nasal finals (ing/in, eng/en). The ü/i merge is left out
# because it would make 教育 (jiao yu) read as 交易 (jiao yi).
_FUZZY_INITIALS = {"zh": "z", "ch": "c", "sh": "s", "n": "l"}
_FUZZY_FINALS = {"ing": "in", "eng": "en", "iong": "ong"}

# Similarity of two different syllables: a shared initial or final is a near miss, a
# shared nasal ending (员 yuan and 人 ren both end in -n) a weak one.
_SAME_FINAL = 0.6
_SAME_INITIAL = 0.5
_SAME_CODA = 0.3

# A term of three or more syllables may differ from the heard text in one syllable,
# never the first, if the mean similarity stays at or above this value. Two-syllable
# terms must sound the same (after the merges above), because too many real words
# share one syllable with them.
MIN_TERM_SIMILARITY = 0.75

_PUNCTUATION_CATEGORIES = ("P", "S", "C")


@dataclass(frozen=True)
class Syllable:
    """The toneless pinyin of one character, split as pypinyin's strict style does."""

    initial: str
    final: str

    @property
    def coda(self) -> str:
        """Return the nasal ending (`n` or `ng`) or an empty string for open syllables."""
        if self.final.endswith("ng"):
            return "ng"
        if self.final.endswith("n"):
            return "n"
        return ""

    def similarity(self, other: Syllable) -> float:
        """Return 1.0 for the same syllable, less for a near miss, 0.0 for unrelated ones."""
        if self == other:
            return 1.0
        if self.final == other.final:
            return _SAME_FINAL
        if self.initial and self.initial == other.initial:
            return _SAME_INITIAL
        if self.coda and self.coda == other.coda:
            return _SAME_CODA
        return 0.0


@dataclass(frozen=True)
class Correction:
    """One sound-alike replacement: `heard[start:end]` was read as `term`."""

    start: int
    end: int
    heard: str
    term: str
    similarity: float  # mean syllable similarity, 0..1


@dataclass(frozen=True)
class CallerText:
    """A transcript prepared for the cue rules."""

    normalized: str  # script, width and boundaries normalised; spans index this string
    corrected: str  # `normalized` with sound-alike spellings of TERMS replaced
    corrections: tuple[Correction, ...]

    def similarity_over(self, start: int, end: int) -> float:
        """Return the lowest similarity of the corrections overlapping [start, end), 1.0 if none."""
        overlapping = [c.similarity for c in self.corrections if c.start < end and start < c.end]
        return min(overlapping, default=1.0)

    def corrections_over(self, start: int, end: int) -> tuple[Correction, ...]:
        """Return the corrections overlapping [start, end)."""
        return tuple(c for c in self.corrections if c.start < end and start < c.end)


@lru_cache(maxsize=1)
def _to_simplified() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def _is_cjk(char: str) -> bool:
    return "\u4e00" <= char <= "\u9fff" or "\u3400" <= char <= "\u4dbf"


def normalize(text: str) -> str:
    """Return the normalised form described in the module docstring."""
    folded = unicodedata.normalize("NFKC", _to_simplified().convert(text)).lower()
    out: list[str] = []
    pending_space = False
    for index, char in enumerate(folded):
        if char.isspace():
            pending_space = True
            continue
        category = unicodedata.category(char)[0]
        if char == "." and out and out[-1].isdigit() and folded[index + 1 : index + 2].isdigit():
            out.append(char)
        elif category in _PUNCTUATION_CATEGORIES:
            if out and out[-1] != BOUNDARY:
                out.append(BOUNDARY)
        else:
            if pending_space and out and _is_cjk(out[-1]) and _is_cjk(char):
                out.append(BOUNDARY)
            out.append(char)
        pending_space = False
    return "".join(out).strip(BOUNDARY)


def _fuzzy(initial: str, final: str) -> Syllable:
    return Syllable(_FUZZY_INITIALS.get(initial, initial), _FUZZY_FINALS.get(final, final))


def to_syllables(text: str) -> list[Syllable | None]:
    """Return one merged syllable per character of `text`, None for a non-Chinese character.

    A polyphonic character gets the reading of its word (pypinyin's phrase dictionary).
    """
    syllables: list[Syllable | None] = []
    for run in re.findall(r"[\u3400-\u4dbf\u4e00-\u9fff]+|[^\u3400-\u4dbf\u4e00-\u9fff]+", text):
        if not _is_cjk(run[0]):
            syllables.extend([None] * len(run))
            continue
        initials = lazy_pinyin(run, style=Style.INITIALS, strict=True)
        finals = lazy_pinyin(run, style=Style.FINALS, strict=True)
        syllables.extend(_fuzzy(i, f) for i, f in zip(initials, finals, strict=True))
    return syllables


@dataclass(frozen=True)
class _Term:
    text: str
    syllables: tuple[Syllable, ...]


class SoundAlikeCorrector:
    """Replaces sound-alike spellings of a fixed list of terms, longest terms first."""

    def __init__(
        self, terms: Iterable[str], *, min_similarity: float = MIN_TERM_SIMILARITY, max_misses_long: int = 1
    ) -> None:
        prepared = []
        for term in sorted(set(terms), key=len, reverse=True):
            syllables = to_syllables(term)
            if len(term) < 2 or any(s is None for s in syllables):
                raise ValueError(f"sound-alike term {term!r} must be two or more Chinese characters")
            prepared.append(_Term(term, tuple(s for s in syllables if s is not None)))
        self._terms = tuple(prepared)
        self._min_similarity = min_similarity
        # Near-miss syllables allowed in a term of four or more syllables (three-syllable
        # terms allow one, shorter terms none).
        self._max_misses_long = max_misses_long
        # Every accepted window matches its term exactly in the first syllable, so the
        # terms are indexed by it.
        self._by_first: dict[Syllable, list[_Term]] = {}
        for term in self._terms:
            self._by_first.setdefault(term.syllables[0], []).append(term)

    def _window_similarity(self, term: _Term, heard: list[Syllable | None]) -> float:
        scores = []
        for expected, actual in zip(term.syllables, heard, strict=True):
            scores.append(0.0 if actual is None else expected.similarity(actual))
        misses = sum(score < 1.0 for score in scores)
        if misses == 0:
            return 1.0
        allowed = self._max_misses_long if len(term.syllables) >= 4 else 1
        if len(term.syllables) < 3 or misses > allowed or min(scores) == 0.0:
            return 0.0
        return sum(scores) / len(scores)

    def correct(self, normalized: str) -> CallerText:
        """Return `normalized` with the sound-alike spellings of the terms replaced."""
        syllables = to_syllables(normalized)
        taken = [False] * len(normalized)
        corrections: list[Correction] = []
        for start, first in enumerate(syllables):
            if first is None:
                continue
            for term in self._by_first.get(first, ()):
                end = start + len(term.text)
                if end > len(normalized) or any(taken[start:end]):
                    continue
                heard = normalized[start:end]
                if heard == term.text:
                    # Already spelled right: keep other terms from rewriting it.
                    taken[start:end] = [True] * len(term.text)
                    continue
                similarity = self._window_similarity(term, syllables[start:end])
                if similarity >= self._min_similarity:
                    corrections.append(Correction(start, end, heard, term.text, similarity))
                    taken[start:end] = [True] * len(term.text)
        corrections.sort(key=lambda c: c.start)
        chars = list(normalized)
        for correction in corrections:
            chars[correction.start : correction.end] = list(correction.term)
        return CallerText(normalized=normalized, corrected="".join(chars), corrections=tuple(corrections))
