"""Scenario suite: whole conversations run through DialogResponder and scored.

A scenario file (tests/dialog/scenarios/*.yaml) holds a list under `scenarios:`:

```yaml
scenarios:
  - id: lost_card_basic
    caller: "13922223333"      # the caller's number; "" for a withheld number
    language: zh               # optional, default zh
    turns:
      - text: 我的信用卡丢了，帮我挂失
        intent: lost_card      # expected Reply.intent (optional)
      - text: ""               # optional; dtmf holds keypad digits
        dtmf: "3571#"
        slots: {card_last4: "3571"}   # expected slot values after the turn
      - text: 对，没错
        actions: [verify_card, freeze_card]   # actions the turn must perform, in order
        kind: answer           # expected Reply.kind (optional)
        handoff: fraud         # expected handoff reason (optional)
        contains: 已经冻结      # a substring the reply must contain (optional)
    end:                       # checks after the last turn, all optional
      completed: [lost_card]   # flows completed
      handoff: null            # the call's handoff reason
      end_call: true           # the last reply ends the call
      card_status: {K2001: frozen}
      audit_records: 1         # records in the bank's audit log
```

Metrics: intent accuracy over turns with an expected intent; slot accuracy over
expected slot values; task completion over scenarios (every `end` check and every
turn's actions, kind and handoff hold); grounding violations (a reply containing a
number found neither in the FAQ answers, the approved prompt texts, nor the call's
slots, which hold the bank data the flow read).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as redis_asyncio
import yaml

from voicebot.dialog.banking import RedisBankingSimulator
from voicebot.dialog.flows import FlowSet, load_flows
from voicebot.dialog.numbers import numbers_in
from voicebot.dialog.responder import HANDLER_FALLBACK, DialogResponder
from voicebot.dialog.state import DialogStateStore
from voicebot.responder.base import CallerTurn, DialogContext, Reply, ReplyKind, Responder
from voicebot.responder.faq import KnowledgeBase
from voicebot.responder.messages import Messages

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SCENARIO_DIR = REPO_ROOT / "tests" / "dialog" / "scenarios"


@dataclass
class ScenarioResult:
    """The outcome of one scenario."""

    scenario_id: str
    passed: bool
    failures: list[str] = field(default_factory=list)
    turns: int = 0


@dataclass
class SuiteReport:
    """Metrics of a scenario run."""

    scenarios: list[ScenarioResult] = field(default_factory=list)
    intent_checks: int = 0
    intent_hits: int = 0
    slot_checks: int = 0
    slot_hits: int = 0
    turns: int = 0
    turns_without_llm: int = 0  # answered by a flow, a rule or a confident FAQ answer
    grounding_violations: list[str] = field(default_factory=list)
    # (handler, seconds) per caller turn: the time of DialogResponder.respond, state
    # load and save in Redis included.
    turn_timings: list[tuple[str, float]] = field(default_factory=list)

    @property
    def intent_accuracy(self) -> float:
        return self.intent_hits / self.intent_checks if self.intent_checks else 1.0

    @property
    def slot_accuracy(self) -> float:
        return self.slot_hits / self.slot_checks if self.slot_checks else 1.0

    @property
    def task_completion(self) -> float:
        if not self.scenarios:
            return 0.0
        return sum(1 for result in self.scenarios if result.passed) / len(self.scenarios)

    @property
    def share_without_llm(self) -> float:
        return self.turns_without_llm / self.turns if self.turns else 0.0

    def markdown(self) -> str:
        """Return the metrics and every failure as markdown lines."""
        lines = [
            "| metric | value |",
            "|---|---|",
            f"| scenarios | {len(self.scenarios)} ({self.turns} caller turns) |",
            f"| intent accuracy | {self.intent_accuracy:.3f} ({self.intent_hits}/{self.intent_checks}) |",
            f"| slot accuracy | {self.slot_accuracy:.3f} ({self.slot_hits}/{self.slot_checks}) |",
            f"| task completion | {self.task_completion:.3f} "
            f"({sum(1 for r in self.scenarios if r.passed)}/{len(self.scenarios)}) |",
            f"| grounding violations | {len(self.grounding_violations)} |",
            f"| turns answered without the LLM | {self.share_without_llm:.3f} ({self.turns_without_llm}/{self.turns}) |",
        ]
        failures = [f"- {r.scenario_id}: " + "; ".join(r.failures) for r in self.scenarios if r.failures]
        if failures or self.grounding_violations:
            lines += ["", "Failures:", *failures, *[f"- grounding: {v}" for v in self.grounding_violations]]
        return "\n".join(lines)


def load_scenarios(directory: str | Path = DEFAULT_SCENARIO_DIR) -> list[dict[str, Any]]:
    """Read every scenario of every `*.yaml` file in `directory`, in file order."""
    scenarios: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for path in sorted(Path(directory).glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for scenario in data.get("scenarios", []):
            scenario_id = str(scenario["id"])
            if scenario_id in seen:
                raise ValueError(f"scenario id {scenario_id!r} in {path} is already used in {seen[scenario_id]}; rename one")
            seen[scenario_id] = str(path)
            scenarios.append(scenario)
    return scenarios


def approved_numbers(knowledge_base: KnowledgeBase, prompt_paths: list[Path]) -> set[str]:
    """Return every number in the FAQ answers and in the approved prompt files, in every language."""
    allowed: set[str] = set()
    for entry in knowledge_base.entries:
        for text in entry.answers.values():
            allowed |= numbers_in(text)
    for path in prompt_paths:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for texts in data.values():
            for text in (texts or {}).values():
                allowed |= numbers_in(str(text))
    return allowed


class ScenarioRunner:
    """Runs scenarios against real Redis, the banking simulator and a given fallback responder."""

    def __init__(
        self,
        *,
        fallback: Responder,
        knowledge_base: KnowledgeBase,
        system_messages: Messages,
        flows: FlowSet | None = None,
        redis_url: str = "redis://127.0.0.1:6379/0",
        key_prefix: str | None = None,
    ) -> None:
        self.flows = flows or load_flows(REPO_ROOT / "dialogs" / "flows", REPO_ROOT / "prompts" / "flows.yaml")
        self.key_prefix = key_prefix or f"voicebot:test:scenarios:{uuid.uuid4().hex[:8]}:"
        self.client = redis_asyncio.Redis.from_url(redis_url, decode_responses=True)
        self.banking = RedisBankingSimulator(client=self.client, key_prefix=self.key_prefix + "bank:")
        self.store = DialogStateStore(client=self.client, key_prefix=self.key_prefix + "dialog:")
        self.responder = DialogResponder(
            flows=self.flows, banking=self.banking, store=self.store, fallback=fallback,
            system_messages=system_messages, prompt_version="scenarios",
        )
        prompt_paths = [Path(system_messages.path), Path(self.flows.messages.path)]
        self.allowed_numbers = approved_numbers(knowledge_base, prompt_paths)

    async def close(self) -> None:
        """Delete every key the runner wrote and close the Redis connection."""
        keys = [key async for key in self.client.scan_iter(match=self.key_prefix + "*", count=500)]
        if keys:
            await self.client.delete(*keys)
        await self.client.aclose()

    async def run(self, scenarios: list[dict[str, Any]]) -> SuiteReport:
        """Run every scenario on a freshly seeded bank and return the report."""
        report = SuiteReport()
        for scenario in scenarios:
            await self.banking.seed()
            report.scenarios.append(await self._run_one(scenario, report))
        return report

    async def _run_one(self, scenario: dict[str, Any], report: SuiteReport) -> ScenarioResult:
        scenario_id = str(scenario["id"])
        result = ScenarioResult(scenario_id=scenario_id, passed=True)
        language = str(scenario.get("language", "zh"))
        context = DialogContext(call_id=f"{scenario_id}-{uuid.uuid4().hex[:6]}", language=language,
                                caller=str(scenario.get("caller", "")))
        reply: Reply | None = None
        for index, line in enumerate(scenario.get("turns", []), start=1):
            text = str(line.get("text") or "")
            turn = CallerTurn(text=text, language=language, asr_confidence=0.9, turn_index=index,
                              dtmf=str(line.get("dtmf") or ""))
            started = time.perf_counter()
            reply = await self.responder.respond(turn, context)
            elapsed = time.perf_counter() - started
            context.history += [("caller", text), ("bot", reply.text)]
            report.turns += 1
            result.turns += 1
            state = await self.store.load(context.call_id)
            assert state is not None
            handler = state.turns[-1].handler if state.turns else ""
            report.turn_timings.append((handler, elapsed))
            if handler != HANDLER_FALLBACK or reply.kind is ReplyKind.ANSWER:
                report.turns_without_llm += 1
            self._check_turn(line, index, reply, state, result, report)
            slot_numbers: set[str] = set()
            for slot in state.slots.values():
                slot_numbers |= numbers_in(slot.value)
            unknown = numbers_in(reply.text) - self.allowed_numbers - slot_numbers
            if unknown:
                report.grounding_violations.append(f"{scenario_id} turn {index}: {sorted(unknown)} in {reply.text!r}")
        await self._check_end(scenario.get("end") or {}, context.call_id, reply, result)
        result.passed = not [f for f in result.failures if not f.startswith(("intent", "slot"))]
        return result

    def _check_turn(self, line: dict[str, Any], index: int, reply: Reply, state: Any,
                    result: ScenarioResult, report: SuiteReport) -> None:
        if "intent" in line:
            report.intent_checks += 1
            if reply.intent == line["intent"]:
                report.intent_hits += 1
            else:
                result.failures.append(f"intent turn {index}: expected {line['intent']}, got {reply.intent}")
        for name, expected in (line.get("slots") or {}).items():
            report.slot_checks += 1
            actual = state.slot_text(name)
            if actual == str(expected):
                report.slot_hits += 1
            else:
                result.failures.append(f"slot turn {index}: {name} expected {expected!r}, got {actual!r}")
        if "actions" in line and list(reply.actions) != list(line["actions"] or []):
            result.failures.append(f"actions turn {index}: expected {line['actions']}, got {list(reply.actions)}")
        if "kind" in line and reply.kind.value != line["kind"]:
            result.failures.append(f"kind turn {index}: expected {line['kind']}, got {reply.kind.value}")
        if "handoff" in line and reply.handoff_reason != line["handoff"]:
            result.failures.append(f"handoff turn {index}: expected {line['handoff']}, got {reply.handoff_reason}")
        if "contains" in line and str(line["contains"]) not in reply.text:
            result.failures.append(f"contains turn {index}: {line['contains']!r} not in {reply.text!r}")

    async def _check_end(self, end: dict[str, Any], call_id: str, reply: Reply | None, result: ScenarioResult) -> None:
        state = await self.store.load(call_id)
        if state is None:
            result.failures.append("end: no dialog state stored")
            return
        if "completed" in end and sorted(state.completed_flows) != sorted(end["completed"] or []):
            result.failures.append(f"end: completed flows {state.completed_flows}, expected {end['completed']}")
        if "handoff" in end and state.handoff_reason != end["handoff"]:
            result.failures.append(f"end: handoff {state.handoff_reason}, expected {end['handoff']}")
        if "flow" in end and state.flow_id != end["flow"]:
            result.failures.append(f"end: active flow {state.flow_id}, expected {end['flow']}")
        if "end_call" in end and (reply is None or reply.end_call != bool(end["end_call"])):
            result.failures.append(f"end: end_call expected {end['end_call']}")
        for card_id, status in (end.get("card_status") or {}).items():
            actual = await self.banking.card_status(card_id)
            if actual != status:
                result.failures.append(f"end: card {card_id} is {actual}, expected {status}")
        if "audit_records" in end:
            records = await self.banking.audit_log()
            if len(records) != int(end["audit_records"]):
                result.failures.append(f"end: {len(records)} audit records, expected {end['audit_records']}")
            for record in records:
                if record.call_id != call_id or record.confirmed_at <= 0:
                    result.failures.append(f"end: audit record {record.audit_id} lacks the call or the confirmation time")
