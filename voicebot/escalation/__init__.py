"""Escalation policy: when a caller turn must go to a person, and why.

Deterministic cue detectors (fraud, money movement, location mismatch, emotion, a request
for a person, acoustic arousal, repeated ASR failures) produce explainable hits, and
`EscalationPolicy` applies the designers' policy file (dialogs/escalation.yaml) to them.
"""

from voicebot.escalation.acoustic import ArousalReading, ArousalTracker, TurnAcoustics, measure_turn
from voicebot.escalation.cues import (
    ALL_CUES,
    TEXT_CUES,
    AsrFailureTracker,
    Hit,
    TextCueDetectors,
)
from voicebot.escalation.policy import CallState, Decision, EscalationPolicy, Reason
from voicebot.escalation.policy_file import CueSettings, PolicyFileError, PolicySettings, load_policy

__all__ = [
    "ALL_CUES",
    "TEXT_CUES",
    "ArousalReading",
    "ArousalTracker",
    "AsrFailureTracker",
    "CallState",
    "CueSettings",
    "Decision",
    "EscalationPolicy",
    "Hit",
    "PolicyFileError",
    "PolicySettings",
    "Reason",
    "TextCueDetectors",
    "TurnAcoustics",
    "load_policy",
    "measure_turn",
]
