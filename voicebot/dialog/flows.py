"""Flow files (dialogs/flows/*.yaml) and their messages (prompts/flows.yaml): format and loader.

A flow is a list of steps the bot walks through to do one task, such as freezing a lost
card. docs/flows.md describes the format for dialog designers; in short:

```yaml
id: lost_card                 # unique, lowercase
title: 信用卡挂失
triggers: [lost_card]         # intents that start the flow
slots:                        # what the flow collects or gets from the bank
  card_last4: {type: digits, length: 4, dtmf: true}
  card_id: {type: bank}
steps:
  - id: ask_last4
    say: lost_card_ask_last4  # message key in prompts/flows.yaml
    collect: card_last4
    reprompt: card_last4_again
    dtmf_prompt: card_last4_dtmf
    on_fail: handoff_unverified
  - id: confirm_last4
    confirm: confirm_card_last4
  - id: verify
    action: verify_card
    args: {last4: card_last4}
    on_fail: wrong_card
  - id: done
    say: lost_card_frozen
    end: true
```

The message contract, also checked by the prompts checker: every `say`, `reprompt`,
`dtmf_prompt` and `confirm` value is a message key that exists in prompts/*.yaml with a
text for every required language (zh, yue), and every `{var}` in that text is a slot of
the flow or a built-in of BUILTIN_VARIABLES.

`load_flows` reads the files from disk and `parse_flows` validates their texts, which is
how a stored prompt version rebuilds its flows (voicebot.prompts.bundle). Both raise
FlowFileError listing every problem with file, line, step and fix, in Simplified
Chinese or, with `lang="en"`, in English.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from voicebot.dialog.nlu import FLOW_INTENTS
from voicebot.errors import KnowledgeBaseError
from voicebot.responder.messages import (
    DialogFileError,
    Messages,
    ValidationProblem,
    check_language_texts,
    line_of,
    load_yaml_node,
    mapping_items,
    scalar_text,
    template_variables,
)

logger = logging.getLogger(__name__)

# Template variables every flow message may use besides the flow's slots.
BUILTIN_VARIABLES: dict[str, str] = {
    "digits": "the digits of the slot being collected or confirmed, one Chinese digit each (六二八八)",
}

SLOT_TYPES = ("digits", "address", "amount", "yes_no", "text", "bank")
FLOW_KEYS = ("id", "version", "title", "triggers", "slots", "steps")
SLOT_KEYS = ("type", "length", "pattern", "dtmf", "min_confidence", "minimum", "maximum")
STEP_KEYS = ("id", "say", "collect", "confirm", "reprompt", "dtmf_prompt", "action", "args", "on_fail", "on_no",
             "next", "handoff", "end", "switch", "cases", "max_attempts", "skip_if_verified", "forget")
MESSAGE_FIELDS = ("say", "reprompt", "dtmf_prompt", "confirm")

# Banking actions a step may call: parameter names (filled from slots) and the bank
# slots each fills on success. The engine (voicebot.dialog.engine) implements them.
ACTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "lookup_customer": ((), ("customer_id", "customer_name")),
    "verify_card": (("last4",), ("card_id", "card_product", "card_status")),
    "freeze_card": (("card_id",), ()),
    "activate_card": (("card_id",), ()),
    "get_statement": (("card_id",), ("statement_balance", "minimum_payment", "due_date", "statement_month")),
    "request_credit_limit_increase": (("card_id", "amount"), ("request_reference", "current_limit")),
    "change_billing_address": (("new_address",), ("audit_id",)),
    "check_recent_transactions": ((), ("foreign_transactions",)),
}

DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_MIN_CONFIDENCE = 0.6
_ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")

# Problem templates: (Simplified Chinese, English). {key}, {value}, {expected} are filled in.
_PROBLEMS: dict[str, tuple[str, str]] = {
    "not_mapping": ("“{key}”应该是键值映射（每行写“名称: 内容”）", "'{key}' must be a mapping (one 'name: value' per line)"),
    "not_list": ("“{key}”应该是列表（每项以“- ”开头）", "'{key}' must be a list (one '- item' per line)"),
    "not_text": ("“{key}”应该是一段文字", "'{key}' must be text"),
    "unknown_key": ("未知字段“{key}”，可用的字段是：{expected}。请检查拼写或删除该字段",
                    "unknown key '{key}'; allowed keys are: {expected}. Fix the spelling or remove it"),
    "missing_key": ("缺少字段“{key}”，请添加", "missing key '{key}'; add it"),
    "bad_id": ("“{key}”的值“{value}”无效，只能使用小写英文字母、数字和下划线，并以字母开头",
               "invalid {key} '{value}'; use lowercase letters, digits and underscores, starting with a letter"),
    "duplicate_id": ("“{key}”的值“{value}”重复，第一次出现在 {expected}。请改名",
                     "duplicate {key} '{value}', first used at {expected}; rename one"),
    "unknown_trigger": ("触发意图“{value}”未知，可用的意图是：{expected}",
                        "unknown trigger intent '{value}'; known intents are: {expected}"),
    "duplicate_trigger": ("触发意图“{value}”已经被流程“{expected}”使用，一个意图只能启动一个流程",
                          "trigger intent '{value}' already starts flow '{expected}'; an intent starts one flow only"),
    "unknown_slot_type": ("槽位类型“{value}”未知，可用的类型是：{expected}",
                          "unknown slot type '{value}'; allowed types are: {expected}"),
    "bad_number": ("“{key}”应该是{expected}，现在是“{value}”", "'{key}' must be {expected}, got '{value}'"),
    "bad_pattern": ("“{key}”不是有效的正则表达式：{value}", "'{key}' is not a valid regular expression: {value}"),
    "step_kind": ("步骤必须且只能有以下一种：{expected}。请拆成多个步骤，或补上缺少的字段",
                  "a step needs exactly one of: {expected}. Split it into several steps or add the missing key"),
    "needs_say": ("“{key}”步骤需要“say”字段说明要问客户什么", "a '{key}' step needs a 'say' key with the question to ask"),
    "not_allowed_with": ("“{key}”不能和“{value}”写在同一个步骤里", "'{key}' cannot be used in the same step as '{value}'"),
    "unknown_slot": ("槽位“{value}”没有在 slots 里定义。请在 slots 下添加，或改成已定义的槽位：{expected}",
                     "slot '{value}' is not declared under 'slots'; declare it or use one of: {expected}"),
    "unknown_step": ("步骤“{value}”不存在。可用的步骤是：{expected}",
                     "step '{value}' does not exist; the steps are: {expected}"),
    "unknown_action": ("银行操作“{value}”未知，可用的操作是：{expected}",
                       "unknown banking action '{value}'; allowed actions are: {expected}"),
    "bad_args": ("操作“{value}”的参数应该是：{expected}。请按这个列表填写 args",
                 "action '{value}' takes the arguments: {expected}; write exactly these under 'args'"),
    "unknown_message": ("提示语“{value}”在提示语文件里不存在。请在 {expected} 里添加这个提示语（zh 和 yue 都要写），或改成已有的提示语",
                        "message key '{value}' is not in the prompt files; add it to {expected} with zh and yue texts, or use an existing key"),
    "unknown_message_variable": ("提示语“{key}”用到的变量 {value} 不是本流程的槽位，也不是内置变量。可用的变量是：{expected}",
                                 "message '{key}' uses {value}, which is neither a slot of this flow nor a built-in; allowed: {expected}"),
    "confirm_without_collect": ("确认步骤前面没有收集步骤，请在它之前加一个 collect 步骤",
                                "a confirm step needs a collect step before it; add one"),
    "dtmf_type": ("只有 digits 类型的槽位可以用按键输入（dtmf: true）", "only slots of type digits accept keypad input (dtmf: true)"),
    "no_steps": ("流程没有任何步骤，请在 steps 下至少写一个步骤", "the flow has no steps; add at least one under 'steps'"),
}


@dataclass(frozen=True)
class FlowProblem:
    """One problem in a flow file, with its place and the rule it breaks."""

    path: str
    line: int | None
    code: str
    key: str = ""
    step_id: str | None = None
    value: str = ""
    expected: str = ""

    def describe(self, lang: str = "zh") -> str:
        """Format the problem as one line in Simplified Chinese (`zh`) or English (`en`)."""
        zh_template, en_template = _PROBLEMS[self.code]
        english = lang == "en"
        problem = (en_template if english else zh_template).format(key=self.key, value=self.value, expected=self.expected)
        if english:
            where = self.path if self.line is None else f"{self.path}, line {self.line}"
            step = f", step '{self.step_id}'" if self.step_id else ""
            return f"{where}{step}: {problem}."
        where = self.path if self.line is None else f"{self.path} 第 {self.line} 行"
        step = f"，步骤“{self.step_id}”" if self.step_id else ""
        return f"{where}{step}：{problem}。"


class FlowFileError(KnowledgeBaseError):
    """A flow or flow-message file is invalid; `problems` lists every problem found."""

    def __init__(self, problems: list[FlowProblem | ValidationProblem], *, lang: str = "zh") -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(problem.describe(lang) for problem in problems))


@dataclass(frozen=True)
class SlotSpec:
    """Collection and validation rules of one slot."""

    name: str
    type: str
    length: int | None = None  # digits: the exact number of digits
    pattern: str | None = None  # a regular expression the whole value must match
    dtmf: bool = False  # digits may be entered on the keypad
    min_confidence: float = DEFAULT_MIN_CONFIDENCE
    minimum: float | None = None  # amount: smallest value accepted, yuan
    maximum: float | None = None  # amount: largest value accepted, yuan


@dataclass(frozen=True)
class Step:
    """One step of a flow. See docs/flows.md for what each key does."""

    id: str
    line: int
    say: str | None = None
    collect: str | None = None
    confirm: str | None = None
    reprompt: str | None = None
    dtmf_prompt: str | None = None
    action: str | None = None
    args: dict[str, str] = field(default_factory=dict)
    on_fail: dict[str, str] = field(default_factory=dict)  # failure reason (or "default") to step id
    on_no: str | None = None
    next: str | None = None
    handoff: str | None = None
    end: bool = False
    switch: str | None = None
    cases: dict[str, str] = field(default_factory=dict)
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    skip_if_verified: bool = False
    forget: str | None = None  # a slot to empty before the next step, so a collect step asks for it again
    confirms_slot: str | None = None  # for a confirm step: the slot read back, from the collect step before it


@dataclass(frozen=True)
class Flow:
    """A validated flow."""

    id: str
    path: str
    title: str
    triggers: tuple[str, ...]
    slots: dict[str, SlotSpec]
    steps: tuple[Step, ...]

    def step(self, step_id: str) -> Step:
        """Return the step with id `step_id`; raises KeyError if there is none."""
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def following(self, step_id: str) -> Step | None:
        """Return the step after `step_id` in file order, or None after the last one."""
        for index, step in enumerate(self.steps):
            if step.id == step_id:
                return self.steps[index + 1] if index + 1 < len(self.steps) else None
        raise KeyError(step_id)

    def collect_step(self, slot: str) -> Step | None:
        """Return the first step that collects `slot`."""
        return next((step for step in self.steps if step.collect == slot), None)

    def message_keys(self) -> set[str]:
        """Return every message key the flow's steps use."""
        keys = set()
        for step in self.steps:
            for name in MESSAGE_FIELDS:
                value = getattr(step, name)
                if value:
                    keys.add(value)
        return keys


