"""DialogResponder: the Responder that runs flows and keeps dialog state per call.

Routing of one caller turn, in order:

1. A request for a person, a fraud report, a money transfer or a complaint: HANDOFF
   with reason human_request, fraud, money_movement or emotion, from any step.
2. A flow is active: the waiting step takes the turn (a slot value, yes or no, a
   correction, keypad digits). A turn the step cannot use is a topic change when it
   starts another flow, is answered by the fallback responder when that one is sure
   (then the bot returns to the step's question), and otherwise counts as a failed
   attempt that asks again.
3. No flow: a flow trigger starts that flow; a goodbye ends the call; anything else
   goes to the fallback responder (the FAQ responder, later the LLM).

The state is loaded from the store at the start of every turn and saved at its end,
so consecutive turns of a call may run in different worker processes.
"""

from __future__ import annotations

import dataclasses
import re
import logging

from voicebot.dialog import nlu
from voicebot.dialog.banking import BankingApi
from voicebot.dialog.engine import FlowEngine, FlowOutcome
from voicebot.dialog.flows import FlowSet
from voicebot.dialog.state import DialogState, DialogStateStore, TurnSummary
from voicebot.responder.base import CallerTurn, DialogContext, Reply, ReplyKind, Responder
from voicebot.responder.messages import Messages

logger = logging.getLogger(__name__)

# Who answered a turn, stored in TurnSummary.handler: the flow engine, a fixed rule
# (handoff, goodbye, not heard) or the fallback responder.
HANDLER_FLOW = "flow"
HANDLER_RULE = "rule"
HANDLER_FALLBACK = "fallback"


# Words by which a caller asks the bot to act on their account rather than asking how.
_ACTION_REQUEST = re.compile(r"帮我|给我|替我|帮忙|请你|麻烦你|帮我哋|同我|幫我")

