"""The responder interface: text of a caller turn in, the bot's reply out.

The first responder answers FAQ questions. Flows, dialog state and an LLM responder
implement the same interface later and can be chained in front of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import AsyncIterator, Mapping, Protocol

from voicebot.asr.hints import ExpectedInput


class ReplyKind(str, Enum):
    """What the bot is doing with its reply."""

    ANSWER = "answer"  # an approved answer, spoken as fact
    CLARIFY = "clarify"  # not confident enough: asks the caller to rephrase or choose
    HANDOFF = "handoff"  # hands the call to a person
    GREETING = "greeting"
    FALLBACK = "fallback"  # nothing usable was heard


@dataclass(frozen=True)
class CallerTurn:
    """One finished caller turn as the responder sees it."""

    text: str  # Simplified Chinese transcript
    language: str  # "zh", "yue" or "en"
    asr_confidence: float  # 0..1
    turn_index: int
    # Keypad digits pressed during the turn ("0"-"9", "*", "#"), in order. A flow that
    # collects digits reads them in place of the text; other responders ignore them.
    dtmf: str = ""
    # The turn's audio, 16 kHz 16-bit mono PCM, for acoustic cues; empty for keypad turns.
    audio: bytes = b""


@dataclass
class DialogContext:
    """What the responder may read about the call so far.

    `history` holds (role, text) pairs, role "caller" or "bot". Bot entries hold only the
    part of a reply that the caller heard before a barge-in.
    """

    call_id: str
    language: str
    centre: str = "default"
    history: list[tuple[str, str]] = field(default_factory=list)
    caller: str = ""  # the caller's number (ANI) as the telephony side gives it, "" when withheld
    # What the dialog waits for after its last reply (digits, yes or no, an address), set by the
    # responder on every turn and read by the recogniser to bias the next decode.
    expected: ExpectedInput | None = None

    def last_bot_text(self) -> str:
        """Return the last thing the caller heard from the bot, "" before the first reply."""
        return next((text for role, text in reversed(self.history) if role == "bot" and text), "")


@dataclass(frozen=True)
class Reply:
    """The bot's reply to one caller turn."""

    text: str
    kind: ReplyKind
    confidence: float  # 0..1, how sure the responder is that `text` answers the turn
    topic: str | None = None  # FAQ topic id or flow id
    handoff_reason: str | None = None
    candidates: tuple[tuple[str, float], ...] = ()  # (topic, score), best first
    intent: str | None = None  # the caller's intent as the dialog engine classified it
    # Banking actions the reply's turn performed, e.g. ("freeze_card",), in order.
    actions: tuple[str, ...] = ()
    end_call: bool = False  # the bot hangs up after speaking this reply
    # Slots collected so far (name to value), for a warm handoff. Values are personal
    # data: show them to the rep, never log them.
    slots: Mapping[str, str] = field(default_factory=dict)
    # A streamed reply: the sentences to speak, each yielded as soon as it is ready, starting
    # with `text`. None when `text` is the whole reply. A consumer that stops early must
    # call `aclose()` on it (async generators have it) so the producer stops.
    sentences: AsyncIterator[str] | None = field(default=None, compare=False, hash=False, repr=False)


class Responder(Protocol):
    """Turns a caller turn into a reply. Implementations must not block the event loop."""

    async def respond(self, turn: CallerTurn, context: DialogContext) -> Reply: ...