@dataclass(frozen=True)
class FlowSet:
    """All flows of a directory and the messages they speak."""

    flows: dict[str, Flow]
    messages: Messages

    def for_intent(self, intent: str) -> Flow | None:
        """Return the flow that `intent` starts, or None."""
        return next((flow for flow in self.flows.values() if intent in flow.triggers), None)


def load_flow_messages(path: str | Path, *, lang: str = "zh") -> tuple[Messages, dict[str, set[str]], list[ValidationProblem]]:
    """Read a flow-message file in the format of prompts/messages.yaml.

    Returns the messages, the template variables each key uses, and the problems found
    (a text in each required language; the same variables in every language).
    """
    file_path = Path(path)
    display = str(file_path)
    root = load_yaml_node(file_path, lang=lang)
    problems: list[ValidationProblem] = []
    texts: dict[str, dict[str, str]] = {}
    variables: dict[str, set[str]] = {}
    if root is None or not isinstance(root, yaml.MappingNode):
        problems.append(ValidationProblem(display, 1 if root is None else line_of(root), "not_mapping", key=file_path.name))
        return Messages({}, path=display), variables, problems
    for key, _, value_node in mapping_items(root):
        used: set[str] = set()
        if isinstance(value_node, yaml.MappingNode):
            for _, _, text_node in mapping_items(value_node):
                text = scalar_text(text_node)
                if text:
                    try:
                        used |= template_variables(text)
                    except ValueError:
                        pass  # check_language_texts reports the malformed template
        texts[key] = check_language_texts(
            value_node, path=display, key=key, entry_id=None, required_variables=frozenset(used), problems=problems
        )
        variables[key] = used
    return Messages(texts, path=display), variables, problems


