"""Intent classification and slot extraction on noisy ASR transcripts.

Rules, not a model: every decision can be traced to a phrase in the tables below, and a
turn takes well under a millisecond. Each table lists written forms and, where Whisper
on 8 kHz audio mishears them, the phrase is also matched by sound: both texts are
turned into toneless fuzzy pinyin syllables (asr_fixes.to_syllables, which merges
zh/z, ch/c, sh/s, n/l, ing/in, eng/en), so 心地只 matches 新地址 and 挂事 matches 挂失.
A match by sound gets a lower confidence than a match by characters.

The text is first normalised with the FAQ responder's normaliser (Traditional to
Simplified, punctuation and spaces removed, known ASR confusions fixed), so Cantonese
transcripts in Traditional characters (係, 唔啱) read as 系, 唔啱.

Request or question: "帮我激活" starts the activation flow, "新卡怎么激活" is an FAQ
question. A turn with a question word (怎么, 如何, 吗 ...) and no request word (帮我,
我要 ...) goes to the FAQ responder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from voicebot.dialog.numbers import DIGIT_CHARACTERS, DIGIT_SOUND_ALIKES, parse_chinese_number
from voicebot.dialog.places import place_names
from voicebot.responder.asr_fixes import normalize_transcript, to_syllables

# Intents the engine knows. Flow intents start a flow of the same trigger.
LOST_CARD = "lost_card"
ADDRESS_CHANGE = "address_change"
CARD_ACTIVATION = "card_activation"
BILL_INQUIRY = "bill_inquiry"
CREDIT_LIMIT_INCREASE = "credit_limit_increase"
HUMAN_REQUEST = "human_request"
FRAUD_REPORT = "fraud_report"
MONEY_TRANSFER = "money_transfer"
COMPLAINT = "complaint"
YES = "yes"
NO = "no"
CORRECTION = "correction"
REPEAT = "repeat"
GOODBYE = "goodbye"
INFORM = "inform"  # the turn gave the value a flow step asked for (set by the responder)
FAQ = "faq"  # anything else: the fallback responder answers it
NOTHING = "nothing"  # empty transcript and no keypad digits

FLOW_INTENTS = (LOST_CARD, ADDRESS_CHANGE, CARD_ACTIVATION, BILL_INQUIRY, CREDIT_LIMIT_INCREASE)
ESCALATION_INTENTS = {HUMAN_REQUEST: "human_request", FRAUD_REPORT: "fraud", MONEY_TRANSFER: "money_movement",
                      COMPLAINT: "emotion"}

CHARACTER_CONFIDENCE = 0.9
SOUND_CONFIDENCE = 0.7
PATTERN_CONFIDENCE = 0.85


@dataclass(frozen=True)
class IntentRule:
    """Phrases and regular expressions that signal one intent.

    `phrases` match as written, and by sound when `by_sound` is set and the phrase has
    two or more characters. `patterns` are regular expressions on the normalised text.
    """

    intent: str
    phrases: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    by_sound: bool = True
    # A question about the caller's own account (我这个月账单要还多少钱) stays with the
    # flow even though it has a question word.
    personal: str | None = None


# Checked in this order; the first rule that matches decides. Escalations come first
# because a fraud report mentioning a lost card must reach a person.
INTENT_RULES: tuple[IntentRule, ...] = (
    IntentRule(
        HUMAN_REQUEST,
        phrases=("转人工", "人工客服", "人工服务", "找人工", "要人工", "真人", "客服人员", "接线员",
                 "人工坐席", "搵人", "同人讲", "转接人工", "找客服"),
        patterns=(r"^人工$", r"(跟|和|同)(真)?人(说|讲|谈)", r"找个?(真)?人"),
    ),
    IntentRule(
        FRAUD_REPORT,
        phrases=("盗刷", "不是我本人", "不是本人", "不是我刷的", "不是我操作", "诈骗", "骗子", "钓鱼",
                 "可疑交易", "不认识的交易", "陌生交易", "盗用", "唔系我碌"),
        patterns=(r"被(人)?刷了", r"短信.{0,12}(链接|冻结)", r"(链接|冻结).{0,12}短信"),
    ),
    IntentRule(
        MONEY_TRANSFER,
        phrases=("转账", "汇款", "转钱", "打钱", "过数"),
        patterns=(r"把.{0,8}钱转", r"钱.{0,6}转(到|给|去)", r"转.{0,4}(万|千|百)(块|元)"),
        by_sound=False,
    ),
    IntentRule(
        COMPLAINT,
        phrases=("投诉", "太烂了", "垃圾系统", "打了三次", "打了好几次", "气死"),
        by_sound=False,
    ),
    IntentRule(
        CORRECTION,
        phrases=("我说错了", "说错了", "讲错了", "讲错咗", "搞错了", "我刚才说错", "更正一下"),
        patterns=(r"说错", r"讲错", r"^(不对|不是)[，,]?(应该)?是.", r"^应该是."),
    ),
    IntentRule(
        LOST_CARD,
        phrases=("挂失", "卡丢了", "丢失", "不见了", "找不到了", "被偷", "被抢", "遗失", "卡掉了", "唔见咗",
                 "跌咗", "冇咗张卡", "偷咗"),
        patterns=(r"卡.{0,4}丢", r"丢.{0,3}卡", r"钱包.{0,3}丢"),
    ),
    IntentRule(
        ADDRESS_CHANGE,
        phrases=("改地址", "修改地址", "地址变更", "变更地址", "更改地址", "换地址", "更新地址", "搬家", "搬屋",
                 "账单地址", "邮寄地址", "通讯地址"),
        patterns=(r"改.{0,6}地址", r"地址.{0,4}(改|换|变更|更新)"),
    ),
    IntentRule(
        CARD_ACTIVATION,
        phrases=("激活", "开卡", "开通新卡", "启用"),
    ),
    IntentRule(
        CREDIT_LIMIT_INCREASE,
        phrases=("提额", "提高额度", "提升额度", "调高额度", "增加额度", "加额度", "升额度", "额度提高"),
        patterns=(r"(提高|提升|调高|增加|加|调整|升).{0,6}额度", r"额度.{0,4}(提高|提升|调高|增加|调到|太低|不够)"),
    ),
    IntentRule(
        BILL_INQUIRY,
        phrases=("查账单", "本期账单", "这个月的账单", "要还多少", "还多少钱", "欠多少", "应还", "账单金额",
                 "使咗几多", "要还几多"),
        patterns=(r"查.{0,6}账单", r"账单.{0,4}(多少|几多)", r"(这个|今个|本)月.{0,6}(账单|还款)"),
        personal=r"我(的|这|本|上|今)?.{0,4}(账单|欠|要还|应还)",
    ),
    IntentRule(
        REPEAT,
        phrases=("再说一遍", "再说一次", "重复一下", "没听清", "没听清楚", "再讲一次", "讲多次", "再讲一遍",
                 "你说什么", "乜话"),
        patterns=(r"^什么$", r"^啊$"),
    ),
)

# Yes and no as callers say them. Matched only near the start of the turn.
YES_PHRASES = ("对", "是的", "是", "没错", "对的", "好的", "好", "可以", "嗯", "行", "确认", "正确", "没问题", "对啊",
               "是啊", "ok", "okay", "系", "系啊", "系呀", "啱", "啱啊", "冇错", "得", "好啊", "确定", "对了")
NO_PHRASES = ("不是", "不对", "不用", "算了", "错了", "不要", "不行", "没有", "不", "否", "唔系", "唔啱", "唔使",
              "唔要", "唔好", "唔得", "冇", "不确认", "不正确", "取消")
_YES_NO_WINDOW = 6  # characters from the start of the turn in which a yes or no counts

_QUESTION_WORDS = re.compile(r"怎么|怎样|如何|什么|多少钱|为什么|吗|能不能|可不可以|是否|点样|点解|咩|几时|哪里")
_REQUEST_WORDS = re.compile(r"帮我|给我|替我|帮忙|麻烦你|我要|我想要|我想|请你|我需要|想办|要办|现在就|唔该")

GOODBYE_PHRASES = ("再见", "拜拜", "没有了", "没事了", "就这样", "谢谢", "多谢", "唔该晒", "冇嘢喇", "挂了",
                   "不用了", "好的谢谢", "没其他", "没有别的")
_FILLERS = re.compile(r"^(嗯|啊|呃|那|那个|就是|喂|哦|好|好的|行)+")
_ANSWER_PREFIX = re.compile(
    r"^(嗯|啊|呃|哦|不对|不是|唔系|唔啱|错了|我说错了|说错了|我讲错了|讲错了|应该是|是|系|对|好)+"
)

THEFT_PATTERN = re.compile(r"偷|抢|盗")


@dataclass(frozen=True)
class NluResult:
    """Classification of one transcript: intent, yes or no, and flags."""

    text: str  # the normalised transcript
    intent: str
    confidence: float  # 0..1
    yes_no: str | None = None  # "yes", "no" or None, from the start of the turn
    correction: bool = False
    question: bool = False  # a question word without a request word
    evidence: str = ""  # the phrase or pattern that decided the intent; may contain caller text, do not log
    cues: tuple[str, ...] = ()  # extra facts, e.g. "theft" for a stolen card


@dataclass(frozen=True)
class ExtractedSlot:
    """A slot value found in a turn. `complete` is False for a partial value (three of four digits)."""

    value: str
    confidence: float
    complete: bool = True
    source: str = "speech"
    notes: tuple[str, ...] = field(default=())


@lru_cache(maxsize=8192)
def _syllable(char: str) -> str:
    if "\u4e00" <= char <= "\u9fff":
        return to_syllables(char, fuzzy=True)[0]
    return char


class SoundText:
    """A normalised text with one fuzzy pinyin syllable per character, for matching by sound."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.syllables = [_syllable(char) for char in text]
        self._joined = "|" + "|".join(self.syllables) + "|"
        self._starts: dict[int, int] = {}
        offset = 0
        for index, syllable in enumerate(self.syllables):
            self._starts[offset] = index
            offset += len(syllable) + 1

    def find(self, phrase: str, *, by_sound: bool = True) -> tuple[int, int, bool] | None:
        """Return (start, end, by_sound) of the first match of `phrase`, or None.

        A match as written is preferred; a match by sound needs two or more characters.
        """
        position = self.text.find(phrase)
        if position >= 0:
            return position, position + len(phrase), False
        if not by_sound or len(phrase) < 2:
            return None
        key = _phrase_key(phrase)
        offset = self._joined.find(key)
        if offset < 0:
            return None
        start = self._starts[offset]
        return start, start + len(phrase), True


