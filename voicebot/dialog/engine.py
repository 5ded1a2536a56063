"""Runs flows turn by turn: says prompts, collects and confirms slots, calls the bank.

The engine is a state machine over `DialogState`: `start` enters a flow, `try_turn`
applies one caller turn to the step that waits for it (a collect or confirm step), and
`reprompt` counts a failed attempt. Steps that need no caller input (say, action,
switch) run one after another until a step waits, hands off or ends the flow.

A turn the waiting step cannot use (no value, no yes or no) makes `try_turn` return
None without touching the state, so the responder can treat it as a topic change, an
FAQ question or a failed attempt.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field

from voicebot.asr.hints import ExpectedInput
from voicebot.dialog import nlu
from voicebot.dialog.banking import AuditRecord, BankingApi, new_audit_id
from voicebot.dialog.flows import ACTIONS, Flow, FlowSet, SlotSpec, Step
from voicebot.dialog.numbers import spell_digits
from voicebot.dialog.state import DialogState, SlotValue
from voicebot.responder.base import CallerTurn, ReplyKind

logger = logging.getLogger(__name__)

# Keypad answers to a confirmation: 1 is yes, 2 is no. The confirm messages say so.
DTMF_YES = "1"
DTMF_NO = "2"
# A value extracted with less confidence than this, from a turn that names another
# flow's topic or asks a question, is not taken as an answer to the step.
TOPIC_CHANGE_CONFIDENCE = 0.3
MAX_STEPS_PER_TURN = 50  # a guard against a `next` loop in a flow file

# (ok, failure reason, bank slots to fill) returned by every _action_* method.
ActionResult = tuple[bool, str, dict[str, str]]


@dataclass
class FlowOutcome:
    """Result of one turn in a flow: the texts to speak, the actions run and how the flow stands."""

    texts: list[str] = field(default_factory=list)
    kind: ReplyKind = ReplyKind.ANSWER
    confidence: float = 1.0
    handoff_reason: str | None = None
    actions: list[str] = field(default_factory=list)
    finished: bool = False  # the flow ended: completed or handed off
    completed: bool = False
    filled_slot: str | None = None  # the slot the caller's turn filled, if any

    @property
    def text(self) -> str:
        return "".join(self.texts)


class FlowEngine:
    """Walks flows of a FlowSet against a BankingApi."""

    def __init__(self, flows: FlowSet, *, banking: BankingApi) -> None:
        self.flows = flows
        self.banking = banking

    # ------------------------------------------------------------ entry points

    async def start(
        self, flow: Flow, state: DialogState, turn: CallerTurn, *, cues: tuple[str, ...] = ()
    ) -> FlowOutcome:
        """Enter `flow` at its first step.

        Slots the trigger turn already contains are filled ("我的卡丢了，尾号六二八八"),
        and a yes_no slot named after an NLU cue in `cues` (theft) is set to "yes".
        """
        for spec in flow.slots.values():
            if spec.type != "bank":
                state.slots.pop(spec.name, None)
                state.confirmations.pop(spec.name, None)
        state.flow_id = flow.id
        state.attempts = 0
        state.pending_confirmation = None
        for spec in flow.slots.values():
            if spec.type in ("digits", "address", "amount"):
                value = _extract(spec, turn.text, "", whole_turn=False)
                if value is not None and _valid(spec, value):
                    state.set_slot(spec.name, SlotValue(value.value, value.confidence, turn.turn_index, "speech"))
            elif spec.type == "yes_no" and spec.name in cues:
                state.set_slot(spec.name, SlotValue("yes", 0.9, turn.turn_index, "speech"))
        logger.info("Flow %s started", flow.id, extra={"call_id": state.call_id})
        outcome = FlowOutcome()
        await self._run(state, flow, flow.steps[0], outcome, turn)
        return outcome

    def current(self, state: DialogState) -> tuple[Flow, Step] | None:
        """Return the active flow and the step waiting for the caller, or None."""
        if state.flow_id is None or state.step_id is None:
            return None
        flow = self.flows.flows.get(state.flow_id)
        if flow is None:
            # The flow was removed by a reload while the call was in it.
            state.clear_flow()
            return None
        return flow, flow.step(state.step_id)

    def expected_input(self, state: DialogState) -> ExpectedInput | None:
        """Return what the waiting step expects from the caller's next turn, for the recogniser.

        A collect step expects its slot (digits of a given length, an address, an amount); a
        confirm step expects yes or no. None outside a flow or at a step that takes free text.
        """
        if state.flow_id is None or state.step_id is None:
            return None
        flow = self.flows.flows.get(state.flow_id)
        if flow is None:
            return None
        try:
            step = flow.step(state.step_id)
        except KeyError:
            return None
        if step.collect is not None and step.collect in flow.slots:
            spec = flow.slots[step.collect]
            if spec.type in ("digits", "address", "amount", "yes_no"):
                return ExpectedInput(kind=spec.type, accepts=lambda text: _accepts(spec, text), length=spec.length)
            return None
        if step.confirm is not None:
            return ExpectedInput(kind="yes_no", accepts=lambda text: nlu.extract_yes_no(text) is not None)
        return None

    async def try_turn(self, state: DialogState, result: nlu.NluResult, turn: CallerTurn) -> FlowOutcome | None:
        """Apply a caller turn to the waiting step; None when the step cannot use the turn."""
        current = self.current(state)
        if current is None:
            return None
        flow, step = current
        if result.intent == nlu.REPEAT:
            return FlowOutcome(texts=[self.question(state, flow, step)], confidence=result.confidence)
        if result.correction and step.confirm is None:
            return await self._correct(state, flow, result, turn)
        if step.collect is not None:
            return await self._collect(state, flow, step, result, turn)
        if step.confirm is not None:
            return await self._confirm(state, flow, step, result, turn)
        return None

    async def reprompt(self, state: DialogState, turn: CallerTurn) -> FlowOutcome:
        """Count a failed attempt at the waiting step and ask again, or follow on_fail."""
        current = self.current(state)
        if current is None:
            return FlowOutcome(kind=ReplyKind.FALLBACK, confidence=0.0)
        flow, step = current
        return await self._failed_attempt(state, flow, step, turn)

    def question(self, state: DialogState, flow: Flow, step: Step) -> str:
        """Return the text that asks for what the waiting step needs."""
        key = step.confirm or step.say
        if key is None:
            return ""
        return self._render(key, state, flow, step.confirms_slot or step.collect)

    # ------------------------------------------------------------ steps

    async def _collect(
        self, state: DialogState, flow: Flow, step: Step, result: nlu.NluResult, turn: CallerTurn
    ) -> FlowOutcome | None:
        assert step.collect is not None
        spec = flow.slots[step.collect]
        value = _extract(spec, turn.text, turn.dtmf, whole_turn=True)
        if value is None:
            return None
        topical = result.intent in nlu.FLOW_INTENTS or result.intent in nlu.ESCALATION_INTENTS or result.question
        if value.confidence < TOPIC_CHANGE_CONFIDENCE and topical:
            return None
        if not _valid(spec, value):
            logger.info("Slot %s rejected (confidence %.2f, complete %s)", spec.name, value.confidence, value.complete,
                        extra={"call_id": state.call_id})
            return await self._failed_attempt(state, flow, step, turn)
        state.set_slot(spec.name, SlotValue(value.value, value.confidence, turn.turn_index, value.source))  # type: ignore[arg-type]
        state.attempts = 0
        outcome = FlowOutcome(confidence=value.confidence, filled_slot=spec.name)
        await self._run(state, flow, self._after(flow, step), outcome, turn)
        return outcome

    async def _confirm(
        self, state: DialogState, flow: Flow, step: Step, result: nlu.NluResult, turn: CallerTurn
    ) -> FlowOutcome | None:
        slot = step.confirms_slot
        assert slot is not None
        answer = _dtmf_answer(turn.dtmf) or result.yes_no
        if result.correction:
            answer = "no"
        if answer != "yes":
            # "不是，是六二九九": a new value in the same turn is read back at once.
            spec = flow.slots[slot]
            value = _extract(spec, nlu.strip_answer_prefix(turn.text), "", whole_turn=True)
            if value is not None and _valid(spec, value) and value.value != state.slot_text(slot):
                state.set_slot(slot, SlotValue(value.value, value.confidence, turn.turn_index, "speech"))
                return FlowOutcome(texts=[self.question(state, flow, step)], confidence=value.confidence,
                                   filled_slot=slot)
        if answer is None:
            return None
        if answer == "yes":
            state.confirmations[slot] = {
                "value": state.slot_text(slot),
                "turn_index": turn.turn_index,
                "at": time.time(),
                "source": "dtmf" if _dtmf_answer(turn.dtmf) else "speech",
                "message": step.confirm,
            }
            state.pending_confirmation = None
            state.attempts = 0
            outcome = FlowOutcome(confidence=result.confidence)
            await self._run(state, flow, self._after(flow, step), outcome, turn)
            return outcome
        # No: collect the slot again.
        state.slots.pop(slot, None)
        state.pending_confirmation = None
        target = flow.step(step.on_no) if step.on_no else flow.collect_step(slot)
        assert target is not None  # the loader requires a collect step before a confirm step
        return self._ask_again(state, flow, target, confidence=result.confidence)

    async def _correct(self, state: DialogState, flow: Flow, result: nlu.NluResult, turn: CallerTurn) -> FlowOutcome | None:
        slot = state.last_slot
        if slot is None or slot not in flow.slots or flow.collect_step(slot) is None:
            return None
        collect = flow.collect_step(slot)
        assert collect is not None
        spec = flow.slots[slot]
        value = _extract(spec, turn.text, turn.dtmf, whole_turn=False)
        state.confirmations.pop(slot, None)
        state.pending_confirmation = None
        if value is not None and _valid(spec, value):
            state.set_slot(slot, SlotValue(value.value, value.confidence, turn.turn_index, value.source))  # type: ignore[arg-type]
            outcome = FlowOutcome(confidence=value.confidence, filled_slot=slot)
            await self._run(state, flow, self._after(flow, collect), outcome, turn)
            return outcome
        state.slots.pop(slot, None)
        return self._ask_again(state, flow, collect, confidence=result.confidence)

    def _ask_again(self, state: DialogState, flow: Flow, step: Step, *, confidence: float) -> FlowOutcome:
        state.step_id = step.id
        state.attempts = 0
        # The caller said no or corrected themselves: ask the plain question, not the
        # "I did not hear you" reprompt.
        texts = [self._render(step.say, state, flow, step.collect)] if step.say else []
        return FlowOutcome(texts=texts, kind=ReplyKind.CLARIFY, confidence=confidence)

    async def _failed_attempt(self, state: DialogState, flow: Flow, step: Step, turn: CallerTurn) -> FlowOutcome:
        state.attempts += 1
        if state.attempts >= step.max_attempts:
            logger.info("Step %s of flow %s failed after %d attempts", step.id, flow.id, state.attempts,
                        extra={"call_id": state.call_id})
            outcome = FlowOutcome(kind=ReplyKind.CLARIFY, confidence=0.0)
            await self._follow_failure(state, flow, step, "default", outcome, turn)
            return outcome
        key = step.reprompt or step.confirm or step.say
        spec = flow.slots.get(step.collect) if step.collect else None
        if spec is not None and spec.dtmf and step.dtmf_prompt and state.attempts >= 2:
            key = step.dtmf_prompt
        texts = [self._render(key, state, flow, step.confirms_slot or step.collect)] if key else []
        return FlowOutcome(texts=texts, kind=ReplyKind.CLARIFY, confidence=0.0)

    # ------------------------------------------------------------ the step loop

    def _after(self, flow: Flow, step: Step) -> Step | None:
        if step.next:
            return flow.step(step.next)
        return flow.following(step.id)

    async def _run(self, state: DialogState, flow: Flow, step: Step | None, outcome: FlowOutcome, turn: CallerTurn) -> None:
        """Run steps from `step` until one waits for the caller, hands off or ends the flow."""
        for _ in range(MAX_STEPS_PER_TURN):
            if step is None:
                self._finish(state, flow, outcome, completed=True)
                return
            state.step_id = step.id
            if step.skip_if_verified and state.identity_verified:
                step = self._after(flow, step)
                continue
            if step.action is not None:
                ok, reason = await self._act(state, flow, step, turn)
                if ok:
                    outcome.actions.append(step.action)
                    step = self._after(flow, step)
                    continue
                await self._follow_failure(state, flow, step, reason, outcome, turn)
                return
            if step.switch is not None:
                value = state.slot_text(step.switch) or ""
                target = step.cases.get(value)
                step = flow.step(target) if target else self._after(flow, step)
                continue
            if step.collect is not None:
                existing = state.slots.get(step.collect)
                if existing is not None and existing.confidence >= flow.slots[step.collect].min_confidence:
                    step = self._after(flow, step)
                    continue
                outcome.texts.append(self._render(step.say or "", state, flow, step.collect))
                state.attempts = 0
                return
            if step.confirm is not None:
                state.pending_confirmation = step.confirms_slot
                state.attempts = 0
                outcome.texts.append(self._render(step.confirm, state, flow, step.confirms_slot))
                return
            if step.say:
                outcome.texts.append(self._render(step.say, state, flow, state.last_slot))
            if step.forget:
                state.slots.pop(step.forget, None)
                state.confirmations.pop(step.forget, None)
            if step.handoff is not None:
                outcome.kind = ReplyKind.HANDOFF
                outcome.handoff_reason = step.handoff
                self._finish(state, flow, outcome, completed=False)
                return
            if step.end:
                self._finish(state, flow, outcome, completed=True)
                return
            step = self._after(flow, step)
        raise RuntimeError(f"flow {flow.id} ran {MAX_STEPS_PER_TURN} steps without waiting; check its 'next' keys")

    async def _follow_failure(
        self, state: DialogState, flow: Flow, step: Step, reason: str, outcome: FlowOutcome, turn: CallerTurn
    ) -> None:
        target = step.on_fail.get(reason) or step.on_fail.get("default")
        if target is None:
            outcome.kind = ReplyKind.HANDOFF
            outcome.handoff_reason = f"{flow.id}_{reason}" if step.action else "collect_failed"
            self._finish(state, flow, outcome, completed=False)
            return
        await self._run(state, flow, flow.step(target), outcome, turn)

    def _finish(self, state: DialogState, flow: Flow, outcome: FlowOutcome, *, completed: bool) -> None:
        outcome.finished = True
        outcome.completed = completed
        if completed and flow.id not in state.completed_flows:
            state.completed_flows.append(flow.id)
        if outcome.handoff_reason:
            state.handoff_reason = outcome.handoff_reason
        logger.info("Flow %s finished: completed=%s handoff=%s", flow.id, completed, outcome.handoff_reason,
                    extra={"call_id": state.call_id})
        state.clear_flow()

    def _render(self, key: str, state: DialogState, flow: Flow, digits_slot: str | None) -> str:
        variables = {name: "" for name in flow.slots}
        for name, slot in state.slots.items():
            spec = flow.slots.get(name)
            variables[name] = spell_digits(slot.value) if spec is not None and spec.type == "digits" else slot.value
        digits = state.slot_text(digits_slot) if digits_slot else None
        variables["digits"] = spell_digits(digits) if digits and digits.isdigit() else ""
        return self.flows.messages.render(key, state.language, **variables)

    # ------------------------------------------------------------ banking actions

    async def _act(self, state: DialogState, flow: Flow, step: Step, turn: CallerTurn) -> tuple[bool, str]:
        """Run a step's banking action; return (ok, failure reason)."""
        assert step.action is not None
        name = step.action
        args = {parameter: state.slot_text(slot) or "" for parameter, slot in step.args.items()}
        _, outputs = ACTIONS[name]
        handler = getattr(self, f"_action_{name}")
        ok, reason, values = await handler(state, args, turn)
        logger.info("Action %s: ok=%s reason=%s", name, ok, reason or "-", extra={"call_id": state.call_id})
        # Values come with a failure too (the current limit when a request is too low).
        for output in outputs:
            if output in values:
                state.set_slot(output, SlotValue(values[output], 1.0, turn.turn_index, "bank"))
        return ok, reason

    async def _action_lookup_customer(self, state: DialogState, args: dict[str, str], turn: CallerTurn) -> ActionResult:
        customer = await self.banking.find_customer_by_phone(state.caller) if state.caller else None
        if customer is None and state.customer_id:
            customer = await self.banking.get_customer(state.customer_id)
        if customer is None:
            return False, "not_found", {}
        state.customer_id = customer.customer_id
        return True, "", {"customer_id": customer.customer_id, "customer_name": customer.name}

    async def _action_verify_card(self, state: DialogState, args: dict[str, str], turn: CallerTurn) -> ActionResult:
        if not state.customer_id:
            return False, "no_customer", {}
        card = await self.banking.verify_last4(state.customer_id, args["last4"])
        if card is None:
            return False, "no_match", {}
        state.identity_verified = True
        return True, "", {"card_id": card.card_id, "card_product": card.product, "card_status": card.status}

    async def _action_freeze_card(self, state: DialogState, args: dict[str, str], turn: CallerTurn) -> ActionResult:
        outcome = await self.banking.freeze_card(args["card_id"], call_id=state.call_id)
        return outcome.ok, outcome.reason, {}

    async def _action_activate_card(self, state: DialogState, args: dict[str, str], turn: CallerTurn) -> ActionResult:
        outcome = await self.banking.activate_card(args["card_id"], call_id=state.call_id)
        return outcome.ok, outcome.reason, {}

    async def _action_get_statement(self, state: DialogState, args: dict[str, str], turn: CallerTurn) -> ActionResult:
        statement = await self.banking.get_statement(args["card_id"])
        if statement is None:
            return False, "no_statement", {}
        return True, "", {
            "statement_balance": statement.balance,
            "minimum_payment": statement.minimum_payment,
            "due_date": _spoken_date(statement.due_date),
            "statement_month": f"{int(statement.period[5:7])}月",
        }

    async def _action_request_credit_limit_increase(self, state: DialogState, args: dict[str, str], turn: CallerTurn) -> ActionResult:
        card_id = args["card_id"]
        cards = await self.banking.list_cards(state.customer_id or "")
        current = next((card.credit_limit for card in cards if card.card_id == card_id), None)
        outcome = await self.banking.request_credit_limit_increase(card_id, int(args["amount"]), call_id=state.call_id)
        values = {"current_limit": str(current)} if current is not None else {}
        if outcome.ok:
            values["request_reference"] = outcome.reference
        return outcome.ok, outcome.reason, values

    async def _action_change_billing_address(self, state: DialogState, args: dict[str, str], turn: CallerTurn) -> ActionResult:
        new_address = args["new_address"]
        slot = next((name for name, value in state.slots.items() if value.value == new_address and value.source != "bank"), "")
        confirmation = state.confirmations.get(slot)
        if confirmation is None or confirmation.get("value") != new_address:
            # Customer data changes only after the caller confirmed this exact value.
            return False, "not_confirmed", {}
        if not state.customer_id:
            return False, "no_customer", {}
        customer = await self.banking.get_customer(state.customer_id)
        if customer is None:
            return False, "no_customer", {}
        verified = "card last4 verified" if state.identity_verified else "card not verified"
        audit = AuditRecord(
            audit_id=new_audit_id(),
            action="change_billing_address",
            customer_id=customer.customer_id,
            call_id=state.call_id,
            confirmed_by=f"caller {state.caller or 'withheld'} as customer {customer.customer_id}, {verified}",
            confirmed_at=float(confirmation["at"]),
            confirmation_turn=int(confirmation["turn_index"]),
            old_value=customer.billing_address,
            new_value=new_address,
            recorded_at=time.time(),
            details={
                "confirmation_source": str(confirmation.get("source")),
                "read_back_message": str(confirmation.get("message")),
                "prompt_version": state.prompt_version,
            },
        )
        outcome = await self.banking.change_billing_address(customer.customer_id, new_address, audit=audit)
        return outcome.ok, outcome.reason, {"audit_id": audit.audit_id} if outcome.ok else {}

    async def _action_check_recent_transactions(self, state: DialogState, args: dict[str, str], turn: CallerTurn) -> ActionResult:
        if not state.customer_id:
            return False, "no_customer", {}
        customer = await self.banking.get_customer(state.customer_id)
        transactions = await self.banking.list_recent_transactions(state.customer_id)
        foreign = customer is not None and any(t.country != customer.home_country for t in transactions)
        if foreign:
            state.add_cue("location_mismatch")
        return True, "", {"foreign_transactions": "yes" if foreign else "no"}


