"""Table-driven tests of personal-data masking and the redacting log filter."""

from __future__ import annotations

import logging

import pytest

from voicebot.privacy import PiiRedactingFilter, mask_address_answer, mask_pii

pytestmark = pytest.mark.timeout(30)

MASKED = [
    # Card numbers.
    ("我的卡号是6222021381234567", "我的卡号是[CARD]"),
    ("卡号是6222 0213 8123 4567", "卡号是[CARD]"),
    ("6222-0213-8123-4567这张卡", "[CARD]这张卡"),
    ("帮我查4392268312345678901的账单", "帮我查[CARD]的账单"),
    ("卡号六二二二零二一三八一二三四五六七", "卡号[CARD]"),
    ("六二二二 零二一三 八一二三 四五六七", "[CARD]"),
    ("尾号六二八八的卡", "尾号[CARD]的卡"),
    ("尾号是6288", "尾号是[CARD]"),
    ("卡的后四位是幺二三四", "卡的后四位是[CARD]"),
    ("末4位 5678", "末4位 [CARD]"),
    ("６２２２０２１３８１２３４５６７", "[CARD]"),
    # Mainland ID numbers.
    ("身份证号码是11010519491231002X", "身份证号码是[ID]"),
    ("我的证件号110105194912310021", "我的证件号[ID]"),
    ("110105194912310021", "[ID]"),
    ("11010519491231002x", "[ID]"),
    ("身份证后四位是1234", "身份证后四位是[ID]"),
    # Phone numbers.
    ("手机13812345678", "手机[PHONE]"),
    ("打我13912345678", "打我[PHONE]"),
    ("+86 138 1234 5678", "[PHONE]"),
    ("+8613812345678", "[PHONE]"),
    ("008613812345678", "[PHONE]"),
    ("138-1234-5678", "[PHONE]"),
    ("一三八一二三四五六七八", "[PHONE]"),
    ("电话(010)12345678", "电话[PHONE]"),
    ("座机是0755-86001234", "座机是[PHONE]"),
    ("010-12345678", "[PHONE]"),
    ("电话是八六零零一二三四", "电话是[PHONE]"),
    # Codes.
    ("验证码是123456", "验证码是[CODE]"),
    ("CVV 123", "CVV [CODE]"),
    ("密码是六六八八", "密码是[CODE]"),
    # E-mail.
    ("邮箱zhang.san@qq.com谢谢", "邮箱[EMAIL]谢谢"),
    ("发到 li_si+bank@example.com.cn", "发到 [EMAIL]"),
    # Addresses.
    ("我搬到上海市浦东新区张杨路500号10楼1001室了", "我搬到上海市浦东新区[ADDRESS]了"),
    ("地址是广东省深圳市南山区阳光小区3栋2单元501室", "地址是广东省深圳市南山区[ADDRESS]"),
    ("新地址是北京市朝阳区建国路88号，谢谢", "新地址是北京市朝阳区[ADDRESS]，谢谢"),
    ("账单寄到杭州市西湖区文三路90号", "账单寄到杭州市西湖区[ADDRESS]"),
    ("我住在成都市武侯区桐梓林村", "我住在成都市武侯区[ADDRESS]"),
    ("我家在张杨路500号", "我家在[ADDRESS]"),
    ("我家在南京西路一千二百号", "我家在[ADDRESS]"),
    ("阳光小区3栋2单元501室", "[ADDRESS]"),
]

KEPT = [
    "我想借五万块",
    "还了200元",
    "最低还款是1500元",
    "额度能提到100000吗",
    "2024-01-15到期",
    "二零二四年一月十五号",
    "20240115",
    "每月3号还款",
    "下午2点30分",
    "14:30",
    "分12期手续费多少",
    "客服电话95588",
    "电话是10086吗",
    "打400-820-8888",
    "我住在北京",
    "账单寄到我家",
    "搬到上海了",
    "我在路上",
    "一路上都没问题",
    "积分有三万二千分",
    "年费两百元",
    "",
    "信用卡年费是多少？怎么才能免年费？",
]


@pytest.mark.parametrize(("text", "expected"), MASKED)
def test_mask_pii_masks(text, expected):
    """Each kind of personal data is replaced by its tag and the rest is kept."""
    assert mask_pii(text) == expected


@pytest.mark.parametrize("text", KEPT)
def test_mask_pii_keeps_non_personal(text):
    """Amounts, dates, times, service numbers and place names without detail stay."""
    assert mask_pii(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("卡号是6222 0213 8123 4567", "卡号是[CARD ****4567]"),
        ("尾号六二八八", "尾号[CARD ****6288]"),
        ("6222021381234567", "[CARD ****4567]"),
        ("手机13812345678", "手机[PHONE]"),
        ("身份证号码是11010519491231002X", "身份证号码是[ID]"),
    ],
)
def test_mask_pii_keeps_card_last4(text, expected):
    """keep_card_last4 keeps the last four card digits and no other digits."""
    assert mask_pii(text, keep_card_last4=True) == expected


def test_mask_pii_mixed_sentence():
    """Several kinds of personal data in one sentence are all masked."""
    text = "卡号6222021381234567，手机13812345678，新地址是上海市徐汇区漕溪北路88号，借了五万块"

    masked = mask_pii(text)

    assert "6222021381234567" not in masked
    assert "13812345678" not in masked
    assert "漕溪北路" not in masked
    assert masked == "卡号[CARD]，手机[PHONE]，新地址是上海市徐汇区[ADDRESS]，借了五万块"


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def redacted_logger():
    logger = logging.getLogger("tests.privacy.redacted")
    handler = _ListHandler()
    handler.addFilter(PiiRedactingFilter())
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, handler
    logger.removeHandler(handler)


def test_filter_masks_args_and_message(redacted_logger):
    """The log filter masks personal data passed as arguments and inside the message."""
    logger, handler = redacted_logger

    logger.info("caller gave card %s and phone %s", "6222021381234567", 13812345678)
    logger.info("transcript: 尾号六二八八")

    assert handler.lines[0] == "caller gave card [CARD] and phone [PHONE]"
    assert handler.lines[1] == "transcript: 尾号[CARD]"


def test_filter_keeps_clean_records(redacted_logger):
    """Records without personal data keep their format string and arguments."""
    logger, handler = redacted_logger
    seen = []

    class _Capture(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            seen.append((record.msg, record.args))
            return True

    handler.addFilter(_Capture())
    logger.info("call %s turn %s took %s ms", "CA123", 4, 250)

    assert handler.lines == ["call CA123 turn 4 took 250 ms"]
    assert seen == [("call %s turn %s took %s ms", ("CA123", 4, 250))]


def test_filter_masks_traceback(redacted_logger):
    """Exception text with personal data is masked in the logged traceback."""
    logger, handler = redacted_logger

    try:
        raise ValueError("bad card 6222021381234567")
    except ValueError:
        logger.exception("lookup failed")

    assert "6222021381234567" not in handler.lines[0]
    assert "bad card [CARD]" in handler.lines[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("我的新地址市上还是普通新区市街大到一百号。", "[ADDRESS]"),
        ("上海市浦东新区世纪大道100号", "[ADDRESS]"),
        ("住在幸福小区", "[ADDRESS]"),
        ("算了，不改了", "算了，不改了"),
        ("我的手机号13812345678", "[ADDRESS]"),
    ],
)
def test_mask_address_answer(text, expected):
    """An answer to an address question is masked whole when it contains a place name, digit or address word."""
    assert mask_address_answer(text) == expected
