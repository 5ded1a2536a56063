"""The escalation policy: cue hits in, a handoff decision with its reasons out.

The owner of a call creates one CallState per call (`EscalationPolicy.new_call`) and
calls `evaluate` on every caller turn, partial or final. Between turns it reports each
finished turn's ASR confidence and outcome to `call_state.asr_failure.add_turn`.

Per cue, the settings of the call centre's sensitivity level (dialogs/escalation.yaml)
decide what a hit does:

- a hit below the cue's `min_score` is reported with action `flag_only`;
- `handoff_now` hands over on the first turn with the cue;
- `handoff_after` hands over once `occurrences` final turns had the cue;
- `flag_only` reports the cue and never hands over.

A partial transcript may hand over early, but only final turns are counted, feed the
acoustic baseline or are checked for ASR failures, so a turn is never counted twice.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from voicebot.escalation.acoustic import ArousalReading, ArousalTracker
from voicebot.escalation.cues import (
    ALL_CUES,
    AROUSAL,
    ASR_FAILURE,
    MONEY_MOVEMENT,
    AsrFailureTracker,
    Hit,
    TextCueDetectors,
)
from voicebot.escalation.policy_file import CueSettings, PolicySettings, load_policy, parse_policy
from voicebot.escalation.text import Correction

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reason:
    """One cue hit and what the policy did with it.

    `matched` and `corrections` hold the caller's words for the rep's screen; `describe`
    leaves them out, so log lines carry no personal data.
    """

    cue: str
    rule_id: str
    score: float
    action: str  # the action applied: handoff_now, handoff_after or flag_only
    triggered: bool  # True when this reason hands the call over
    occurrences: int  # final turns so far with this cue at or above min_score, this one included
    start: int = 0
    end: int = 0
    matched: str = ""
    corrections: tuple[Correction, ...] = ()

    def describe(self) -> str:
        """Return `rule_id(score,action[,count/needed],fired|flag)` without the caller's words."""
        state = "fired" if self.triggered else "flag"
        return f"{self.rule_id}({self.score:.2f},{self.action},{self.occurrences},{state})"


@dataclass(frozen=True)
class Decision:
    """Whether to hand the call over after a turn, why, to whom and how urgently."""

    escalate: bool
    reasons: tuple[Reason, ...]  # every hit of the turn, the triggering ones first
    skill: str | None  # the queue for the rep: fraud, card_services or complaints
    priority: int | None  # 1 is the most urgent
    policy_version: str
    centre: str = "default"
    sensitivity: str = "medium"
    partial: bool = False

    @property
    def cues(self) -> tuple[str, ...]:
        """Return the cues with at least one reason, in order of first appearance."""
        return tuple(dict.fromkeys(reason.cue for reason in self.reasons))

    @property
    def handoff_reason(self) -> str | None:
        """Return the triggering rule ids joined by commas, for `Reply.handoff_reason`."""
        fired = [reason.rule_id for reason in self.reasons if reason.triggered]
        return ",".join(fired) if fired else None


@dataclass
class CallState:
    """Per-call state of the policy: counters, trackers and the centre's sensitivity."""

    call_id: str
    centre: str
    sensitivity: str
    asr_failure: AsrFailureTracker
    arousal: ArousalTracker
    occurrences: Counter[str] = field(default_factory=Counter)
    final_turns: int = 0
    last_arousal: ArousalReading | None = None


