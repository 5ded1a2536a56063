"""Text cue detectors and the call-level detector of repeated ASR failures.

Every detector returns `Hit`s: the cue, the rule id, the span of the caller text that
matched, the score and the sound-alike corrections the match relied on. A hit explains
itself: `fraud.card_misused` at 5..8 of "我的卡被倒刷了", read as 盗刷 with similarity 1.0.
The detectors are pure functions of their input and hold no state, except
AsrFailureTracker, which belongs to one call.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from voicebot.escalation import lexicon
from voicebot.escalation.text import BOUNDARY, CallerText, Correction, SoundAlikeCorrector, normalize

# Cue names, as used in dialogs/escalation.yaml.
FRAUD = "fraud"
MONEY_MOVEMENT = "money_movement"
LOCATION_MISMATCH = "location_mismatch"
EMOTION = "emotion"
HUMAN_REQUEST = "human_request"
AROUSAL = "arousal"
ASR_FAILURE = "asr_failure"
TEXT_CUES: tuple[str, ...] = (FRAUD, MONEY_MOVEMENT, LOCATION_MISMATCH, EMOTION, HUMAN_REQUEST)
ALL_CUES: tuple[str, ...] = (*TEXT_CUES, AROUSAL, ASR_FAILURE)

# Default money-movement threshold in yuan; the policy file may set another.
DEFAULT_LARGE_AMOUNT_YUAN = 10_000.0


@dataclass(frozen=True)
class Hit:
    """One piece of evidence for a cue.

    `matched` contains the caller's words and is personal data: it goes to the rep with the
    handoff and never into a log line.
    """

    cue: str
    rule_id: str
    score: float  # 0..1, the rule's score times the similarity of any sound-alike correction used
    start: int = 0  # span in CallerText.normalized; 0..0 for cues that are not about text
    end: int = 0
    matched: str = ""
    corrections: tuple[Correction, ...] = ()


def _clause_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a rule pattern in which an unescaped `.` does not cross a clause boundary."""
    return re.compile(re.sub(r"(?<!\\)\.", f"[^{BOUNDARY}]", pattern))


@dataclass(frozen=True)
class _CompiledRule:
    id: str
    pattern: re.Pattern[str]
    score: float
    unless: tuple[re.Pattern[str], ...]


def _compile(specs: Sequence[lexicon.RuleSpec]) -> tuple[_CompiledRule, ...]:
    return tuple(
        _CompiledRule(
            spec.id, _clause_pattern(spec.pattern), spec.score, tuple(_clause_pattern(u) for u in spec.unless)
        )
        for spec in specs
    )


def _vetoed(rule: _CompiledRule, text: str, start: int, end: int) -> bool:
    for guard in rule.unless:
        for match in guard.finditer(text):
            if match.start() < end and start < match.end():
                return True
    return False


class RuleDetector:
    """A text cue detected by phrase rules (lexicon.RuleSpec)."""

    def __init__(self, cue: str, rules: Sequence[lexicon.RuleSpec]) -> None:
        self.cue = cue
        self._rules = _compile(rules)

    @property
    def rule_ids(self) -> tuple[str, ...]:
        """Ids of the rules, in order."""
        return tuple(rule.id for rule in self._rules)

    def detect(self, text: CallerText) -> list[Hit]:
        """Return at most one hit per rule: the first match that no `unless` pattern vetoes."""
        hits = []
        for rule in self._rules:
            for match in rule.pattern.finditer(text.corrected):
                start, end = match.span()
                if start == end or _vetoed(rule, text.corrected, start, end):
                    continue
                hits.append(
                    Hit(
                        cue=self.cue,
                        rule_id=rule.id,
                        score=round(rule.score * text.similarity_over(start, end), 3),
                        start=start,
                        end=end,
                        matched=text.normalized[start:end],
                        corrections=text.corrections_over(start, end),
                    )
                )
                break
        return hits


_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_SMALL_UNITS = {"十": 10, "百": 100, "千": 1000}
_LARGE_UNITS = {"万": 10_000, "亿": 100_000_000}


def parse_chinese_number(text: str) -> float | None:
    """Return the value of a number in Arabic digits or Chinese numerals (五万, 两千五百, 1.5), or None."""
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    total = 0
    section = 0
    digit: int | None = None
    for char in text:
        if char in _DIGITS:
            digit = _DIGITS[char]
        elif char in _SMALL_UNITS:
            section += (1 if digit is None else digit) * _SMALL_UNITS[char]
            digit = None
        elif char in _LARGE_UNITS:
            total += (section + (digit or 0)) * _LARGE_UNITS[char]
            section = 0
            digit = None
        else:
            return None
    return float(total + section + (digit or 0))


