"""Data of a warm transfer: the request, the screen-pop shown to the rep, and queue events.

Everything a rep sees is masked with `mask_pii` before it is stored, so the queue never
holds a card, ID or phone number in clear text.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from voicebot.errors import VoicebotError
from voicebot.privacy import mask_pii

SKILLS = ("fraud", "card_services", "complaints")
MIN_PRIORITY = 0
MAX_PRIORITY = 9
VERIFICATION_STATUSES = ("verified", "unverified", "failed", "unknown")
REP_STATUSES = ("available", "busy", "away")

# Chinese labels of the reason codes the escalation policy emits. Codes not listed here
# are shown as the code itself unless the request gives a label.
REASON_LABELS: dict[str, str] = {
    "fraud_suspected": "疑似欺诈",
    "unauthorized_transaction": "未授权交易",
    "card_lost_or_stolen": "卡片丢失或被盗",
    "phishing": "钓鱼短信或诈骗",
    "money_movement": "资金转移",
    "location_mismatch": "交易地点与所在地不符",
    "emotion_angry": "情绪激动",
    "emotion_distressed": "客户焦虑",
    "repeat_caller": "重复来电",
    "complaint": "投诉",
    "person_requested": "要求人工服务",
    "low_confidence": "机器人置信度低",
    "verification_failed": "身份验证失败",
    # Escalation cues (dialogs/escalation.yaml), which warm transfer passes as reason codes.
    "fraud": "疑似欺诈",
    "human_request": "要求人工服务",
    "emotion": "情绪激动",
    "arousal": "语气激动",
    "asr_failure": "多次未能识别",
}

# Slot names whose whole value is personal data. Other slot values go through mask_pii.
_SECRET_SLOT = re.compile(r"password|passcode|pin|cvv|cvn|otp|code|card_number|id_number|phone", re.IGNORECASE)


class HandoffError(VoicebotError):
    """A handoff operation failed: unknown handoff, wrong state or an invalid request."""


class HandoffNotFoundError(HandoffError):
    """No handoff with that id exists (never created, or its record expired)."""


class HandoffStateError(HandoffError):
    """The handoff is not in a state that allows the operation (for example accept after cancel)."""


@dataclass(frozen=True)
class Reason:
    """One reason for the handoff: a code for programs and a Chinese label for reps."""

    code: str
    label: str

    @classmethod
    def from_code(cls, code: str) -> Reason:
        """Build a reason with the label from REASON_LABELS, or the code when none is known."""
        return cls(code=code, label=REASON_LABELS.get(code, code))


@dataclass
class ScreenPop:
    """What the rep sees before accepting: summary, transcript, reasons and collected details.

    `transcript` is a list of (role, text) pairs with role "caller" or "bot".
    `call_started_at` is epoch seconds.
    """

    summary: str
    transcript: list[tuple[str, str]]
    reasons: list[Reason]
    slots: dict[str, str] = field(default_factory=dict)
    verification: str = "unknown"
    language: str = "zh"
    centre: str = "default"
    call_started_at: float = 0.0

    SECRET_TAG: ClassVar[str] = "[HIDDEN]"

    def masked(self) -> ScreenPop:
        """Return a copy with personal data in the summary, transcript and slots replaced by tags."""
        slots: dict[str, str] = {}
        for name, value in self.slots.items():
            slots[name] = self.SECRET_TAG if _SECRET_SLOT.search(name) else mask_pii(str(value))
        return ScreenPop(
            summary=mask_pii(self.summary),
            transcript=[(role, mask_pii(text)) for role, text in self.transcript],
            reasons=list(self.reasons),
            slots=slots,
            verification=self.verification,
            language=self.language,
            centre=self.centre,
            call_started_at=self.call_started_at,
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the screen-pop as JSON-ready values."""
        values = asdict(self)
        values["transcript"] = [[role, text] for role, text in self.transcript]
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ScreenPop:
        """Build a screen-pop from `to_dict` output."""
        return cls(
            summary=values.get("summary", ""),
            transcript=[(role, text) for role, text in values.get("transcript", [])],
            reasons=[Reason(code=item["code"], label=item["label"]) for item in values.get("reasons", [])],
            slots=dict(values.get("slots", {})),
            verification=values.get("verification", "unknown"),
            language=values.get("language", "zh"),
            centre=values.get("centre", "default"),
            call_started_at=float(values.get("call_started_at", 0.0)),
        )

    def to_json(self) -> str:
        """Return the screen-pop as a JSON string."""
        return json.dumps(self.to_dict(), ensure_ascii=False)