class EscalationPolicy:
    """Applies dialogs/escalation.yaml to caller turns. One instance serves every call."""

    def __init__(self, settings: PolicySettings, *, detectors: TextCueDetectors | None = None) -> None:
        self.settings = settings
        self.detectors = detectors or TextCueDetectors()

    @classmethod
    def from_file(cls, path: str | Path, *, lang: str = "zh") -> EscalationPolicy:
        """Load and validate a policy file; raises KnowledgeBaseError naming file, line and fix."""
        return cls(load_policy(path, lang=lang))

    @classmethod
    def from_text(cls, text: str, *, path: str, lang: str = "zh") -> EscalationPolicy:
        """Validate the text of a policy file, as a stored prompt version keeps it; `path` is named in problems."""
        return cls(parse_policy(text, path=path, lang=lang))

    @property
    def policy_version(self) -> str:
        """The `policy_version` of the loaded file."""
        return self.settings.policy_version

    def cue_settings(self, centre: str) -> dict[str, CueSettings]:
        """Return the cue settings that apply to `centre`."""
        return dict(self.settings.levels[self.settings.sensitivity_of(centre)])

    def new_call(
        self, *, call_id: str, centre: str = "default", sensitivity: str | None = None, sample_rate_hz: int = 16_000
    ) -> CallState:
        """Create the state of one call, with trackers set up for the centre's sensitivity.

        `sensitivity` (low, medium or high) overrides the level that the policy file gives
        the centre, for a deployment that configures it per centre elsewhere.
        """
        if sensitivity is not None and sensitivity not in self.settings.levels:
            raise ValueError(f"invalid sensitivity {sensitivity!r}; use one of {', '.join(self.settings.levels)}")
        if sensitivity is None and centre.lower() not in self.settings.centres:
            logger.warning(
                "Centre %s is not listed in %s; using the sensitivity of 'default'",
                centre,
                self.settings.path,
                extra={"call_id": call_id},
            )
        level = sensitivity or self.settings.sensitivity_of(centre)
        cues = self.settings.levels[level]
        asr = cues[ASR_FAILURE].thresholds
        arousal = cues[AROUSAL].thresholds
        return CallState(
            call_id=call_id,
            centre=centre,
            sensitivity=level,
            asr_failure=AsrFailureTracker(
                min_confidence=float(asr["min_confidence"]), consecutive_turns=int(asr["consecutive_turns"])
            ),
            arousal=ArousalTracker(
                sample_rate_hz=sample_rate_hz,
                baseline_turns=int(arousal["baseline_turns"]),
                loudness_rise_db=float(arousal["loudness_rise_db"]),
                pitch_rise_semitones=float(arousal["pitch_rise_semitones"]),
            ),
        )

    def evaluate(
        self,
        turn_text: str,
        *,
        partial: bool,
        audio: bytes | np.ndarray | None,
        call_state: CallState,
    ) -> Decision:
        """Decide whether this caller turn hands the call over, and log the decision.

        `audio` is the turn's mono PCM at the call's sample rate (16 kHz by default), int16
        bytes or array, or float samples in -1..1; None skips the arousal cue.
        """
        started = time.perf_counter()
        cues = self.settings.levels[call_state.sensitivity]
        large_amount = float(cues[MONEY_MOVEMENT].thresholds["large_amount_yuan"])
        hits = self.detectors.detect(turn_text, large_amount_yuan=large_amount) if turn_text.strip() else []

        if not partial:
            call_state.final_turns += 1
            if audio is not None:
                reading = call_state.arousal.add_turn(audio)
                call_state.last_arousal = reading
                if reading.aroused:
                    hits.append(Hit(cue=AROUSAL, rule_id=ArousalTracker.RULE_ID, score=1.0))
            hits.extend(call_state.asr_failure.detect())

        reasons = self._apply(hits, cues, call_state, partial=partial)
        fired = [reason for reason in reasons if reason.triggered]
        best = min(fired, key=lambda r: (cues[r.cue].priority, ALL_CUES.index(r.cue)), default=None)
        decision = Decision(
            escalate=best is not None,
            reasons=tuple(fired + [reason for reason in reasons if not reason.triggered]),
            skill=cues[best.cue].skill if best is not None else None,
            priority=cues[best.cue].priority if best is not None else None,
            policy_version=self.settings.policy_version,
            centre=call_state.centre,
            sensitivity=call_state.sensitivity,
            partial=partial,
        )
        self._log(decision, call_state, elapsed_seconds=time.perf_counter() - started)
        return decision

    @staticmethod
    def _apply(
        hits: list[Hit], cues: Mapping[str, CueSettings], call_state: CallState, *, partial: bool
    ) -> list[Reason]:
        reasons: list[Reason] = []
        by_cue: dict[str, list[Hit]] = {}
        for hit in hits:
            by_cue.setdefault(hit.cue, []).append(hit)
        for cue, cue_hits in by_cue.items():
            settings = cues[cue]
            qualifies = max(hit.score for hit in cue_hits) >= settings.min_score
            count = call_state.occurrences[cue] + (1 if qualifies else 0)
            if qualifies and not partial:
                call_state.occurrences[cue] = count
            for hit in cue_hits:
                above = hit.score >= settings.min_score
                action = settings.action if above else "flag_only"
                triggered = above and (
                    action == "handoff_now" or (action == "handoff_after" and count >= settings.occurrences)
                )
                reasons.append(
                    Reason(
                        cue=cue,
                        rule_id=hit.rule_id,
                        score=hit.score,
                        action=action,
                        triggered=triggered,
                        occurrences=count,
                        start=hit.start,
                        end=hit.end,
                        matched=hit.matched,
                        corrections=hit.corrections,
                    )
                )
        return reasons

    @staticmethod
    def _log(decision: Decision, call_state: CallState, *, elapsed_seconds: float) -> None:
        # Rule ids, scores and counts only: the caller's words are personal data.
        level = logging.DEBUG if decision.partial and not decision.reasons else logging.INFO
        logger.log(
            level,
            "escalation decision call=%s turn=%d partial=%s escalate=%s skill=%s priority=%s "
            "centre=%s sensitivity=%s policy_version=%s reasons=[%s] elapsed_ms=%.1f",
            call_state.call_id,
            call_state.final_turns,
            decision.partial,
            decision.escalate,
            decision.skill or "-",
            decision.priority or "-",
            decision.centre,
            decision.sensitivity,
            decision.policy_version,
            " ".join(reason.describe() for reason in decision.reasons),
            elapsed_seconds * 1000.0,
            extra={"call_id": call_state.call_id, "turn_index": call_state.final_turns},
        )