_AMOUNT = re.compile(
    r"(?P<number>\d+(\.\d+)?|[零〇一二两三四五六七八九十百千万亿]+)(?P<scale>万|千|k|w)?(?P<unit>块钱|块|元|人民币|美元|美金|港币|港元|蚊|刀)?"
)
_SCALES = {"万": 10_000, "w": 10_000, "千": 1000, "k": 1000}


def find_amounts(text: str) -> list[tuple[int, int, float]]:
    """Return (start, end, yuan) for each sum of money in `text`.

    A number counts as money only with a currency word (块, 元) or a scale word (万, 千)
    after it, so 三次 and a card's last four digits are not amounts. Foreign currencies
    are taken at face value: the threshold is a rough size, not an exchange.
    """
    amounts = []
    for match in _AMOUNT.finditer(text):
        scale = match.group("scale")
        unit = match.group("unit")
        number = match.group("number")
        if scale is None and unit is None and not any(u in number for u in "万亿千"):
            continue
        value = parse_chinese_number(number)
        if value is None:
            continue
        if scale is not None:
            value *= _SCALES[scale]
        amounts.append((match.start(), match.end(), value))
    return amounts


class MoneyMovementDetector(RuleDetector):
    """Transfers, remittances, cash-outs, money moved off the card, and large sums being moved."""

    LARGE_AMOUNT_RULE = "money.large_amount"

    def __init__(self) -> None:
        super().__init__(MONEY_MOVEMENT, lexicon.MONEY_RULES)
        self._verbs = _clause_pattern(lexicon.MOVEMENT_VERBS)

    @property
    def rule_ids(self) -> tuple[str, ...]:
        """Ids of the rules, in order."""
        return (*super().rule_ids, self.LARGE_AMOUNT_RULE)

    def detect(self, text: CallerText, *, large_amount_yuan: float = DEFAULT_LARGE_AMOUNT_YUAN) -> list[Hit]:
        """Return the phrase-rule hits and a `money.large_amount` hit for a large sum being moved."""
        hits = super().detect(text)
        if self._verbs.search(text.corrected) is None:
            return hits
        for start, end, yuan in find_amounts(text.corrected):
            if yuan >= large_amount_yuan:
                hits.append(
                    Hit(
                        cue=self.cue,
                        rule_id=self.LARGE_AMOUNT_RULE,
                        score=round(lexicon.CLEAR * text.similarity_over(start, end), 3),
                        start=start,
                        end=end,
                        matched=text.normalized[start:end],
                        corrections=text.corrections_over(start, end),
                    )
                )
                break
        return hits


_PLACE_NAMES = "|".join(sorted(lexicon.PLACES, key=len, reverse=True))
# NOTE: a place outside lexicon.PLACES is found only when it ends in 市, 省, 国, 州 or 岛,
# so 巴塞罗那 is missed. Add common destinations to lexicon.PLACES.
_PLACE = rf"(?P<place>{_PLACE_NAMES}|[\u4e00-\u9fff]{{1,5}}?(市|省|国|州|岛))"
_CHARGE = r"(被刷|刷了|刷咗|刷卡|消费|扣款|扣了|扣咗|交易|被拒|拒绝|拒付|刷不了|碌咗|碌卡|有一笔|支付|付款|买了|用了|取了|取钱)"
# Where a charge happened: 在迪拜被刷, 喺香港碌咗, 迪拜那边有一笔消费, 境外消费.
_CHARGE_AT = [
    _clause_pattern(rf"(在|喺|于){_PLACE}(那边|那里|嗰边)?(的|嘅)?.{{0,6}}?{_CHARGE}"),
    _clause_pattern(rf"(?P<place>{_PLACE_NAMES})(那边|那里|嗰边)?(的|嘅)?.{{0,4}}?{_CHARGE}"),
]
# The caller's own place (我人在上海), or a statement that they were not there (我没去过).
_CALLER_AT = _clause_pattern(rf"(我|本人)(人|现在|一直|今天|明明|当时|都|人一直|一直都)*(在|喺|人在){_PLACE}")
_CALLER_NOT_THERE = _clause_pattern(
    r"(我|本人)?(根本|从来|都|也|最近)?(没有|没|冇|未)(去过|去|出过国|出国|离开过|离开|出境|出过境)"
)


def _canonical(place: str) -> tuple[str, bool]:
    if place in lexicon.PLACES:
        return lexicon.PLACES[place]
    # A place found by its suffix (…市, …国): a country suffix means abroad.
    return place, not place.endswith(("国", "州", "岛"))