class DialogResponder:
    """Routes caller turns between flows, handoffs and a fallback responder."""

    def __init__(
        self,
        *,
        flows: FlowSet,
        banking: BankingApi,
        store: DialogStateStore,
        fallback: Responder,
        system_messages: Messages,
        prompt_version: str = "",
        fallback_min_confidence: float = 0.8,
        faq_first_flows: frozenset[str] = frozenset({"bill_inquiry", "credit_limit_increase"}),
    ) -> None:
        """Create the responder; share one instance between calls.

        Args:
            flows: validated flows and their messages (load_flows).
            banking: the bank's API, or RedisBankingSimulator.
            store: where the dialog state of each call lives.
            fallback: answers turns that no flow or rule takes, e.g. the FaqResponder.
            system_messages: prompts/messages.yaml (transfer, goodbye, not_heard).
            prompt_version: the prompt-file version this process speaks, stored per call.
            fallback_min_confidence: 0..1; inside a flow, a fallback answer below this
                confidence is not spoken and the step asks again.
        """
        self.flows = flows
        self.engine = FlowEngine(flows, banking=banking)
        self.store = store
        self.fallback = fallback
        self.system_messages = system_messages
        self.prompt_version = prompt_version
        self.fallback_min_confidence = fallback_min_confidence
        self.faq_first_flows = faq_first_flows

    async def respond(self, turn: CallerTurn, context: DialogContext) -> Reply:
        """Answer one caller turn and save the call's dialog state."""
        state = await self.store.load(context.call_id)
        if state is None:
            state = DialogState(
                call_id=context.call_id,
                language=context.language,
                centre=context.centre,
                prompt_version=self.prompt_version,
                caller=context.caller,
            )
        elif self.prompt_version and state.prompt_version != self.prompt_version:
            logger.info("Call continues on prompt version %s, started on %s", self.prompt_version,
                        state.prompt_version, extra={"call_id": context.call_id})
        if turn.language:
            state.language = turn.language

        result = nlu.classify(turn.text)
        for cue in result.cues:
            state.add_cue(cue)
        reply, handler = await self._route(state, result, turn, context)
        state.intent = reply.intent or result.intent

        state.turns.append(
            TurnSummary(
                turn_index=turn.turn_index,
                intent=state.intent,
                confidence=round(result.confidence, 3),
                kind=reply.kind.value,
                flow_id=state.flow_id or reply.topic,
                step_id=state.step_id,
                dtmf=bool(turn.dtmf),
                actions=list(reply.actions),
                handler=handler,
            )
        )
        if reply.kind is ReplyKind.HANDOFF or reply.end_call:
            state.ended = True
        context.expected = None if state.ended else self.engine.expected_input(state)
        await self.store.save(state)
        logger.info("Turn %d: intent=%s handler=%s %s", turn.turn_index, result.intent, handler, state.log_summary(),
                    extra={"call_id": context.call_id})
        return reply

    async def _route(
        self, state: DialogState, result: nlu.NluResult, turn: CallerTurn, context: DialogContext
    ) -> tuple[Reply, str]:
        reason = nlu.ESCALATION_INTENTS.get(result.intent)
        if reason is not None:
            state.add_cue(reason)
            state.handoff_reason = reason
            state.clear_flow()
            return self._handoff(state, result, reason), HANDLER_RULE

        if self.engine.current(state) is not None:
            return await self._in_flow(state, result, turn, context)

        flow = self.flows.for_intent(result.intent)
        if (
            flow is not None
            and flow.id in self.faq_first_flows
            and not context.caller
            and not _ACTION_REQUEST.search(turn.text)
        ):
            # Without the caller's number the account cannot be looked up, so "我想查一下这个月的
            # 账单" gets the approved answer on how to check it. A caller who asks the bot to act
            # ("帮我查一下") still gets the flow, which identifies them another way.
            answer = await self.fallback.respond(turn, context)
            if answer.kind is ReplyKind.ANSWER and answer.topic == flow.id:
                return dataclasses.replace(answer, intent=result.intent), HANDLER_FALLBACK
        if flow is not None:
            outcome = await self.engine.start(flow, state, turn, cues=result.cues)
            return self._flow_reply(state, result, outcome, flow.id), HANDLER_FLOW
        if result.intent == nlu.GOODBYE:
            return self._system(state, result, "goodbye", ReplyKind.ANSWER, end_call=True), HANDLER_RULE
        if result.intent == nlu.NOTHING:
            return self._system(state, result, "not_heard", ReplyKind.FALLBACK), HANDLER_RULE
        if result.intent == nlu.REPEAT:
            last = next((text for role, text in reversed(context.history) if role == "bot" and text), None)
            if last is not None:
                return Reply(text=last, kind=ReplyKind.ANSWER, confidence=result.confidence, intent=result.intent), HANDLER_RULE
        reply = await self.fallback.respond(turn, context)
        return dataclasses.replace(reply, intent=result.intent), HANDLER_FALLBACK

    async def _in_flow(
        self, state: DialogState, result: nlu.NluResult, turn: CallerTurn, context: DialogContext
    ) -> tuple[Reply, str]:
        current = self.engine.current(state)
        assert current is not None
        flow, step = current
        outcome = await self.engine.try_turn(state, result, turn)
        if outcome is not None:
            return self._flow_reply(state, result, outcome, flow.id), HANDLER_FLOW

        other = self.flows.for_intent(result.intent)
        if other is not None and other.id != flow.id:
            logger.info("Topic change from flow %s to %s", flow.id, other.id, extra={"call_id": state.call_id})
            state.clear_flow()
            outcome = await self.engine.start(other, state, turn, cues=result.cues)
            return self._flow_reply(state, result, outcome, other.id), HANDLER_FLOW
        if other is not None:
            # The caller named the flow they are already in: ask the step's question again.
            question = self.engine.question(state, flow, step)
            return self._flow_reply(state, result, FlowOutcome(texts=[question]), flow.id), HANDLER_FLOW
        if result.intent == nlu.GOODBYE:
            state.clear_flow()
            return self._system(state, result, "goodbye", ReplyKind.ANSWER, end_call=True), HANDLER_RULE

        if result.intent == nlu.FAQ and result.text:
            answer = await self.fallback.respond(turn, context)
            if answer.kind is ReplyKind.ANSWER and answer.confidence >= self.fallback_min_confidence:
                resume = self.flows.messages.render("flow_resume", state.language)
                question = self.engine.question(state, flow, step)
                return (
                    Reply(text=answer.text + resume + question, kind=ReplyKind.ANSWER, confidence=answer.confidence,
                          topic=answer.topic, candidates=answer.candidates, intent=result.intent),
                    HANDLER_FALLBACK,
                )
        outcome = await self.engine.reprompt(state, turn)
        return self._flow_reply(state, result, outcome, flow.id), HANDLER_FLOW

    def _flow_reply(self, state: DialogState, result: nlu.NluResult, outcome: FlowOutcome, flow_id: str) -> Reply:
        text = outcome.text
        intent = result.intent
        if outcome.filled_slot is not None and intent in (nlu.FAQ, nlu.NOTHING):
            intent = nlu.INFORM
        if outcome.kind is ReplyKind.HANDOFF and not text:
            text = self.system_messages.render("transfer", state.language)
        return Reply(
            text=text,
            kind=outcome.kind,
            confidence=outcome.confidence,
            topic=flow_id,
            handoff_reason=outcome.handoff_reason,
            intent=intent,
            actions=tuple(outcome.actions),
            slots=_handoff_slots(state) if outcome.kind is ReplyKind.HANDOFF else {},
        )

    def _handoff(self, state: DialogState, result: nlu.NluResult, reason: str) -> Reply:
        return Reply(
            text=self.system_messages.render("transfer", state.language),
            kind=ReplyKind.HANDOFF,
            confidence=result.confidence,
            handoff_reason=reason,
            intent=result.intent,
            slots=_handoff_slots(state),
        )

    def _system(
        self, state: DialogState, result: nlu.NluResult, key: str, kind: ReplyKind, *, end_call: bool = False
    ) -> Reply:
        return Reply(
            text=self.system_messages.render(key, state.language),
            kind=kind,
            confidence=result.confidence,
            intent=result.intent,
            end_call=end_call,
        )


def _handoff_slots(state: DialogState) -> dict[str, str]:
    """Return what the bot collected, for the rep who takes the call over."""
    slots = {name: slot.value for name, slot in state.slots.items()}
    if state.customer_id:
        slots.setdefault("customer_id", state.customer_id)
    slots["identity_verified"] = "yes" if state.identity_verified else "no"
    return slots