@lru_cache(maxsize=1024)
def _phrase_key(phrase: str) -> str:
    return "|" + "|".join(_syllable(char) for char in phrase) + "|"


def normalize(text: str) -> str:
    """Return the matching form of a transcript (the FAQ normaliser, then dialog-specific fixes)."""
    return normalize_transcript(text)


def detect_yes_no(text: str) -> str | None:
    """Return "yes" or "no" when the turn starts with one, else None.

    A one-character answer (对, 是, 不, 系) counts only as the first character after
    fillers, so the 是 of 我的地址是 is no yes. A longer phrase counts within the first
    _YES_NO_WINDOW characters. The earliest phrase wins, and of two at the same place the
    longer: 不是 beats 是, 唔啱 beats 啱, 没错 is a yes.
    """
    stripped = _FILLERS.sub("", text)
    if not stripped:
        # Only fillers: "嗯" and "好的" are a yes on their own, "喂" and "那个" are not.
        return "yes" if re.search(r"嗯|好|行", text) else None
    head = stripped[:_YES_NO_WINDOW]
    best: tuple[int, int, str] | None = None
    for answer, phrases in (("no", NO_PHRASES), ("yes", YES_PHRASES)):
        for phrase in phrases:
            position = head.find(phrase)
            if position < 0 or (len(phrase) == 1 and position > 0):
                continue
            candidate = (position, -len(phrase), answer)
            if best is None or candidate < best:
                best = candidate
    if best is None:
        # "好的，..." lost its yes to _FILLERS; a filler before other words is still a yes.
        return "yes" if re.match(r"^(好|好的|行|嗯)[^不]", text) else None
    return best[2]