class LocationMismatchDetector:
    """Money spent or declined in one place while the caller says they are somewhere else."""

    cue = LOCATION_MISMATCH
    RULE_OTHER_PLACE = "location.charge_elsewhere"
    RULE_NOT_THERE = "location.caller_not_there"

    @property
    def rule_ids(self) -> tuple[str, ...]:
        """Ids of the rules, in order."""
        return (self.RULE_OTHER_PLACE, self.RULE_NOT_THERE)

    def detect(self, text: CallerText) -> list[Hit]:
        """Return one hit when a charge place and the caller's place differ, or the caller was not there."""
        corrected = text.corrected
        charge = None
        for pattern in _CHARGE_AT:
            charge = pattern.search(corrected)
            if charge is not None:
                break
        if charge is None:
            return []
        charge_place, charge_domestic = _canonical(charge.group("place"))

        rule_id = None
        other_end = charge.end()
        other_start = charge.start()
        for caller in _CALLER_AT.finditer(corrected):
            caller_place, caller_domestic = _canonical(caller.group("place"))
            if caller_place == charge_place:
                continue
            if caller_place == lexicon.HOME_COUNTRY and charge_domestic:
                continue
            if charge_place == lexicon.HOME_COUNTRY and caller_domestic:
                continue
            rule_id = self.RULE_OTHER_PLACE
            other_start, other_end = min(other_start, caller.start()), max(other_end, caller.end())
            break
        if rule_id is None:
            not_there = _CALLER_NOT_THERE.search(corrected)
            if not_there is None:
                return []
            rule_id = self.RULE_NOT_THERE
            other_start, other_end = min(other_start, not_there.start()), max(other_end, not_there.end())
        return [
            Hit(
                cue=self.cue,
                rule_id=rule_id,
                score=round(lexicon.STRONG * text.similarity_over(other_start, other_end), 3),
                start=other_start,
                end=other_end,
                matched=text.normalized[other_start:other_end],
                corrections=text.corrections_over(other_start, other_end),
            )
        ]


class TextCueDetectors:
    """All text cue detectors with one shared sound-alike corrector."""

    def __init__(self) -> None:
        self.corrector = SoundAlikeCorrector(lexicon.TERMS)
        self.fraud = RuleDetector(FRAUD, lexicon.FRAUD_RULES)
        self.money_movement = MoneyMovementDetector()
        self.location_mismatch = LocationMismatchDetector()
        self.emotion = RuleDetector(EMOTION, lexicon.EMOTION_RULES)
        self.human_request = RuleDetector(HUMAN_REQUEST, lexicon.HUMAN_RULES)

    def prepare(self, transcript: str) -> CallerText:
        """Normalise a transcript and correct its sound-alike spellings."""
        return self.corrector.correct(normalize(transcript))

    def detect(self, transcript: str, *, large_amount_yuan: float = DEFAULT_LARGE_AMOUNT_YUAN) -> list[Hit]:
        """Return the hits of every text cue, in TEXT_CUES order."""
        text = self.prepare(transcript)
        return [
            *self.fraud.detect(text),
            *self.money_movement.detect(text, large_amount_yuan=large_amount_yuan),
            *self.location_mismatch.detect(text),
            *self.emotion.detect(text),
            *self.human_request.detect(text),
        ]


class AsrFailureTracker:
    """Counts consecutive caller turns that the bot could not use.

    A turn counts as failed when its ASR confidence is below `min_confidence`, when
    nothing usable was heard, or when the responder could only ask the caller to
    rephrase. A usable turn resets the count.
    """

    RULE_ID = "asr.repeated_failure"

    def __init__(self, *, min_confidence: float = 0.5, consecutive_turns: int = 3) -> None:
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be within 0..1, got {min_confidence}")
        if consecutive_turns < 1:
            raise ValueError(f"consecutive_turns must be 1 or more, got {consecutive_turns}")
        self.min_confidence = min_confidence
        self.consecutive_turns = consecutive_turns
        self.failed_turns = 0
        self.turns = 0

    def add_turn(self, *, confidence: float, failed: bool = False) -> None:
        """Record one finished caller turn: its ASR confidence (0..1) and whether it failed."""
        self.turns += 1
        if failed or confidence < self.min_confidence:
            self.failed_turns += 1
        else:
            self.failed_turns = 0

    def detect(self) -> list[Hit]:
        """Return a hit while the last `consecutive_turns` turns or more failed."""
        if self.failed_turns < self.consecutive_turns:
            return []
        return [Hit(cue=ASR_FAILURE, rule_id=self.RULE_ID, score=1.0)]