def load_flows(
    flows_dir: str | Path,
    messages_path: str | Path,
    *,
    lang: str = "zh",
) -> FlowSet:
    """Load and validate every `*.yaml` flow in `flows_dir` against the messages of `messages_path`.

    Raises FlowFileError listing every problem in all files.
    """
    directory = Path(flows_dir)
    messages, message_variables, message_problems = load_flow_messages(messages_path, lang=lang)
    texts: dict[str, str] = {}
    problems: list[FlowProblem | ValidationProblem] = list(message_problems)
    for path in sorted(directory.glob("*.yaml")):
        try:
            texts[str(path)] = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            problems.append(ValidationProblem(str(path), None, "yaml_syntax", value=f"not UTF-8 ({error.reason})"))
    try:
        flow_set = parse_flows(
            texts, messages=messages, message_variables=message_variables, messages_path=str(messages_path), lang=lang
        )
    except FlowFileError as error:
        raise FlowFileError([*problems, *error.problems], lang=lang) from error
    if problems:
        raise FlowFileError(problems, lang=lang)
    logger.info("Loaded %d flows from %s", len(flow_set.flows), directory)
    return flow_set


def parse_flows(
    texts: Mapping[str, str],
    *,
    messages: Messages,
    message_variables: Mapping[str, set[str]] | None,
    messages_path: str = "prompts/flows.yaml",
    lang: str = "zh",
) -> FlowSet:
    """Validate flow file texts and return the flows, with `messages` as the texts they speak.

    `texts` maps the path that problems name to the file's text, in the order the files
    are read. With `message_variables` (message key to its template variables), every
    message key a step names is checked too. The prompt set passes None, because it
    checks the flows' message references against all prompt files itself. Raises
    FlowFileError listing every problem in all files.
    """
    problems: list[FlowProblem | ValidationProblem] = []
    flows: dict[str, Flow] = {}
    flow_places: dict[str, str] = {}
    trigger_owner: dict[str, str] = {}
    for display, text in texts.items():
        reader = _FlowReader(
            display, text, lang=lang, message_variables=message_variables, messages_path=messages_path
        )
        flow = reader.read()
        problems.extend(reader.problems)
        if flow is None:
            continue
        if flow.id in flow_places:
            problems.append(FlowProblem(display, 1, "duplicate_id", "id", value=flow.id, expected=flow_places[flow.id]))
            continue
        for trigger in flow.triggers:
            if trigger in trigger_owner:
                problems.append(FlowProblem(display, 1, "duplicate_trigger", "triggers", value=trigger,
                                            expected=trigger_owner[trigger]))
            trigger_owner[trigger] = flow.id
        flow_places[flow.id] = display
        flows[flow.id] = flow
    if problems:
        raise FlowFileError(problems, lang=lang)
    return FlowSet(flows=flows, messages=messages)