def _extract(spec: SlotSpec, text: str, dtmf: str, *, whole_turn: bool) -> nlu.ExtractedSlot | None:
    if spec.type == "digits":
        if dtmf and spec.dtmf:
            digits, _ = nlu.digits_from_dtmf(dtmf)
            if digits:
                complete = spec.length is None or len(digits) == spec.length
                return nlu.ExtractedSlot(digits, 1.0, complete=complete, source="dtmf")
        return nlu.extract_digits(text, length=spec.length or 4) if text else None
    if spec.type == "address":
        return nlu.extract_address(text, whole_turn=whole_turn)
    if spec.type == "amount":
        return nlu.extract_amount(text)
    if spec.type == "yes_no":
        answer = _dtmf_answer(dtmf)
        return nlu.ExtractedSlot(answer, 1.0, source="dtmf") if answer else nlu.extract_yes_no(text)
    if spec.type == "text":
        normalized = nlu.normalize(text)
        return nlu.ExtractedSlot(normalized, 0.8) if normalized and whole_turn else None
    return None


def _accepts(spec: SlotSpec, text: str) -> bool:
    value = _extract(spec, text, "", whole_turn=True)
    return value is not None and _valid(spec, value)


def _valid(spec: SlotSpec, value: nlu.ExtractedSlot) -> bool:
    if not value.complete or value.confidence < spec.min_confidence:
        return False
    if spec.length is not None and len(value.value) != spec.length:
        return False
    if spec.pattern is not None and re.fullmatch(spec.pattern, value.value) is None:
        return False
    if spec.type == "amount":
        amount = float(value.value)
        if spec.minimum is not None and amount < spec.minimum:
            return False
        if spec.maximum is not None and amount > spec.maximum:
            return False
    return True


def _dtmf_answer(keys: str) -> str | None:
    keys = keys.strip("#")
    if keys == DTMF_YES:
        return "yes"
    if keys == DTMF_NO:
        return "no"
    return None


def _spoken_date(iso_date: str) -> str:
    """Write 2024-07-25 as 7月25日, the way a due date is read out."""
    _, month, day = iso_date.split("-")
    return f"{int(month)}月{int(day)}日"
