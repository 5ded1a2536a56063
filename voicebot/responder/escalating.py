"""Runs the escalation policy on every caller turn before the dialog responder.

Fraud, money movement, emotion and requests for a person go to a human whatever the dialog
is doing, so the policy sees each turn first. When it decides to escalate, the caller hears
the transfer message and the reply carries the reasons; otherwise the inner responder
answers and the outcome (answered or not) feeds the policy's failed-turn counter.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Protocol

from voicebot.escalation import Decision, EscalationPolicy
from voicebot.escalation.policy import CallState
from voicebot.responder.base import CallerTurn, DialogContext, Reply, Responder, ReplyKind

logger = logging.getLogger(__name__)

# Calls whose escalation state is kept; the oldest is dropped beyond this (a finished call
# normally removes its own with `end_call`).
MAX_TRACKED_CALLS = 10_000


class MessageSource(Protocol):
    def render(self, key: str, language: str, **variables: str) -> str: ...


class EscalatingResponder:
    """Responder that consults the escalation policy first and the inner responder second."""

    def __init__(self, *, policy: EscalationPolicy, inner: Responder, messages: MessageSource) -> None:
        self._policy = policy
        self._inner = inner
        self._messages = messages
        self._calls: OrderedDict[str, CallState] = OrderedDict()
        self.last_decisions: OrderedDict[str, Decision] = OrderedDict()

    @property
    def inner(self) -> Responder:
        return self._inner

    def _call_state(self, context: DialogContext) -> CallState:
        state = self._calls.get(context.call_id)
        if state is None:
            state = self._policy.new_call(call_id=context.call_id, centre=context.centre)
            self._calls[context.call_id] = state
            while len(self._calls) > MAX_TRACKED_CALLS:
                self._calls.popitem(last=False)
        return state

    def end_call(self, call_id: str) -> None:
        """Forget a finished call's escalation state."""
        self._calls.pop(call_id, None)
        self.last_decisions.pop(call_id, None)

    async def respond(self, turn: CallerTurn, context: DialogContext) -> Reply:
        state = self._call_state(context)
        audio = turn.audio or None
        decision = self._policy.evaluate(turn.text, partial=False, audio=audio, call_state=state)
        if decision.escalate:
            self.last_decisions[context.call_id] = decision
            cue = next(reason.cue for reason in decision.reasons if reason.triggered)
            return Reply(
                text=self._messages.render("transfer", context.language),
                kind=ReplyKind.HANDOFF,
                confidence=1.0,
                handoff_reason=cue,
                intent="escalation",
                actions=tuple(reason.rule_id for reason in decision.reasons if reason.triggered),
            )
        reply = await self._inner.respond(turn, context)
        failed = reply.kind in (ReplyKind.CLARIFY, ReplyKind.FALLBACK)
        state.asr_failure.add_turn(confidence=turn.asr_confidence, failed=failed)
        if reply.kind is ReplyKind.HANDOFF:
            self.last_decisions.pop(context.call_id, None)
        return reply