def strip_answer_prefix(text: str) -> str:
    """Remove a leading yes, no or correction (不对，是…) so that the value after it can be read."""
    return _ANSWER_PREFIX.sub("", normalize(text))


def is_goodbye(text: str) -> bool:
    """Return True when the turn is only a closing (再见, 没有了谢谢), not a sentence that ends with 拜拜."""
    rest = text
    found = False
    for phrase in sorted(GOODBYE_PHRASES, key=len, reverse=True):
        if phrase in rest:
            found = True
            rest = rest.replace(phrase, "")
    rest = _FILLERS.sub("", rest)
    return found and len(rest) <= 2


def classify(text: str) -> NluResult:
    """Classify a raw transcript into an intent, with yes/no, correction and question flags."""
    normalized = normalize(text)
    if not normalized:
        return NluResult(text="", intent=NOTHING, confidence=1.0)
    sound = SoundText(normalized)
    yes_no = detect_yes_no(normalized)
    question = bool(_QUESTION_WORDS.search(normalized)) and not _REQUEST_WORDS.search(normalized)
    cues = ("theft",) if THEFT_PATTERN.search(normalized) else ()

    for rule in INTENT_RULES:
        hit = _match_rule(rule, sound)
        if hit is None:
            continue
        evidence, confidence = hit
        intent = rule.intent
        personal = rule.personal is not None and re.search(rule.personal, normalized) is not None
        if intent in FLOW_INTENTS and question and intent != LOST_CARD and not personal:
            # "新卡怎么激活" asks how, it does not ask the bot to act.
            return NluResult(normalized, FAQ, confidence, yes_no, False, True, evidence, cues)
        correction = intent == CORRECTION
        if intent == REPEAT and len(normalized) > 8:
            continue
        return NluResult(normalized, intent, confidence, yes_no, correction, question, evidence, cues)

    if is_goodbye(normalized):
        return NluResult(normalized, GOODBYE, CHARACTER_CONFIDENCE, yes_no, False, question, "goodbye", cues)
    if yes_no is not None and len(normalized) <= 8:
        return NluResult(normalized, YES if yes_no == "yes" else NO, CHARACTER_CONFIDENCE, yes_no, False, question)
    return NluResult(normalized, FAQ, 0.5, yes_no, False, question, "", cues)


