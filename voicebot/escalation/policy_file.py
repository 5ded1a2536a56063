"""Loading and validation of the escalation policy file (dialogs/escalation.yaml).

The file is edited by dialog designers. Every problem found is reported at once, each
with the file, the line, the key and the fix, in Simplified Chinese by default or in
English with `lang="en"`, as a PolicyFileError (a KnowledgeBaseError).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import yaml

from voicebot.dialog.flows import compose_yaml_text
from voicebot.errors import KnowledgeBaseError
from voicebot.escalation.cues import (
    ALL_CUES,
    AROUSAL,
    ASR_FAILURE,
    DEFAULT_LARGE_AMOUNT_YUAN,
    MONEY_MOVEMENT,
)
from voicebot.responder.messages import line_of, load_yaml_node, mapping_items, scalar_text

logger = logging.getLogger(__name__)

SENSITIVITY_LEVELS: tuple[str, ...] = ("low", "medium", "high")
ACTIONS: tuple[str, ...] = ("handoff_now", "handoff_after", "flag_only")
SKILLS: tuple[str, ...] = ("fraud", "card_services", "complaints")
MIN_PRIORITY = 1  # most urgent
MAX_PRIORITY = 5
DEFAULT_CENTRE = "default"

TOP_LEVEL_KEYS: tuple[str, ...] = ("policy_version", "centres", "cues", "sensitivity")
CUE_KEYS: tuple[str, ...] = ("skill", "priority", "action", "occurrences", "min_score", "thresholds")
OVERRIDE_KEYS: tuple[str, ...] = ("priority", "action", "occurrences", "min_score", "thresholds")


@dataclass(frozen=True)
class ThresholdSpec:
    """A numeric setting of one cue: its default, allowed range and whether it must be whole."""

    default: float
    minimum: float
    maximum: float
    integer: bool = False


# Thresholds each cue accepts, with defaults used when the file leaves them out.
THRESHOLDS: dict[str, dict[str, ThresholdSpec]] = {
    MONEY_MOVEMENT: {"large_amount_yuan": ThresholdSpec(DEFAULT_LARGE_AMOUNT_YUAN, 1.0, 1e9)},
    AROUSAL: {
        "loudness_rise_db": ThresholdSpec(6.0, 0.5, 40.0),
        "pitch_rise_semitones": ThresholdSpec(3.0, 0.5, 24.0),
        "baseline_turns": ThresholdSpec(2, 1, 10, integer=True),
    },
    ASR_FAILURE: {
        "min_confidence": ThresholdSpec(0.5, 0.0, 1.0),
        "consecutive_turns": ThresholdSpec(3, 1, 20, integer=True),
    },
}

# Problem templates: (Simplified Chinese, English). `{key}`, `{value}` and `{expected}`
# are filled in per problem.
_PROBLEMS: dict[str, tuple[str, str]] = {
    "not_mapping": (
        "“{key}”应该是键值映射（每行写“名称: 内容”）",
        "'{key}' must be a mapping (one 'name: value' per line)",
    ),
    "missing_key": ("缺少字段“{key}”，请添加", "missing key '{key}'; add it"),
    "unknown_key": (
        "未知字段“{key}”，可用的字段是：{expected}。请检查拼写或删除该字段",
        "unknown key '{key}'; allowed keys are: {expected}. Fix the spelling or remove it",
    ),
    "empty_text": ("“{key}”是空的，请填写内容", "'{key}' is empty; write the text"),
    "bad_choice": (
        "“{key}”的值“{value}”无效，可选的值是：{expected}",
        "invalid value '{value}' for '{key}'; choose one of: {expected}",
    ),
    "not_number": (
        "“{key}”的值“{value}”不是数字，请写一个数字，例如 {expected}",
        "'{key}' must be a number, got '{value}'; write a number such as {expected}",
    ),
    "not_integer": (
        "“{key}”的值“{value}”必须是整数，请去掉小数部分",
        "'{key}' must be a whole number, got '{value}'; remove the fraction",
    ),
    "out_of_range": (
        "“{key}”的值 {value} 超出范围，请写 {expected} 之间的数",
        "'{key}' is {value}, out of range; write a number within {expected}",
    ),
    "missing_cue": (
        "缺少信号“{value}”的设置，请在 cues 下添加，每个信号都要写 skill、priority 和 action",
        "no settings for cue '{value}'; add it under 'cues' with skill, priority and action",
    ),
    "unknown_cue": (
        "未知信号“{value}”，可用的信号是：{expected}。请检查拼写",
        "unknown cue '{value}'; known cues are: {expected}. Fix the spelling",
    ),
    "missing_occurrences": (
        "“{key}”的 action 是 handoff_after，必须同时写 occurrences（出现几次后转人工，至少 2）",
        "'{key}' has action handoff_after, so it needs 'occurrences' (how many turns before the handoff, at least 2)",
    ),
    "stray_occurrences": (
        "“{key}”写了 occurrences，但 action 不是 handoff_after。请删除 occurrences 或把 action 改为 handoff_after",
        "'{key}' sets 'occurrences' but its action is not handoff_after; remove 'occurrences' or use handoff_after",
    ),
    "no_default_centre": (
        "centres 里必须有 default（未列出的中心使用它的灵敏度），请添加“default: medium”",
        "'centres' must contain 'default' (used for centres not listed); add 'default: medium'",
    ),
}


@dataclass(frozen=True)
class PolicyProblem:
    """One problem in the policy file, with where it is and how to fix it."""

    path: str
    line: int | None
    code: str
    key: str = ""
    value: str = ""
    expected: str = ""

    def describe(self, lang: str = "zh") -> str:
        """Format the problem as one line in Simplified Chinese (`zh`) or English (`en`)."""
        zh_template, en_template = _PROBLEMS[self.code]
        english = lang == "en"
        template = en_template if english else zh_template
        problem = template.format(key=self.key, value=self.value, expected=self.expected)
        if english:
            where = self.path if self.line is None else f"{self.path}, line {self.line}"
            return f"{where}: {problem}."
        where = self.path if self.line is None else f"{self.path} 第 {self.line} 行"
        return f"{where}：{problem}。"


class PolicyFileError(KnowledgeBaseError):
    """The escalation policy file is invalid; `problems` lists every problem found."""

    def __init__(self, problems: list[PolicyProblem], *, lang: str = "zh") -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(problem.describe(lang) for problem in problems))


@dataclass(frozen=True)
class CueSettings:
    """Settings of one cue at one sensitivity level."""

    cue: str
    skill: str
    priority: int  # 1 is the most urgent
    action: str  # one of ACTIONS
    occurrences: int  # turns with the cue before a handoff_after action hands over; 1 otherwise
    min_score: float  # hits below this score are reported but never hand over
    thresholds: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class PolicySettings:
    """The validated policy file: per sensitivity level, the settings of every cue."""

    path: str
    policy_version: str
    centres: Mapping[str, str]  # centre name to sensitivity level
    levels: Mapping[str, Mapping[str, CueSettings]]  # level to cue to settings

    def sensitivity_of(self, centre: str) -> str:
        """Return the level of `centre`, or of `default` when the centre is not listed."""
        return self.centres.get(centre.lower(), self.centres[DEFAULT_CENTRE])


class _Reader:
    """Collects problems while reading one file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[PolicyProblem] = []

    def add(self, node: yaml.Node | None, code: str, key: str = "", value: str = "", expected: str = "") -> None:
        line = line_of(node) if node is not None else None
        self.problems.append(PolicyProblem(self.path, line, code, key, value, expected))

    def mapping(self, node: yaml.Node, key: str) -> dict[str, tuple[yaml.Node, yaml.Node]] | None:
        if not isinstance(node, yaml.MappingNode):
            self.add(node, "not_mapping", key)
            return None
        return {name: (key_node, value_node) for name, key_node, value_node in mapping_items(node)}

    def check_keys(
        self, fields: Mapping[str, tuple[yaml.Node, yaml.Node]], allowed: tuple[str, ...], prefix: str
    ) -> None:
        for name, (key_node, _) in fields.items():
            if name not in allowed:
                self.add(key_node, "unknown_key", f"{prefix}{name}", expected=", ".join(allowed))

    def choice(self, node: yaml.Node, key: str, allowed: tuple[str, ...]) -> str | None:
        text = scalar_text(node)
        if text not in allowed:
            self.add(node, "bad_choice", key, value=str(text if text is not None else "…"), expected=", ".join(allowed))
            return None
        return text

    def number(self, node: yaml.Node, key: str, spec: ThresholdSpec) -> float | None:
        text = scalar_text(node)
        try:
            value = float(text) if text else math.nan
        except ValueError:
            value = math.nan
        if math.isnan(value):
            self.add(node, "not_number", key, value=str(text or "…"), expected=_format(spec.default))
            return None
        if spec.integer and not value.is_integer():
            self.add(node, "not_integer", key, value=str(text))
            return None
        if not spec.minimum <= value <= spec.maximum:
            allowed_range = f"{_format(spec.minimum)}..{_format(spec.maximum)}"
            self.add(node, "out_of_range", key, value=str(text), expected=allowed_range)
            return None
        return value


