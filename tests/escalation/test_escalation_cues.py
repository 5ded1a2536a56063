"""Text cue detectors: explainable hits, sound-alike tolerance, and no firing on topic questions."""

from __future__ import annotations

import pytest

from voicebot.escalation import TextCueDetectors
from voicebot.escalation.cues import AsrFailureTracker, find_amounts, parse_chinese_number
from voicebot.escalation.text import SoundAlikeCorrector, normalize


@pytest.fixture(scope="module")
def detectors() -> TextCueDetectors:
    """Real detectors with the shipped lexicon."""
    return TextCueDetectors()


def _rules(detectors: TextCueDetectors, text: str) -> set[str]:
    return {hit.rule_id for hit in detectors.detect(text)}


def test_normalize_boundaries():
    """Spaces between Chinese characters become clause boundaries, spaces next to digits go."""
    assert normalize("我要给我儿子转账 5 万块钱") == "我要给我儿子转账5万块钱"
    assert normalize("被刷了一笔 可是我人在上海 是不是被刷了呢?") == "被刷了一笔，可是我人在上海，是不是被刷了呢"
    assert normalize("我要轉人工！") == "我要转人工"
    assert normalize("取现 1.5 万") == "取现1.5万"


def test_corrector_restores_sound_alikes():
    """倒刷, 转员工, 有意比较意 and 被动结论 read as the words the rules look for."""
    corrector = SoundAlikeCorrector(["盗刷", "转人工", "一笔", "交易", "冻结"])
    assert corrector.correct("我的卡被倒刷了").corrected == "我的卡被盗刷了"
    assert corrector.correct("我要转员工").corrected == "我要转人工"
    assert corrector.correct("有意比较意不是我本人操作的").corrected == "有一笔交易不是我本人操作的"
    assert corrector.correct("说我的卡被动结论").corrected == "说我的卡被冻结论"


def test_corrector_keeps_real_words():
    """Words that only share some sounds with a term stay as they are."""
    corrector = SoundAlikeCorrector(["交易", "转人工", "盗刷"])
    for text in ("我想了解教育分期", "转账工具", "到时候再刷"):
        assert corrector.correct(text).corrected == text


def test_corrector_rejects_short_term():
    """A one-character term would rewrite too much, so it is rejected."""
    with pytest.raises(ValueError, match="two or more"):
        SoundAlikeCorrector(["钱"])


def test_hit_explains_itself(detectors):
    """A hit names its cue, rule, span, score and the correction it relied on."""
    [hit] = [hit for hit in detectors.detect("我的卡被倒刷了") if hit.cue == "fraud"]
    assert hit.rule_id == "fraud.card_misused"
    assert hit.matched == "倒刷"
    assert (hit.start, hit.end) == (4, 6)
    assert hit.score == pytest.approx(0.8)
    assert [(c.heard, c.term) for c in hit.corrections] == [("倒刷", "盗刷")]


def test_fuzzy_human_request_scores_lower(detectors):
    """转员工 fires as a request for a person, with a score lowered by the syllable mismatch."""
    [hit] = detectors.detect("我要转员工")
    assert hit.rule_id == "human.agent_request"
    assert 0.5 < hit.score < 0.9


def test_location_mismatch_transcript(detectors):
    """在迪败被刷 with 我人在上海 is a location mismatch, with 迪败 read as 迪拜."""
    hits = [hit for hit in detectors.detect("我的卡在迪败被刷了一笔 可是我人在上海 是不是被刷了呢?") if hit.cue == "location_mismatch"]
    assert [hit.rule_id for hit in hits] == ["location.charge_elsewhere"]
    assert [(c.heard, c.term) for c in hits[0].corrections] == [("迪败", "迪拜")]


@pytest.mark.parametrize(
    "text",
    ["我在上海 卡在上海被刷了", "我人在国内 卡在北京消费了", "我刚在日本刷了卡 现在回来了"],
)
def test_location_same_place(detectors, text):
    """A charge where the caller says they are is no mismatch."""
    assert not {rule for rule in _rules(detectors, text) if rule.startswith("location.")}


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("转账手续费是多少", None),
        ("我要给我儿子转账 5 万块钱", "money.transfer_request"),
        ("怎么防止被盗刷", None),
        ("我的卡被倒刷了", "fraud.card_misused"),
        ("人工智能是什么", None),
        ("我要转人工", "human.agent_request"),
        ("我不生气", None),
        ("我很生气", "emotion.anger"),
        ("不着急", None),
        ("收到垃圾短信怎么屏蔽", None),
        ("你们都是垃圾", "emotion.insult"),
        ("不用转人工", None),
        ("人工客服几点上班", None),
    ],
)
def test_topic_question_or_act(detectors, text, rule):
    """A question about a topic, advice or a negation does not fire; the act itself does."""
    found = _rules(detectors, text)
    if rule is None:
        assert found == set()
    else:
        assert rule in found


@pytest.mark.parametrize(
    ("text", "cue"),
    [
        ("我想搵真人", "human_request"),
        ("畀人盗用咗", "fraud"),
        ("唔该转人工", "human_request"),
        ("呢單交易唔係我做嘅", "fraud"),
        ("我好嬲", "emotion"),
        ("我打咗三次电话", "emotion"),
    ],
)
def test_cantonese(detectors, text, cue):
    """Cantonese phrasing, in Simplified or Traditional script, fires its cue."""
    assert cue in {hit.cue for hit in detectors.detect(text)}


def test_large_amount_needs_movement(detectors):
    """A large sum counts as money movement only with a movement verb in the turn."""
    assert "money.large_amount" in _rules(detectors, "我要转五万块钱给他")
    assert "money.large_amount" not in _rules(detectors, "这个月账单五万块钱")
    hits = TextCueDetectors().money_movement.detect(
        TextCueDetectors().prepare("我要转账两千块"), large_amount_yuan=1000
    )
    assert "money.large_amount" in {hit.rule_id for hit in hits}


@pytest.mark.parametrize(
    ("text", "value"),
    [("5", 5.0), ("五", 5.0), ("十五", 15.0), ("两千五百", 2500.0), ("五万", 50_000.0), ("一亿", 1e8), ("1.5", 1.5)],
)
def test_parse_chinese_number(text, value):
    """Arabic digits and Chinese numerals give their value."""
    assert parse_chinese_number(text) == value


def test_find_amounts_needs_unit():
    """A number is money only with a currency or scale word: 三次 and 六二八八 are not."""
    assert [yuan for _, _, yuan in find_amounts("转账5万块钱")] == [50_000.0]
    assert [yuan for _, _, yuan in find_amounts("取现1.5万")] == [15_000.0]
    assert find_amounts("打了三次电话") == []
    assert find_amounts("后四位是六二八八") == []


def test_asr_failure_consecutive_turns():
    """Three failed turns in a row fire; a usable turn resets the count."""
    tracker = AsrFailureTracker(min_confidence=0.5, consecutive_turns=3)
    tracker.add_turn(confidence=0.3)
    tracker.add_turn(confidence=0.9, failed=True)
    assert tracker.detect() == []
    tracker.add_turn(confidence=0.2)
    assert [hit.rule_id for hit in tracker.detect()] == ["asr.repeated_failure"]
    tracker.add_turn(confidence=0.95)
    assert tracker.detect() == []


def test_asr_failure_rejects_bad_settings():
    """Settings out of range raise with the value in the message."""
    with pytest.raises(ValueError, match="1.5"):
        AsrFailureTracker(min_confidence=1.5)
    with pytest.raises(ValueError, match="0"):
        AsrFailureTracker(consecutive_turns=0)