def _match_rule(rule: IntentRule, sound: SoundText) -> tuple[str, float] | None:
    for phrase in rule.phrases:
        found = sound.find(phrase, by_sound=rule.by_sound)
        if found is not None:
            return phrase, SOUND_CONFIDENCE if found[2] else CHARACTER_CONFIDENCE
    for pattern in rule.patterns:
        if re.search(pattern, sound.text):
            return pattern, PATTERN_CONFIDENCE
    return None


# ---------------------------------------------------------------- slots

# Phrases that introduce card digits; removed before the digits are read, so the 四 of
# 后四位 is not taken for a digit.
_DIGIT_LEAD_INS = ("卡号后四位", "卡号的后四位", "最后四位", "后四位", "末四位", "尾号", "尾数", "后4位", "卡号",
                   "四位数", "四个数", "号码")
_DIGIT_SEPARATORS = set(" ,，、-")


def extract_digits(text: str, *, length: int) -> ExtractedSlot | None:
    """Find a run of `length` spoken or written digits, such as the card's last four.

    Returns None when the text holds no digit. Confidence: 0.95 for exactly `length`
    digits written as digits or numerals; 0.6 when a sound-alike character (溜 for 六)
    was read as a digit; 0.8 for the last `length` digits of a longer run of twelve or
    more (a whole card number); 0.3 and `complete=False` for a run of the wrong length,
    so the flow asks again or asks for the keypad.
    """
    normalized = normalize(text)
    sound = SoundText(normalized)
    for lead_in in _DIGIT_LEAD_INS:
        found = sound.find(lead_in)
        if found is not None:
            normalized = normalized[: found[0]] + "，" + normalized[found[1]:]
            sound = SoundText(normalized)
    runs = _digit_runs(normalized)
    if not runs:
        return None
    exact = [run for run in runs if len(run[0]) == length]
    if exact:
        digits, sound_alikes = min(exact, key=lambda run: run[1])
        return ExtractedSlot(digits, 0.6 if sound_alikes else 0.95)
    digits, _ = max(runs, key=lambda run: len(run[0]))
    if len(digits) >= 12:
        return ExtractedSlot(digits[-length:], 0.8, notes=("whole_number",))
    return ExtractedSlot(digits, 0.3, complete=False, notes=("wrong_length",))


def _digit_runs(text: str) -> list[tuple[str, int]]:
    """Return (digits, number of sound-alike characters read as digits) for each digit run.

    A run needs at least one real digit or numeral. Besides the whole run, the forms
    without its leading or trailing sound-alikes are returned too, because 要六二八八
    may be 要 (want) followed by four digits.
    """
    runs: list[tuple[str, int]] = []
    current: list[tuple[str, bool]] = []

    def close() -> None:
        if any(not alike for _, alike in current):
            real = [index for index, (_, alike) in enumerate(current) if not alike]
            first, last = real[0], real[-1]
            for start in range(0, first + 1):
                for end in range(last + 1, len(current) + 1):
                    part = current[start:end]
                    runs.append(("".join(digit for digit, _ in part), sum(1 for _, alike in part if alike)))
        current.clear()

    for char in text:
        if char in DIGIT_CHARACTERS:
            current.append((DIGIT_CHARACTERS[char], False))
        elif char in DIGIT_SOUND_ALIKES:
            current.append((DIGIT_SOUND_ALIKES[char], True))
        elif char in _DIGIT_SEPARATORS and current:
            continue
        else:
            close()
    close()
    return runs