def _format(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


_PRIORITY = ThresholdSpec(3, MIN_PRIORITY, MAX_PRIORITY, integer=True)
_MIN_SCORE = ThresholdSpec(0.6, 0.0, 1.0)
_OCCURRENCES = ThresholdSpec(2, 2, 20, integer=True)


@dataclass
class _CueFields:
    """The fields of one cue block or sensitivity override as read; None where absent or invalid."""

    node: yaml.Node
    present: set[str] = field(default_factory=set)
    skill: str | None = None
    priority: int | None = None
    action: str | None = None
    occurrences: int | None = None
    min_score: float | None = None
    thresholds: dict[str, float] = field(default_factory=dict)


def _read_cue_fields(
    reader: _Reader, cue: str, node: yaml.Node, *, key: str, allowed: tuple[str, ...]
) -> _CueFields | None:
    """Read the fields of one cue block or one sensitivity override."""
    fields = reader.mapping(node, key)
    if fields is None:
        return None
    reader.check_keys(fields, allowed, f"{key}.")
    values = _CueFields(node=node, present=set(fields))
    for name, (_, value_node) in fields.items():
        item_key = f"{key}.{name}"
        if name == "skill":
            values.skill = reader.choice(value_node, item_key, SKILLS)
        elif name == "action":
            values.action = reader.choice(value_node, item_key, ACTIONS)
        elif name == "priority":
            number = reader.number(value_node, item_key, _PRIORITY)
            values.priority = None if number is None else int(number)
        elif name == "occurrences":
            number = reader.number(value_node, item_key, _OCCURRENCES)
            values.occurrences = None if number is None else int(number)
        elif name == "min_score":
            values.min_score = reader.number(value_node, item_key, _MIN_SCORE)
        elif name == "thresholds":
            values.thresholds = _read_thresholds(reader, cue, value_node, key=item_key)
    return values


def _read_thresholds(reader: _Reader, cue: str, node: yaml.Node, *, key: str) -> dict[str, float]:
    fields = reader.mapping(node, key)
    if fields is None:
        return {}
    specs = THRESHOLDS.get(cue, {})
    reader.check_keys(fields, tuple(specs) or ("-",), f"{key}.")
    values = {}
    for name, (_, value_node) in fields.items():
        if name in specs:
            number = reader.number(value_node, f"{key}.{name}", specs[name])
            if number is not None:
                values[name] = number
    return values


def _check_occurrences(reader: _Reader, key: str, values: _CueFields) -> None:
    if values.action == "handoff_after" and values.occurrences is None:
        reader.add(values.node, "missing_occurrences", key)
    if values.action in ("handoff_now", "flag_only") and "occurrences" in values.present:
        reader.add(values.node, "stray_occurrences", key)


def _read_centres(reader: _Reader, node: yaml.Node) -> dict[str, str]:
    fields = reader.mapping(node, "centres")
    if fields is None:
        return {}
    centres = {}
    for name, (_, value_node) in fields.items():
        level = reader.choice(value_node, f"centres.{name}", SENSITIVITY_LEVELS)
        if level is not None:
            centres[name.lower()] = level
    if DEFAULT_CENTRE not in fields:
        reader.add(node, "no_default_centre", "centres")
    return centres


def load_policy(path: str | Path, *, lang: str = "zh") -> PolicySettings:
    """Load and validate an escalation policy file such as dialogs/escalation.yaml.

    Raises PolicyFileError listing every problem, each with file, line and fix, in
    Simplified Chinese or, with `lang="en"`, in English. A missing file or invalid YAML
    raises the DialogFileError of voicebot.responder.messages (also a KnowledgeBaseError).
    """
    file_path = Path(path)
    return _read_policy(load_yaml_node(file_path, lang=lang), path=str(file_path), lang=lang)


def parse_policy(text: str, *, path: str, lang: str = "zh") -> PolicySettings:
    """Validate the text of a policy file; `path` is the file that problems name.

    The text counterpart of load_policy, for a stored prompt version. Raises
    PolicyFileError, or DialogFileError for invalid YAML, like load_policy.
    """
    return _read_policy(compose_yaml_text(text, path=path, lang=lang), path=path, lang=lang)


def _read_policy(root: yaml.Node | None, *, path: str, lang: str) -> PolicySettings:
    display = path
    reader = _Reader(display)
    if root is None or not isinstance(root, yaml.MappingNode):
        reader.add(root, "not_mapping", display.rsplit("/", 1)[-1])
        raise PolicyFileError(reader.problems, lang=lang)

    fields = {name: (key_node, value_node) for name, key_node, value_node in mapping_items(root)}
    reader.check_keys(fields, TOP_LEVEL_KEYS, "")
    for name in TOP_LEVEL_KEYS:
        if name not in fields:
            reader.add(root, "missing_key", name)

    policy_version = ""
    if "policy_version" in fields:
        version_node = fields["policy_version"][1]
        policy_version = scalar_text(version_node) or ""
        if not policy_version:
            reader.add(version_node, "empty_text", "policy_version")

    centres = _read_centres(reader, fields["centres"][1]) if "centres" in fields else {}
    base = _read_cues(reader, fields["cues"][1], root) if "cues" in fields else {}
    overrides = _read_sensitivity(reader, fields["sensitivity"][1]) if "sensitivity" in fields else {}

    if reader.problems:
        raise PolicyFileError(reader.problems, lang=lang)

    levels = {level: _resolve_level(reader, level, base, overrides.get(level, {})) for level in SENSITIVITY_LEVELS}
    if reader.problems:
        raise PolicyFileError(reader.problems, lang=lang)
    logger.info("Loaded escalation policy %s from %s: %d centres", policy_version, display, len(centres))
    return PolicySettings(path=display, policy_version=policy_version, centres=centres, levels=levels)


def _read_cues(reader: _Reader, node: yaml.Node, root: yaml.Node) -> dict[str, _CueFields]:
    fields = reader.mapping(node, "cues")
    if fields is None:
        return {}
    cues: dict[str, _CueFields] = {}
    for cue, (key_node, value_node) in fields.items():
        if cue not in ALL_CUES:
            reader.add(key_node, "unknown_cue", value=cue, expected=", ".join(ALL_CUES))
            continue
        key = f"cues.{cue}"
        values = _read_cue_fields(reader, cue, value_node, key=key, allowed=CUE_KEYS)
        if values is None:
            continue
        for required in ("skill", "priority", "action"):
            if required not in values.present:
                reader.add(value_node, "missing_key", f"{key}.{required}")
        _check_occurrences(reader, key, values)
        cues[cue] = values
    for cue in ALL_CUES:
        if cue not in fields:
            reader.add(node, "missing_cue", value=cue)
    return cues


def _read_sensitivity(reader: _Reader, node: yaml.Node) -> dict[str, dict[str, _CueFields]]:
    fields = reader.mapping(node, "sensitivity")
    if fields is None:
        return {}
    overrides: dict[str, dict[str, _CueFields]] = {}
    for level, (key_node, value_node) in fields.items():
        if level not in SENSITIVITY_LEVELS:
            reader.add(key_node, "bad_choice", "sensitivity", value=level, expected=", ".join(SENSITIVITY_LEVELS))
            continue
        overrides[level] = {}
        if isinstance(value_node, yaml.ScalarNode) and scalar_text(value_node) == "":
            continue  # an empty level (`medium:`) keeps the base settings
        cue_fields = reader.mapping(value_node, f"sensitivity.{level}")
        if cue_fields is None:
            continue
        for cue, (cue_key_node, cue_node) in cue_fields.items():
            if cue not in ALL_CUES:
                reader.add(cue_key_node, "unknown_cue", value=cue, expected=", ".join(ALL_CUES))
                continue
            key = f"sensitivity.{level}.{cue}"
            values = _read_cue_fields(reader, cue, cue_node, key=key, allowed=OVERRIDE_KEYS)
            if values is not None:
                _check_occurrences(reader, key, values)
                overrides[level][cue] = values
    return overrides


def _resolve_level(
    reader: _Reader, level: str, base: Mapping[str, _CueFields], overrides: Mapping[str, _CueFields]
) -> dict[str, CueSettings]:
    """Merge one level's overrides into the base cue settings (all of them valid by now)."""
    settings = {}
    for cue, values in base.items():
        # load_policy resolves levels only when no problem was found, so these are set.
        assert values.skill is not None
        assert values.priority is not None
        assert values.action is not None
        thresholds = {name: spec.default for name, spec in THRESHOLDS.get(cue, {}).items()}
        thresholds.update(values.thresholds)
        action = values.action
        occurrences = values.occurrences
        priority = values.priority
        min_score = values.min_score if values.min_score is not None else _MIN_SCORE.default
        override = overrides.get(cue)
        if override is not None:
            thresholds.update(override.thresholds)
            priority = override.priority if override.priority is not None else priority
            min_score = override.min_score if override.min_score is not None else min_score
            if override.action is not None:
                action = override.action
                occurrences = override.occurrences
            elif override.occurrences is not None:
                occurrences = override.occurrences
            if action == "handoff_after" and occurrences is None:
                reader.add(override.node, "missing_occurrences", f"sensitivity.{level}.{cue}")
            if action != "handoff_after" and override.occurrences is not None:
                reader.add(override.node, "stray_occurrences", f"sensitivity.{level}.{cue}")
        settings[cue] = CueSettings(
            cue=cue,
            skill=values.skill,
            priority=priority,
            action=action,
            occurrences=occurrences if action == "handoff_after" and occurrences is not None else 1,
            min_score=min_score,
            thresholds=thresholds,
        )
    return settings