def compose_yaml_text(text: str, *, path: str, lang: str = "zh") -> yaml.Node | None:
    """Parse YAML text into a node tree that keeps line numbers; None for an empty text.

    The text counterpart of voicebot.responder.messages.load_yaml_node, for files that
    come from a stored prompt version instead of the disk. Raises DialogFileError with a
    yaml_syntax problem naming `path` and the line when the text is not valid YAML.
    """
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        line = mark.line + 1 if mark is not None else None
        problem = ValidationProblem(path, line, "yaml_syntax", value=error.problem or str(error))
        raise DialogFileError([problem], lang=lang) from error


class _FlowReader:
    """Validates one flow file, collecting every problem before giving up."""

    def __init__(
        self,
        display: str,
        text: str,
        *,
        lang: str,
        message_variables: Mapping[str, set[str]] | None,
        messages_path: str,
    ) -> None:
        self.display = display
        self.file_name = display.rsplit("/", 1)[-1]
        self.text = text
        self.lang = lang
        self.message_variables = message_variables
        self.messages_path = messages_path
        self.problems: list[FlowProblem | ValidationProblem] = []

    def problem(self, node: yaml.Node | None, code: str, key: str = "", step_id: str | None = None, **extra: str) -> None:
        line = line_of(node) if node is not None else None
        self.problems.append(FlowProblem(self.display, line, code, key, step_id, **extra))

    def read(self) -> Flow | None:
        try:
            root = compose_yaml_text(self.text, path=self.display, lang=self.lang)
        except DialogFileError as error:
            self.problems.extend(error.problems)
            return None
        if not isinstance(root, yaml.MappingNode):
            self.problem(root, "not_mapping", self.file_name)
            return None
        fields = {key: (key_node, value_node) for key, key_node, value_node in mapping_items(root)}
        for key, (key_node, _) in fields.items():
            if key not in FLOW_KEYS:
                self.problem(key_node, "unknown_key", key, expected=", ".join(FLOW_KEYS))
        for key in ("id", "triggers", "steps"):
            if key not in fields:
                self.problem(root, "missing_key", key)
        if any(p.code == "missing_key" for p in self.problems if isinstance(p, FlowProblem)):
            return None

        flow_id = scalar_text(fields["id"][1]) or ""
        if not _ID_PATTERN.match(flow_id):
            self.problem(fields["id"][1], "bad_id", "id", value=flow_id)
        title = scalar_text(fields["title"][1]) if "title" in fields else flow_id
        triggers = self._read_triggers(fields["triggers"][1])
        slots = self._read_slots(fields["slots"][1]) if "slots" in fields else {}
        steps = self._read_steps(fields["steps"][1], slots)
        if self.problems:
            return None
        return Flow(id=flow_id, path=self.display, title=title or flow_id, triggers=triggers, slots=slots, steps=steps)

    def _read_triggers(self, node: yaml.Node) -> tuple[str, ...]:
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, "not_list", "triggers")
            return ()
        triggers = []
        for item in node.value:
            intent = scalar_text(item) or ""
            if intent not in FLOW_INTENTS:
                self.problem(item, "unknown_trigger", "triggers", value=intent, expected=", ".join(FLOW_INTENTS))
            triggers.append(intent)
        return tuple(triggers)

    def _read_slots(self, node: yaml.Node) -> dict[str, SlotSpec]:
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, "not_mapping", "slots")
            return {}
        slots: dict[str, SlotSpec] = {}
        for name, name_node, spec_node in mapping_items(node):
            if not _ID_PATTERN.match(name):
                self.problem(name_node, "bad_id", "slots", value=name)
                continue
            if not isinstance(spec_node, yaml.MappingNode):
                self.problem(spec_node, "not_mapping", f"slots.{name}")
                continue
            values: dict[str, object] = {}
            for key, key_node, value_node in mapping_items(spec_node):
                if key not in SLOT_KEYS:
                    self.problem(key_node, "unknown_key", f"slots.{name}.{key}", expected=", ".join(SLOT_KEYS))
                    continue
                text = scalar_text(value_node) or ""
                values[key] = self._slot_value(key, text, value_node, name)
            slot_type = str(values.get("type") or "")
            if slot_type not in SLOT_TYPES:
                self.problem(spec_node, "unknown_slot_type", f"slots.{name}.type", value=slot_type,
                             expected=", ".join(SLOT_TYPES))
                continue
            if values.get("dtmf") and slot_type != "digits":
                self.problem(spec_node, "dtmf_type", f"slots.{name}.dtmf")
            slots[name] = SlotSpec(name=name, **values)  # type: ignore[arg-type]
        return slots

    def _slot_value(self, key: str, text: str, node: yaml.Node, slot: str) -> object:
        label = f"slots.{slot}.{key}"
        if key == "type":
            return text
        if key == "dtmf":
            if text not in ("true", "false"):
                self.problem(node, "bad_number", label, value=text, expected="true 或 false" if self.lang != "en" else "true or false")
            return text == "true"
        if key == "pattern":
            try:
                re.compile(text)
            except re.error as error:
                self.problem(node, "bad_pattern", label, value=str(error))
            return text
        try:
            number = float(text)
        except ValueError:
            self.problem(node, "bad_number", label, value=text, expected="数字" if self.lang != "en" else "a number")
            return None
        if key == "length":
            return int(number)
        if key == "min_confidence" and not 0.0 <= number <= 1.0:
            self.problem(node, "bad_number", label, value=text, expected="0 到 1 之间的数" if self.lang != "en" else "a number within 0..1")
        return number

    def _read_steps(self, node: yaml.Node, slots: dict[str, SlotSpec]) -> tuple[Step, ...]:
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, "not_list", "steps")
            return ()
        if not node.value:
            self.problem(node, "no_steps", "steps")
            return ()
        steps: list[Step] = []
        step_lines: dict[str, int] = {}
        references: list[tuple[yaml.Node, str, str, str]] = []  # node, key, step id, target
        last_collect: str | None = None
        for item in node.value:
            step = self._read_step(item, slots, references, last_collect)
            if step is None:
                continue
            if step.id in step_lines:
                self.problem(item, "duplicate_id", "id", step.id, value=step.id, expected=f"第 {step_lines[step.id]} 行"
                             if self.lang != "en" else f"line {step_lines[step.id]}")
            step_lines[step.id] = step.line
            if step.collect:
                last_collect = step.collect
            steps.append(step)
        known = ", ".join(step.id for step in steps)
        for ref_node, key, step_id, target in references:
            if target not in step_lines:
                self.problem(ref_node, "unknown_step", key, step_id, value=target, expected=known)
        return tuple(steps)

    def _read_step(
        self,
        node: yaml.Node,
        slots: dict[str, SlotSpec],
        references: list[tuple[yaml.Node, str, str, str]],
        last_collect: str | None,
    ) -> Step | None:
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, "not_mapping", "steps[]")
            return None
        fields = {key: (key_node, value_node) for key, key_node, value_node in mapping_items(node)}
        step_id = scalar_text(fields["id"][1]) if "id" in fields else None
        if not step_id:
            self.problem(node, "missing_key", "id")
            return None
        if not _ID_PATTERN.match(step_id):
            self.problem(fields["id"][1], "bad_id", "id", step_id, value=step_id)
        values: dict[str, object] = {}
        for key, (key_node, value_node) in fields.items():
            if key not in STEP_KEYS:
                self.problem(key_node, "unknown_key", key, step_id, expected=", ".join(STEP_KEYS))
                continue
            if key in ("args", "cases"):
                values[key] = self._read_mapping(value_node, key, step_id)
            elif key == "on_fail":
                if isinstance(value_node, yaml.MappingNode):
                    values[key] = self._read_mapping(value_node, key, step_id)
                else:
                    values[key] = {"default": scalar_text(value_node) or ""}
            elif key in ("end", "skip_if_verified"):
                values[key] = scalar_text(value_node) == "true"
            elif key == "max_attempts":
                text = scalar_text(value_node) or ""
                if not text.isdigit() or int(text) < 1:
                    self.problem(value_node, "bad_number", key, step_id, value=text,
                                 expected="正整数" if self.lang != "en" else "a positive integer")
                    continue
                values[key] = int(text)
            elif key != "id":
                text = scalar_text(value_node)
                if text is None:
                    self.problem(value_node, "not_text", key, step_id)
                    continue
                values[key] = text

        kinds = [kind for kind in ("collect", "confirm", "action", "handoff", "switch", "end") if kind in values and values[kind]]
        if len(kinds) > 1 or (not kinds and "say" not in values):
            self.problem(node, "step_kind", "", step_id, expected="collect, confirm, action, handoff, switch, end, say")
        kind = kinds[0] if kinds else "say"
        if kind == "collect" and "say" not in values:
            self.problem(node, "needs_say", kind, step_id)
        if kind in ("action", "switch", "confirm") and "say" in values:
            self.problem(fields["say"][0], "not_allowed_with", "say", step_id, value=kind)

        declared = ", ".join(slots) or "-"
        for key in ("collect", "switch", "forget"):
            slot = values.get(key)
            if isinstance(slot, str) and slot not in slots:
                self.problem(fields[key][1], "unknown_slot", key, step_id, value=slot, expected=declared)
        confirms_slot = None
        if kind == "confirm":
            if last_collect is None:
                self.problem(node, "confirm_without_collect", "confirm", step_id)
            confirms_slot = last_collect
        if kind == "action":
            self._check_action(fields, values, slots, step_id)
        for key in ("next", "on_no"):
            if isinstance(values.get(key), str):
                references.append((fields[key][1], key, step_id, str(values[key])))
        for key in ("on_fail", "cases"):
            for target in dict(values.get(key) or {}).values():  # type: ignore[call-overload]
                references.append((fields[key][1], key, step_id, target))
        for key in MESSAGE_FIELDS:
            if isinstance(values.get(key), str):
                self._check_message(fields[key][1], str(values[key]), slots, step_id)
        return Step(id=step_id, line=line_of(node), confirms_slot=confirms_slot, **values)  # type: ignore[arg-type]

    def _read_mapping(self, node: yaml.Node, key: str, step_id: str) -> dict[str, str]:
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, "not_mapping", key, step_id)
            return {}
        return {name: scalar_text(value) or "" for name, _, value in mapping_items(node)}

    def _check_action(self, fields: dict[str, tuple[yaml.Node, yaml.Node]], values: dict[str, object],
                      slots: dict[str, SlotSpec], step_id: str) -> None:
        name = str(values["action"])
        if name not in ACTIONS:
            self.problem(fields["action"][1], "unknown_action", "action", step_id, value=name, expected=", ".join(ACTIONS))
            return
        parameters, _ = ACTIONS[name]
        args = dict(values.get("args") or {})  # type: ignore[call-overload]
        if set(args) != set(parameters):
            place = fields["args"][1] if "args" in fields else fields["action"][1]
            self.problem(place, "bad_args", "args", step_id, value=name, expected=", ".join(parameters) or "-")
        declared = ", ".join(slots) or "-"
        for slot in args.values():
            if slot not in slots:
                self.problem(fields["args"][1], "unknown_slot", "args", step_id, value=slot, expected=declared)

    def _check_message(self, node: yaml.Node, key: str, slots: dict[str, SlotSpec], step_id: str) -> None:
        if self.message_variables is None:
            return  # the caller checks message references itself
        if key not in self.message_variables:
            self.problem(node, "unknown_message", key, step_id, value=key, expected=self.messages_path)
            return
        allowed = set(slots) | set(BUILTIN_VARIABLES)
        for variable in sorted(self.message_variables[key] - allowed):
            self.problem(node, "unknown_message_variable", key, step_id, value="{" + variable + "}",
                         expected=", ".join("{" + name + "}" for name in sorted(allowed)))

