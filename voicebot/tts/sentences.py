"""Sentence splitting for streamed speech synthesis.

The synthesizer speaks a reply piece by piece, so the caller hears the first piece
while later ones are still being synthesized. Short first pieces mean early audio,
but every cut is a pause in the speech, so cuts go only where a speaker pauses anyway:
at sentence ends, then at commas.
"""

from __future__ import annotations

import re

__all__ = ["split_sentences"]

# A sentence ends at 。！？；!?; (with closing quotes or brackets kept on its side), at a
# newline, or at an ASCII full stop followed by a space ("Thank you. Bye").
_SENTENCE = re.compile(r"[^。！？；!?;\n]*?(?:[。！？；!?;]+[”’」』）)\"']*|\.(?=\s)|\n|$)")
# Clause breaks inside a long sentence. An ASCII comma between digits is a thousands
# separator (1,234), not a break. Colons are no break because the label before one
# (尾号：6288) makes the normaliser read the number digit by digit.
_CLAUSE_BREAK = re.compile(r"[，、]|,(?![0-9])|(?<![0-9]),")
# Characters that continue a number or an ASCII word, so no cut goes between two of them.
_WORD_CHARACTERS = re.compile(r"[0-9A-Za-z.,:%¥￥$*\-]")


def split_sentences(text: str, *, max_chars: int = 40) -> list[str]:
    """Split `text` into pieces of at most `max_chars` characters where possible.

    Cuts go at 。！？；!?; and newlines, then at ，、 in sentences longer than
    `max_chars`. A clause longer than `max_chars` is cut at the last character boundary
    that is neither next to a digit nor inside an ASCII word. If it has none, it stays whole and
    the piece is longer than `max_chars`. Empty pieces and pieces of only punctuation
    are dropped.
    """
    if max_chars < 1:
        raise ValueError(f"split_sentences: max_chars must be at least 1, got {max_chars}")

    pieces: list[str] = []
    for match in _SENTENCE.finditer(text):
        sentence = match.group(0).strip()
        if not _has_speech(sentence):
            continue
        if len(sentence) <= max_chars:
            pieces.append(sentence)
        else:
            pieces.extend(_split_long_sentence(sentence, max_chars))
    return pieces


def _has_speech(text: str) -> bool:
    return any(char.isalnum() for char in text)


def _split_long_sentence(sentence: str, max_chars: int) -> list[str]:
    """Group the clauses of `sentence` greedily into pieces of at most `max_chars`."""
    clauses = _split_clauses(sentence)
    pieces: list[str] = []
    current = ""
    for clause in clauses:
        if current and len(current) + len(clause) > max_chars:
            pieces.append(current)
            current = ""
        current += clause
        while len(current) > max_chars:
            cut = _safe_cut(current, max_chars)
            if cut is None:
                break
            pieces.append(current[:cut])
            current = current[cut:]
    if current:
        pieces.append(current)
    return [piece.strip() for piece in pieces if _has_speech(piece)]


def _split_clauses(sentence: str) -> list[str]:
    clauses: list[str] = []
    start = 0
    for match in _CLAUSE_BREAK.finditer(sentence):
        clauses.append(sentence[start : match.end()])
        start = match.end()
    if start < len(sentence):
        clauses.append(sentence[start:])
    return clauses


def _safe_cut(text: str, max_chars: int) -> int | None:
    """Return the largest cut position <= `max_chars` that splits no number or word.

    No cut goes next to a digit either, so a number keeps its unit (6288元) and its
    label (尾号6288), which decide how the normaliser reads it.
    """
    for cut in range(max_chars, 0, -1):
        before, after = text[cut - 1], text[cut]
        if before.isdigit() or after.isdigit():
            continue
        if not (_WORD_CHARACTERS.match(before) and _WORD_CHARACTERS.match(after)):
            return cut
    return None
