"""Warm transfer to a human rep: the Redis queue, rep presence, screen-pop and audio bridge."""

from voicebot.handoff.bridge import CallBridgeEndpoint, RepBridgeEndpoint
from voicebot.handoff.models import (
    REASON_LABELS,
    SKILLS,
    Accepted,
    Cancelled,
    Declined,
    Ended,
    HandoffError,
    HandoffEvent,
    HandoffInfo,
    HandoffNotFoundError,
    HandoffRequest,
    HandoffStateError,
    Offered,
    Reason,
    RepDisconnected,
    RepPresence,
    ScreenPop,
    TimedOut,
)
from voicebot.handoff.queue import HandoffQueue, new_handoff_id

__all__ = [
    "REASON_LABELS",
    "SKILLS",
    "Accepted",
    "CallBridgeEndpoint",
    "Cancelled",
    "Declined",
    "Ended",
    "HandoffError",
    "HandoffEvent",
    "HandoffInfo",
    "HandoffNotFoundError",
    "HandoffQueue",
    "HandoffRequest",
    "HandoffStateError",
    "Offered",
    "Reason",
    "RepBridgeEndpoint",
    "RepDisconnected",
    "RepPresence",
    "ScreenPop",
    "TimedOut",
    "new_handoff_id",
]
