"""Recognition hints: what the bot expects the caller to say next, used to bias one decode.

When a flow has just asked for the card's last four digits, the caller's answer is digits.
Whisper base on 8 kHz audio often hears 六二八八 as 宿泪 or 62288 without help. Two
standard contact-centre techniques fix most of this, and both are used here:

- Context: the bot's question goes to Whisper as the previous text, and hotwords for the
  kind of answer (digits, yes or no, an address) replace the general banking hotwords.
- A grammar check on the n-best list, as IVR grammars such as VoiceXML's
  `builtin:digits?length=4` do: the decoder keeps several beam-search hypotheses and the
  first one the flow's own slot check accepts wins. With none accepted, the best
  hypothesis is used as before, and the flow asks again or offers the keypad.

The hint never makes up an answer: every candidate is something Whisper heard, and the
flow still reads the value back for an explicit confirmation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# Hotwords per kind of expected answer. 幺 (one, as read on the phone) is left out: with it,
# Whisper base wrote more digits as Arabic numerals and repeated them (62288 for 六二八八).
DIGIT_HOTWORDS = "零 一 二 三 四 五 六 七 八 九"
YES_NO_HOTWORDS = "对 是的 没错 不是 不对 错了"
ADDRESS_HOTWORDS = "省 市 区 县 路 街 大道 号 弄 栋 室"
_HOTWORDS = {"digits": DIGIT_HOTWORDS, "yes_no": YES_NO_HOTWORDS, "address": ADDRESS_HOTWORDS}

# A sample answer after the question shows Whisper the form of the answer, and it copies the
# form: digits as Chinese numerals, an address from city to house number. On the 8 kHz
# slot_card_last4 clip, cut at 15 different points, the question alone gave 6288 in 7 of 15
# decodes and the question plus the sample in 14 of 15. A yes-or-no question gets no sample,
# which would lean the decode towards that answer.
_SAMPLE_DIGITS = "三七五九零一二四八六"
ADDRESS_SAMPLE = "好的，新地址是广州市天河区天河路二百号。"

# Maximum length of the question given as the decoder's previous text, in characters. The end is kept.
MAX_PROMPT_CHARACTERS = 80
DEFAULT_N_BEST = 5


@dataclass(frozen=True)
class ExpectedInput:
    """What the dialog waits for after its last reply.

    `kind` is a slot type (digits, yes_no, address, amount, text) and `accepts` returns whether
    a transcript gives a valid value for it.
    """

    kind: str
    accepts: Callable[[str], bool]
    length: int | None = None  # digits: how many are expected


@dataclass(frozen=True)
class RecognitionHint:
    """Biasing for one decode.

    `prompt` is the text the caller is answering, given to Whisper as the previous text.
    `hotwords` replace the transcriber's default hotwords for this decode. With `accept`,
    the decoder keeps `n_best` beam hypotheses and returns the best one `accept` takes, or
    the best one overall when it takes none.
    """

    kind: str = ""
    prompt: str | None = None
    hotwords: str | None = None
    accept: Callable[[str], bool] | None = None
    n_best: int = DEFAULT_N_BEST


def hint_for(expected: ExpectedInput | None, question: str | None) -> RecognitionHint | None:
    """Return the hint for the next caller turn, or None when the bot expects nothing in particular."""
    if expected is None:
        return None
    prompt = (question or "").strip()[-MAX_PROMPT_CHARACTERS:] + sample_answer(expected)
    return RecognitionHint(
        kind=expected.kind,
        prompt=prompt or None,
        hotwords=_HOTWORDS.get(expected.kind),
        accept=expected.accepts,
    )


def sample_answer(expected: ExpectedInput) -> str:
    """Return a made-up answer of the expected form, to put after the question in the prompt."""
    if expected.kind == "digits":
        length = expected.length or 4
        digits = (_SAMPLE_DIGITS * (length // len(_SAMPLE_DIGITS) + 1))[:length]
        return f"好的，后四位是{digits}。" if length == 4 else f"好的，是{digits}。"
    if expected.kind == "address":
        return ADDRESS_SAMPLE
    return ""


# The sample answer opens with this acknowledgement, and Whisper sometimes starts the
# transcript with it although the caller did not say it.
_SAMPLE_OPENING = "好的"


def strip_prompt_echo(text: str, hint: RecognitionHint) -> str:
    """Drop the sample answer's opening word when the transcript starts with a copy of it."""
    if hint.prompt and hint.prompt.find(_SAMPLE_OPENING) >= 0 and text.startswith(_SAMPLE_OPENING):
        return text[len(_SAMPLE_OPENING):].lstrip("，,。 ") or text
    return text
