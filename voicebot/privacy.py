"""Masking of personal data in Chinese caller text and in log records.

`mask_pii` replaces personal data with bracketed tags before text is stored or logged:

- ``[CARD]``: a card number of 13 to 19 digits (spaces or dashes allowed between digits),
  or any digit string after 卡号, 尾号, 后四位 and similar words. With
  ``keep_card_last4=True`` the tag keeps the last four digits: ``[CARD ****6288]``.
- ``[ID]``: an 18-character mainland resident ID number (17 digits and a digit or X), or
  any digit string after 身份证 or 证件号.
- ``[PHONE]``: a mobile number (1[3-9] and nine digits, optionally after +86 or 0086),
  or a landline with its area code (0 and 9 to 11 more digits, optionally in brackets).
  Also a digit string of five or more after 手机, 电话, 座机 or 号码, except service
  numbers such as 95588, 10086 and 400 or 800 numbers.
- ``[CODE]``: digits after 密码, 验证码, 动态码, 安全码, CVV or CVN.
- ``[EMAIL]``: an e-mail address.
- ``[ADDRESS]``: the street detail of an address. After 地址是, 住在, 寄到, 搬到 and
  similar words, the province, city, district and county names are kept and the rest up
  to the next punctuation mark is replaced, but only when that rest has a digit or an
  address word (路, 街, 号, 室, 小区 ...). Without such a word before it, a street or
  estate name followed by a number and 号, 弄, 栋, 楼, 单元 or 室 is replaced whole.

Digit strings may be Arabic digits, full-width digits or spoken Chinese digits
(六二八八, with 幺 for one). Amounts with units (五万块, 200元), dates (2024-01-15,
二零二四年) and short numbers without a trigger word are kept.

NOTE: the rules are patterns, not a parser. Address detection can miss addresses
without street words and can mask a few words after an address up to the next
punctuation mark.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

__all__ = ["PiiRedactingFilter", "mask_address_answer", "mask_pii"]

_CHINESE_DIGITS = {
    "零": "0",
    "〇": "0",
    "一": "1",
    "幺": "1",
    "二": "2",
    "两": "2",
    "三": "3",
    "四": "4",
    "五": "5",
    "六": "6",
    "七": "7",
    "八": "8",
    "九": "9",
}
_FULLWIDTH_DIGITS = {chr(0xFF10 + value): str(value) for value in range(10)}
_DIGIT_MAP = {**_CHINESE_DIGITS, **_FULLWIDTH_DIGITS}

_ARABIC = "0-9\uff10-\uff19"
_SPOKEN = "零〇一幺二三四五六七八九"
_SEPARATOR = "[ \\-\u2010-\u2013\u3000]"

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")

# A run of Arabic digits with single separators, an optional +86/0086 or bracketed area
# code before it, and an optional X after it (the ID check character).
_ARABIC_RUN = re.compile(
    rf"(?<![{_ARABIC}])(?:\+\s?86[ \-]?|\(0[0-9]{{2,3}}\)\s?|（0[0-9]{{2,3}}）\s?)?"
    rf"[{_ARABIC}](?:{_SEPARATOR}?[{_ARABIC}])*[Xx]?(?![{_ARABIC}])"
)
# Spoken digits: seven or more in a row, the shortest run that can be a phone number.
_SPOKEN_RUN = re.compile(rf"(?<![{_SPOKEN}两十百千万亿])[{_SPOKEN}](?:\s?[{_SPOKEN}]){{6,}}(?![{_SPOKEN}两十百千万亿])")

_DIGIT_CLASS = f"{_ARABIC}{_SPOKEN}两"
_KEYWORD_GAP = r"[是为：:\s，,号码的呢啊]{0,4}"


def _keyword_run(keywords: str, min_digits: int) -> re.Pattern[str]:
    return re.compile(
        rf"(?P<keyword>{keywords}){_KEYWORD_GAP}"
        rf"(?P<run>[{_DIGIT_CLASS}](?:{_SEPARATOR}?[{_DIGIT_CLASS}]){{{min_digits - 1},}}[Xx]?)"
        rf"(?![{_DIGIT_CLASS}十百千万亿])"
    )


_CARD_KEYWORDS = _keyword_run(
    r"尾号|尾数|后四位|后4位|末四位|末4位|最后四位|最后4位|卡号|信用卡号|银行卡号|卡片号码", 3
)
_ID_KEYWORDS = _keyword_run(
    r"(?:身份证号码|身份证号|身份证|证件号码|证件号)的?(?:后四位|后4位|后六位|后6位|末四位|末4位)?", 4
)
# Bank and carrier service numbers (95588, 10086, 400 and 800 numbers) are not personal.
_SERVICE_NUMBER = re.compile(r"95[0-9]{3,4}|1[0-2][0-9]{3}|[48]00[0-9]{7}")
_PHONE_KEYWORDS = _keyword_run(r"手机号码|手机号|手机|电话号码|电话|座机|联系方式|号码", 5)
_CODE_KEYWORDS = _keyword_run(r"验证码|动态码|密码|安全码|CVV|CVN|cvv|cvn", 3)

# Address words. A name character is any CJK character except common function words,
# so a street name does not swallow the "我住在" before it.
_NAME = r"[^\W\d_A-Za-z我你他她它的在是了到住家想要请问把给从和与或这那个有没不就都也还吗呢吧啊，。！？、；：]"
_ROAD = r"(?:大道|大街|路|街|巷|胡同|弄)"
_ESTATE = r"(?:小区|花园|大厦|公寓|新村|家园|广场|苑)"
_ADDRESS_NUMBER = rf"[{_ARABIC}{_SPOKEN}两十百千A-Za-z\-#]+"
_ADDRESS_UNIT = r"(?:号楼|号院|号|弄|栋|幢|楼|层|单元|室|座)"
_BARE_ADDRESS = re.compile(
    rf"{_NAME}{{1,10}}(?:{_ROAD}|{_ESTATE})"
    rf"(?:(?:{_NAME}|[{_ARABIC}{_SPOKEN}\-#])*?{_ADDRESS_NUMBER}{_ADDRESS_UNIT})+"
)
_ADDRESS_TRIGGER = re.compile(
    r"(?:(?:新的?|家庭|家里的?|收货|账单|邮寄|通讯)?地址(?:是|为|改成|改为|改到|：|:)"
    r"|住址(?:是|为|：|:)?|住在|寄到|邮寄到|搬到|搬家到|送到)\s?"
    r"(?P<span>[^，。！？；,.!?;\n]{2,80})"
)
_ADMIN_PART = re.compile(r"[^\W\d_A-Za-z]{1,8}?(?:特别行政区|自治区|自治州|省|市|州|盟|区|县|旗)")
_ADDRESS_DETAIL = re.compile(rf"[{_ARABIC}{_SPOKEN}]|{_ROAD}|{_ESTATE}|{_ADDRESS_UNIT}|村|镇|乡")
_TRAILING_PARTICLES = "了啦呢吧啊呀哦嘛"
_NOT_ADMIN_SUFFIXES = ("小区", "社区", "园区", "城区")


def _normalize_digits(run: str) -> str:
    """Return the Arabic digits of a run, with separators dropped and X kept."""
    digits = []
    for char in run:
        if char.isascii() and char.isdigit():
            digits.append(char)
        elif char in _DIGIT_MAP:
            digits.append(_DIGIT_MAP[char])
        elif char in "Xx":
            digits.append("X")
    return "".join(digits)


def _looks_like_id(digits: str) -> bool:
    """Check the 18-character layout: region, birth date from 1900 to 2099, sequence, check."""
    if len(digits) != 18 or not digits[:17].isdigit():
        return False
    year, month, day = int(digits[6:10]), int(digits[10:12]), int(digits[12:14])
    return 1900 <= year <= 2099 and 1 <= month <= 12 and 1 <= day <= 31


def _card_tag(digits: str, keep_card_last4: bool) -> str:
    if keep_card_last4 and len(digits) >= 4:
        return f"[CARD ****{digits[-4:]}]"
    return "[CARD]"


def _classify_run(run: str, keep_card_last4: bool) -> str | None:
    """Return the tag for a digit run without a trigger word, or None to keep it."""
    stripped = run.lstrip()
    international = stripped.startswith("+")
    bracketed_area = stripped.startswith(("(", "（"))
    digits = _normalize_digits(run)
    if digits.endswith("X"):
        return "[ID]" if len(digits) == 18 and _looks_like_id(digits) else None
    if international:
        national = digits[2:]
        return "[PHONE]" if 9 <= len(national) <= 12 else None
    if bracketed_area:
        return "[PHONE]" if 10 <= len(digits) <= 12 else None
    if digits.startswith("0086") and re.fullmatch(r"1[3-9][0-9]{9}", digits[4:]):
        return "[PHONE]"
    if _looks_like_id(digits):
        return "[ID]"
    if 13 <= len(digits) <= 19:
        return _card_tag(digits, keep_card_last4)
    if re.fullmatch(r"1[3-9][0-9]{9}", digits):
        return "[PHONE]"
    if re.fullmatch(r"0[1-9][0-9]{8,10}", digits):
        return "[PHONE]"
    return None


def _replace_keyword_runs(
    text: str, pattern: re.Pattern[str], tag: Callable[[str], str | None]
) -> str:
    def replace(match: re.Match[str]) -> str:
        replacement = tag(_normalize_digits(match.group("run")))
        if replacement is None:
            return match.group(0)
        prefix = match.group(0)[: match.start("run") - match.start(0)]
        return prefix + replacement

    return pattern.sub(replace, text)


def _mask_address_span(span: str) -> str:
    """Keep the administrative names at the start of an address and mask the rest."""
    body = span.rstrip(_TRAILING_PARTICLES)
    trailing = span[len(body) :]
    position = 0
    while match := _ADMIN_PART.match(body, position):
        # 小区 (housing estate), 社区 and 园区 end in 区 but are street detail.
        if match.group(0).endswith(_NOT_ADMIN_SUFFIXES):
            break
        position = match.end()
    rest = body[position:]
    if not rest or not _ADDRESS_DETAIL.search(rest):
        return span
    return body[:position] + "[ADDRESS]" + trailing


def mask_pii(text: str, *, keep_card_last4: bool = False) -> str:
    """Replace card, ID, phone numbers, codes, e-mail and street addresses with tags.

    Args:
        text: Caller or bot text, usually Chinese.
        keep_card_last4: Keep the last four digits of card numbers in the tag.

    Returns:
        The text with personal data replaced, see the module docstring for the rules.
    """
    if not text:
        return text
    masked = _EMAIL.sub("[EMAIL]", text)

    masked = _replace_keyword_runs(masked, _CODE_KEYWORDS, lambda digits: "[CODE]")
    masked = _replace_keyword_runs(masked, _ID_KEYWORDS, lambda digits: "[ID]")
    masked = _replace_keyword_runs(
        masked, _CARD_KEYWORDS, lambda digits: _card_tag(digits, keep_card_last4)
    )
    masked = _replace_keyword_runs(
        masked,
        _PHONE_KEYWORDS,
        lambda digits: None if _SERVICE_NUMBER.fullmatch(digits) else "[PHONE]",
    )

    masked = _ADDRESS_TRIGGER.sub(
        lambda match: match.group(0)[: match.start("span") - match.start(0)]
        + _mask_address_span(match.group("span")),
        masked,
    )
    masked = _BARE_ADDRESS.sub("[ADDRESS]", masked)

    def replace_run(match: re.Match[str]) -> str:
        tag = _classify_run(match.group(0), keep_card_last4)
        return match.group(0) if tag is None else tag

    masked = _ARABIC_RUN.sub(replace_run, masked)
    masked = _SPOKEN_RUN.sub(replace_run, masked)
    return masked


def mask_address_answer(text: str) -> str:
    """Mask a caller's answer to a question that asked for an address.

    The whole answer becomes ``[ADDRESS]`` when it contains any place name, digit or address
    word, because speech recognition garbles the words `mask_pii` looks for: 我的新地址是上海…
    came out as 我的新地址市上还是普通新区市街大到一百号. An answer without any (算了，不改了)
    is masked by `mask_pii` alone.
    """
    if _ADMIN_PART.search(text) or _ADDRESS_DETAIL.search(text):
        return "[ADDRESS]"
    return mask_pii(text)


class PiiRedactingFilter(logging.Filter):
    """Logging filter that masks personal data in messages, arguments and tracebacks.

    It is a safety net: code should not log personal data in the first place. Attach it
    to handlers, because filters on a logger do not see records propagated from its
    children. A record whose text changes is rewritten with the masked text and no
    arguments. Other records pass unchanged.
    """

    def __init__(self, name: str = "", *, keep_card_last4: bool = False) -> None:
        super().__init__(name)
        self._keep_card_last4 = keep_card_last4
        self._formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask the record in place and always let it through."""
        try:
            message = record.getMessage()
        except (TypeError, ValueError, KeyError):
            # The format string and the arguments do not match, so mask them separately
            # and let the handler report the formatting error.
            message = str(record.msg)
            if isinstance(record.args, tuple):
                record.args = tuple(self._mask(str(arg)) for arg in record.args)
            elif isinstance(record.args, dict):
                record.args = {key: self._mask(str(value)) for key, value in record.args.items()}
        masked = self._mask(message)
        if masked != message:
            record.msg = masked
            record.args = None

        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self._mask(record.stack_info)
        return True

    def _mask(self, text: str) -> str:
        return mask_pii(text, keep_card_last4=self._keep_card_last4)
