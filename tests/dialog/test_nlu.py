"""Intent classification and slot extraction on clean and noisy ASR text."""

from __future__ import annotations

import pytest

from voicebot.dialog import nlu
from voicebot.dialog.numbers import numbers_in, parse_chinese_number, spell_digits

INTENT_CASES = [
    # Real Whisper transcripts of the caller clips on the 8 kHz phone path.
    ("我想修改我的账单地址", nlu.ADDRESS_CHANGE),
    ("我的信用卡丢了 帮我挂失", nlu.LOST_CARD),
    ("我要转员工", nlu.HUMAN_REQUEST),
    ("对没错", nlu.YES),
    ("不是 我说错名", nlu.CORRECTION),
    ("", nlu.NOTHING),
    # Written forms and other noisy variants.
    ("我的卡挂事了", nlu.LOST_CARD),
    ("我的信用卡被偷了", nlu.LOST_CARD),
    ("我搬家了要更新地址", nlu.ADDRESS_CHANGE),
    ("帮我激活一下新卡", nlu.CARD_ACTIVATION),
    ("我的新卡怎么激活？", nlu.FAQ),
    ("我想查一下这个月的信用卡账单", nlu.BILL_INQUIRY),
    ("我这个月账单要还多少钱", nlu.BILL_INQUIRY),
    ("账单日和还款日是怎么定的？", nlu.FAQ),
    ("我想提高信用额度", nlu.CREDIT_LIMIT_INCREASE),
    ("怎么提额", nlu.FAQ),
    ("我的卡在迪拜被刷了一笔，是不是被盗刷了", nlu.FRAUD_REPORT),
    ("我要给我儿子转账五万块钱", nlu.MONEY_TRANSFER),
    ("你们这个系统太烂了", nlu.COMPLAINT),
    ("再说一遍", nlu.REPEAT),
    ("没有了，谢谢", nlu.GOODBYE),
    ("再见", nlu.GOODBYE),
    ("信用卡年费是多少？", nlu.FAQ),
]


@pytest.mark.parametrize(("text", "intent"), INTENT_CASES)
def test_intent(text: str, intent: str) -> None:
    """Each text gets the intent a hotline agent would give it."""
    assert nlu.classify(text).intent == intent


YES_NO_CASES = [
    ("对", "yes"), ("是的", "yes"), ("没错", "yes"), ("好的", "yes"), ("可以", "yes"), ("嗯", "yes"),
    ("行", "yes"), ("确认", "yes"), ("对，没错。", "yes"), ("係", "yes"), ("啱", "yes"), ("系啊", "yes"),
    ("不是", "no"), ("不对", "no"), ("不用", "no"), ("算了", "no"), ("错了", "no"), ("唔係", "no"),
    ("唔啱", "no"), ("不是 我说错名", "no"),
    ("我的地址是上海", None), ("喂喂", None), ("信用卡年费是多少", None),
]


@pytest.mark.parametrize(("text", "answer"), YES_NO_CASES)
def test_yes_no(text: str, answer: str | None) -> None:
    """Yes and no are read from the start of the turn in Mandarin and Cantonese."""
    assert nlu.detect_yes_no(nlu.normalize(text)) == answer


def test_goodbye_at_end_of_sentence_is_not_goodbye() -> None:
    """Whisper's trailing 拜拜 on a digit answer does not end the call."""
    assert nlu.classify("我的卡号后 塑微系622 拜拜!").intent != nlu.GOODBYE


DIGIT_CASES = [
    ("我的卡号后四位是六二八八。", "6288", True),
    ("幺三五七", "1357", True),
    ("两洞拐勾", "2079", True),
    ("尾号6288", "6288", True),
    ("6 2 8 8", "6288", True),
    ("我要六二八八", "6288", True),
    ("卡号是6222 0212 3456 3571", "3571", True),
]


@pytest.mark.parametrize(("text", "digits", "complete"), DIGIT_CASES)
def test_card_digits(text: str, digits: str, complete: bool) -> None:
    """Card digits are read from digits, numerals and radio readings, without the 四 of 后四位."""
    found = nlu.extract_digits(text, length=4)
    assert found is not None
    assert found.value == digits
    assert found.complete is complete


def test_card_digits_partial_is_low_confidence() -> None:
    """The real transcript 塑微系622 gives three digits with low confidence."""
    found = nlu.extract_digits("我的卡号后 塑微系622 拜拜!", length=4)
    assert found is not None
    assert found.value == "622"
    assert not found.complete
    assert found.confidence < 0.5


def test_card_digits_sound_alike_lowers_confidence() -> None:
    """A sound-alike read as a digit (溜 for 六) lowers the confidence."""
    found = nlu.extract_digits("溜二八八", length=4)
    assert found is not None
    assert found.value == "6288"
    assert found.confidence < 0.95


def test_dtmf_digits() -> None:
    """Keypad digits end at # and * starts them again."""
    assert nlu.digits_from_dtmf("6288#") == ("6288", True)
    assert nlu.digits_from_dtmf("12*6288") == ("6288", False)


def test_address_clean() -> None:
    """A clean address after a lead-in is found with high confidence."""
    found = nlu.extract_address("我的新地址是上海市浦东新区世纪大道一百号。")
    assert found is not None
    assert found.value == "上海市浦东新区世纪大道一百号"
    assert found.confidence >= 0.9


def test_address_real_garbled_transcript() -> None:
    """The garbled 8 kHz transcript finds the lead-in by sound, and the place names fix city, district and road.

    No house-number word (号) was heard, so the confidence stays below the "all parts" level.
    """
    found = nlu.extract_address("我的心地只是上还是普通心 趋势 激大到100%")
    assert found is not None
    assert found.value.startswith("上海市浦东新区世纪大道")
    assert found.confidence < 0.9


@pytest.mark.parametrize(
    ("text", "amount"), [("调到五万", "50000"), ("三万五吧", "35000"), ("两千块", "2000"), ("提到5万", "50000"),
                         ("十二万五", "125000"), ("50000元", "50000")]
)
def test_amount(text: str, amount: str) -> None:
    """Amounts with Chinese units and colloquial dropped units are read in yuan."""
    found = nlu.extract_amount(text)
    assert found is not None
    assert found.value == amount


def test_numbers_for_grounding() -> None:
    """Numbers in replies are found in digits and Chinese numerals alike."""
    assert parse_chinese_number("一百二十点五") == 120.5
    assert numbers_in("应还1234.50元，到期还款日是7月15日") == {"1234.5", "7", "15"}
    assert "6288" in numbers_in("尾号六二八八")
    assert "100" in numbers_in("普卡年费每年一百元")
    assert spell_digits("6288") == "六二八八"