def digits_from_dtmf(keys: str) -> tuple[str, bool]:
    """Return the digits pressed and whether the caller ended them with the # terminator.

    `*` clears what was pressed before it, so a caller can start again.
    """
    if "*" in keys:
        keys = keys.rsplit("*", 1)[1]
    terminated = "#" in keys
    digits = "".join(char for char in keys.split("#", 1)[0] if char.isdigit())
    return digits, terminated


# Phrases before an address; the address is what follows. Also matched by sound, so
# 心地只是 (a real 8 kHz transcript) finds 新地址是.
_ADDRESS_LEAD_INS = ("新地址是", "新地址系", "地址改成", "地址改为", "地址换成", "地址是", "地址系", "改成", "改为",
                     "改到", "搬到了", "搬到", "搬去了", "搬去", "住在", "寄到", "新地址", "地址")
_ADMIN = re.compile(r"省|市|区|县|镇|乡|自治州")
_ROAD = re.compile(r"路|街|大道|巷|弄|胡同|道")
_BUILDING = re.compile(r"号|栋|幢|楼|室|单元|座|小区|花园|大厦|公寓|新村|苑")
_ADDRESS_TAIL = re.compile(r"(了|啦|呢|吧|啊|呀|哦|嘛|谢谢|拜拜|再见|好吗|可以吗|行吗)+$")
_ADDRESS_HEAD = re.compile(r"^(是|系|在|到|为|成|我的|我|嗯|那个|就是)+")
MIN_ADDRESS_CHARACTERS = 6


def extract_address(text: str, *, whole_turn: bool = False) -> ExtractedSlot | None:
    """Find a Chinese postal address span, such as 上海市浦东新区世纪大道一百号.

    The span starts after a lead-in (新地址是, 搬到) or, with `whole_turn` (the flow just
    asked for the address), at the start of the turn. Sound-alike place names in it are
    corrected with `dialogs/places.yaml` (voicebot.dialog.places). Confidence grows with the parts
    present (district or city, road, house number): 0.9 with all three or two plus a
    number, 0.7 with two, 0.4 with one, 0.2 with none. Returns None for fewer than
    MIN_ADDRESS_CHARACTERS characters.
    """
    normalized = normalize(text)
    sound = SoundText(normalized)
    span: str | None = None
    for lead_in in _ADDRESS_LEAD_INS:
        found = sound.find(lead_in)
        if found is not None:
            span = normalized[found[1]:]
            break
    if span is None:
        if not whole_turn:
            return None
        span = normalized
    span = _ADDRESS_TAIL.sub("", _ADDRESS_HEAD.sub("", span))
    if len(span) < MIN_ADDRESS_CHARACTERS:
        return None
    names = place_names()
    if names is not None:
        span = names.correct(span)
    parts = sum(1 for pattern in (_ADMIN, _ROAD, _BUILDING) if pattern.search(span))
    has_number = any(char in DIGIT_CHARACTERS for char in span)
    if parts == 3 or (parts == 2 and has_number and _BUILDING.search(span)):
        confidence = 0.9
    else:
        confidence = {2: 0.7, 1: 0.4}.get(parts, 0.2)
    return ExtractedSlot(span, confidence, complete=parts >= 2)


_AMOUNT = re.compile(
    r"([0-9０-９零〇一二两三四五六七八九十百千万亿点.]+)\s*(万块|万元|万|千块|千元|块钱|块|元|蚊)?"
)


def extract_amount(text: str) -> ExtractedSlot | None:
    """Find an amount of money in yuan: 五万, 三万五, 两千块, 50000元, 5万.

    Returns the largest amount found, in whole yuan as a decimal string. Confidence is
    0.9 with a unit (元, 块, 万) and 0.7 without.
    """
    normalized = normalize(text)
    best: tuple[float, bool] | None = None
    for match in _AMOUNT.finditer(normalized):
        number, unit = match.group(1), match.group(2) or ""
        value = parse_chinese_number(number + ("万" if unit.startswith("万") else ""))
        if value is None or value <= 0:
            continue
        has_unit = bool(unit) or any(char in number for char in "万千百")
        if best is None or value > best[0]:
            best = (value, has_unit)
    if best is None:
        return None
    value, has_unit = best
    return ExtractedSlot(str(int(round(value))), 0.9 if has_unit else 0.7)


def extract_yes_no(text: str) -> ExtractedSlot | None:
    """Return "yes" or "no" as a slot value when the turn starts with one."""
    answer = detect_yes_no(normalize(text))
    if answer is None:
        return None
    return ExtractedSlot(answer, CHARACTER_CONFIDENCE)