@dataclass
class HandoffRequest:
    """A request to hand a live call to a rep with `skill`. Priority runs from 0 to 9, higher first.

    `reasons` are reason codes. `bridge_sample_rate_hz` is the PCM rate of the audio bridge
    in both directions (8000 or 16000). `wait_timeout_s` overrides the queue's wait timeout.
    """

    call_id: str
    skill: str
    priority: int
    reasons: list[str]
    screen_pop: ScreenPop
    bridge_sample_rate_hz: int = 8000
    wait_timeout_s: float | None = None

    def validate(self) -> None:
        """Check the request.

        Raises:
            HandoffError: If the skill, priority, rate or timeout is invalid.
        """
        if self.skill not in SKILLS:
            raise HandoffError(f"Invalid handoff skill {self.skill!r}: use one of {', '.join(SKILLS)}.")
        if not MIN_PRIORITY <= self.priority <= MAX_PRIORITY:
            raise HandoffError(
                f"Invalid handoff priority {self.priority}: use {MIN_PRIORITY} to {MAX_PRIORITY}, higher first."
            )
        if self.bridge_sample_rate_hz not in (8000, 16000):
            raise HandoffError(
                f"Invalid bridge_sample_rate_hz {self.bridge_sample_rate_hz}: use 8000 or 16000."
            )
        if not self.call_id:
            raise HandoffError("Missing call_id in the handoff request: pass the id of the call to transfer.")
        if self.wait_timeout_s is not None and self.wait_timeout_s <= 0:
            raise HandoffError(f"Invalid wait_timeout_s {self.wait_timeout_s}: use a positive number of seconds.")


@dataclass(frozen=True)
class HandoffEvent:
    """Base of the events of one handoff. `at` is the Redis server time in epoch seconds."""

    handoff_id: str
    at: float
    final: ClassVar[bool] = False


@dataclass(frozen=True)
class Offered(HandoffEvent):
    """The handoff was offered to a rep, who has not answered yet."""

    rep_id: str = ""


@dataclass(frozen=True)
class Accepted(HandoffEvent):
    """A rep accepted the handoff: connect the audio bridge."""

    rep_id: str = ""


@dataclass(frozen=True)
class Declined(HandoffEvent):
    """The rep declined or did not answer (reason offer_timeout); the handoff is waiting again."""

    rep_id: str = ""
    reason: str = ""


@dataclass(frozen=True)
class RepDisconnected(HandoffEvent):
    """The rep's console went away during the call; the handoff is waiting again."""

    rep_id: str = ""


@dataclass(frozen=True)
class Ended(HandoffEvent):
    """The rep hung up after talking to the caller."""

    rep_id: str = ""
    final: ClassVar[bool] = True


@dataclass(frozen=True)
class Cancelled(HandoffEvent):
    """The call side cancelled the handoff, for example because the caller hung up."""

    reason: str = ""
    final: ClassVar[bool] = True


@dataclass(frozen=True)
class TimedOut(HandoffEvent):
    """No rep accepted before the wait timeout."""

    final: ClassVar[bool] = True


EVENT_TYPES: dict[str, type[HandoffEvent]] = {
    "offered": Offered,
    "accepted": Accepted,
    "declined": Declined,
    "rep_disconnected": RepDisconnected,
    "ended": Ended,
    "cancelled": Cancelled,
    "timed_out": TimedOut,
}


def event_from_fields(handoff_id: str, values: dict[str, str]) -> HandoffEvent:
    """Build an event from the fields of a stream entry written by the queue scripts."""
    kind = values.get("type", "")
    event_type = EVENT_TYPES.get(kind)
    if event_type is None:
        raise HandoffError(f"Unknown handoff event type {kind!r} in the stream of handoff {handoff_id}.")
    at = int(values.get("at_ms", "0")) / 1000
    rep_id = values.get("rep_id", "")
    reason = values.get("reason", "")
    if event_type in (Offered, Accepted, RepDisconnected, Ended):
        return event_type(handoff_id=handoff_id, at=at, rep_id=rep_id)  # type: ignore[call-arg]
    if event_type is Declined:
        return Declined(handoff_id=handoff_id, at=at, rep_id=rep_id, reason=reason)
    if event_type is Cancelled:
        return Cancelled(handoff_id=handoff_id, at=at, reason=reason)
    return TimedOut(handoff_id=handoff_id, at=at)


@dataclass
class HandoffInfo:
    """The stored state of one handoff, as the console shows it.

    `state` is waiting, offered, accepted, ended, cancelled or timed_out. `position` is
    1 for the next handoff of its skill, None when it is not in the queue. Times are
    epoch seconds and `waited_s` is seconds since the request.
    """

    handoff_id: str
    call_id: str
    skill: str
    priority: int
    reasons: list[Reason]
    state: str
    created_at: float
    waited_s: float
    position: int | None
    offered_to: str
    rep_id: str
    bridge_sample_rate_hz: int
    screen_pop: ScreenPop | None = None

    def to_dict(self, *, with_screen_pop: bool = False) -> dict[str, Any]:
        """Return JSON-ready values, with the screen-pop only when asked."""
        values = asdict(self)
        values["screen_pop"] = (
            self.screen_pop.to_dict() if with_screen_pop and self.screen_pop is not None else None
        )
        return values


@dataclass
class RepPresence:
    """A rep's presence: status (available, busy, away), skills, the open offer and call."""

    rep_id: str
    status: str
    skills: list[str]
    name: str
    since: float
    offer: str
    handoff: str
