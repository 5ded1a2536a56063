"""Parse and validate the texts of the prompt, centre and flow files.

Each reader takes a file's text and its path as shown to the user, appends every problem
it finds to a shared list and returns what it could read, so one check reports every
problem of every file at once. Nothing here touches the disk: the same code validates the
files in a folder and the file contents of a stored version.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import yaml

from voicebot.prompts.problems import PromptProblem
from voicebot.prompts.schema import (
    AUTOMATION_LEVELS,
    BUILTIN_VARIABLES,
    CENTRE_EXTRAS,
    CENTRE_KEYS,
    CENTRE_REQUIRED_KEYS,
    DEFAULT_ESCALATION_SENSITIVITY,
    ESCALATION_SENSITIVITIES,
    FLOW_MESSAGE_FIELDS,
    INTENT_REQUIRED_LANGUAGES,
    INTENT_VARIABLES,
    KEY_PATTERN,
    MAX_AUTO_RESPONSE_THRESHOLD,
    MIN_AUTO_RESPONSE_THRESHOLD,
    SYSTEM_KEYS,
)
from voicebot.responder.messages import (
    MESSAGE_VARIABLES,
    OPTIONAL_LANGUAGES,
    REQUIRED_LANGUAGES,
    UNSPEAKABLE_CHARACTERS,
    ValidationProblem,
    check_language_texts,
    line_of,
    mapping_items,
    scalar_text,
    template_variables,
)

_YAML_NULL = "tag:yaml.org,2002:null"
_YAML_BOOL = "tag:yaml.org,2002:bool"


@dataclass(frozen=True)
class TextInfo:
    """One validated text with the line it is on and the template variables it uses."""

    text: str
    line: int
    variables: frozenset[str]


@dataclass
class MessageDefinition:
    """A message key with its texts per language and where it is defined."""

    key: str
    path: str
    line: int
    texts: dict[str, TextInfo]
    fixed: bool  # True for keys of messages.yaml, whose variables MESSAGE_VARIABLES fixes


@dataclass
class SystemPrompts:
    """Contents of system.yaml: system prompt, grounding rule and intent instructions."""

    system: dict[str, str] = field(default_factory=dict)
    grounding: dict[str, str] = field(default_factory=dict)
    intents: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass
class CentreFile:
    """The settings of one centre file; `override_nodes` are validated once all keys are known."""

    centre: str
    path: str
    name: str
    automation_level: str | None
    auto_response_threshold: float | None
    escalation_sensitivity: str
    extras: tuple[str, ...]
    override_nodes: list[tuple[str, yaml.Node, yaml.Node]]


@dataclass(frozen=True)
class FlowReference:
    """A step field of a flow (say, reprompt, dtmf_prompt, confirm) whose value is a message key."""

    flow: str
    path: str
    line: int
    field_name: str
    key: str


@dataclass
class FlowFile:
    """The message references and declared slots of one flow file."""

    flow: str
    path: str
    references: list[FlowReference] = field(default_factory=list)
    slots: set[str] = field(default_factory=set)


def compose(text: str, *, path: str, problems: list[ValidationProblem]) -> yaml.Node | None:
    """Parse YAML text into a node tree that keeps line numbers; None if empty or invalid."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        line = mark.line + 1 if mark is not None else None
        problems.append(PromptProblem(path, line, "yaml_syntax", value=error.problem or str(error)))
        return None


def _root_mapping(
    root: yaml.Node | None, *, path: str, name: str, problems: list[ValidationProblem]
) -> yaml.MappingNode | None:
    if isinstance(root, yaml.MappingNode):
        return root
    if root is None and problems and problems[-1].path == path and problems[-1].code == "yaml_syntax":
        return None  # compose already reported why the file has no mapping
    line = 1 if root is None else line_of(root)
    problems.append(PromptProblem(path, line, "not_mapping", key=name))
    return None


def check_texts(
    node: yaml.Node,
    *,
    path: str,
    key: str,
    entry_id: str | None,
    required_languages: tuple[str, ...],
    required_variables: frozenset[str],
    allowed_variables: frozenset[str] | None,
    spoken: bool,
    problems: list[ValidationProblem],
) -> dict[str, TextInfo]:
    """Validate a `{language: text}` mapping and return the texts that passed.

    Unlike the shared check_language_texts, the languages required, the variables
    allowed (None allows any, for flow messages checked later against their flows) and
    the check for characters speech synthesis cannot read (`spoken`) are parameters.
    """
    if not isinstance(node, yaml.MappingNode):
        problems.append(PromptProblem(path, line_of(node), "not_mapping", key, entry_id))
        return {}

    allowed_languages = REQUIRED_LANGUAGES + OPTIONAL_LANGUAGES
    texts: dict[str, TextInfo] = {}
    reported: set[str] = set()
    for language, language_node, text_node in mapping_items(node):
        item_key = f"{key}.{language}"
        if language not in allowed_languages:
            problems.append(
                PromptProblem(
                    path, line_of(language_node), "unknown_language", key, entry_id,
                    value=language, expected=", ".join(allowed_languages),
                )
            )
            continue
        reported.add(language)
        line = line_of(text_node)
        text = scalar_text(text_node)
        if text is None:
            problems.append(PromptProblem(path, line, "not_text", item_key, entry_id))
            continue
        if not text:
            problems.append(PromptProblem(path, line, "empty_text", item_key, entry_id))
            continue
        if spoken:
            bad = next((char for char in text if char in UNSPEAKABLE_CHARACTERS), None)
            if bad is not None:
                problems.append(PromptProblem(path, line, "unspeakable", item_key, entry_id, value=bad))
                continue
        try:
            variables = frozenset(template_variables(text))
        except ValueError as error:
            problems.append(PromptProblem(path, line, "bad_template", item_key, entry_id, value=str(error)))
            continue
        if allowed_variables is not None:
            known = ", ".join("{" + name + "}" for name in sorted(allowed_variables)) or "-"
            for name in sorted(variables - allowed_variables):
                problems.append(
                    PromptProblem(
                        path, line, "unknown_variable", item_key, entry_id,
                        value="{" + name + "}", expected=known,
                    )
                )
        for name in sorted(required_variables - variables):
            problems.append(
                PromptProblem(path, line, "missing_variable", item_key, entry_id, value="{" + name + "}")
            )
        texts[language] = TextInfo(text=text, line=line, variables=variables)

    for language in required_languages:
        if language not in reported:
            problems.append(PromptProblem(path, line_of(node), "missing_language", key, entry_id, value=language))
    return texts


def read_fixed_messages(
    text: str, *, path: str, problems: list[ValidationProblem]
) -> list[MessageDefinition] | None:
    """Validate messages.yaml with the dialog's fixed keys, as load_messages does at start-up.

    Returns None when the file is not a YAML mapping, so its keys are unknown.
    """
    root = _root_mapping(compose(text, path=path, problems=problems), path=path, name="messages.yaml", problems=problems)
    if root is None:
        return None
    definitions = []
    seen: set[str] = set()
    for key, key_node, value_node in mapping_items(root):
        if key not in MESSAGE_VARIABLES:
            problems.append(
                PromptProblem(path, line_of(key_node), "unknown_key", key, expected=", ".join(MESSAGE_VARIABLES))
            )
            continue
        seen.add(key)
        texts = check_language_texts(
            value_node, path=path, key=key, entry_id=None,
            required_variables=MESSAGE_VARIABLES[key], problems=problems,
        )
        infos = {
            language: TextInfo(text=body, line=line_of(value_node), variables=MESSAGE_VARIABLES[key])
            for language, body in texts.items()
        }
        definitions.append(MessageDefinition(key, path, line_of(key_node), infos, fixed=True))
    for key in MESSAGE_VARIABLES:
        if key not in seen and not any(p.key == key and p.path == path for p in problems):
            problems.append(PromptProblem(path, line_of(root), "missing_key", key))
    return definitions


def read_flow_messages(
    text: str, *, path: str, problems: list[ValidationProblem]
) -> list[MessageDefinition] | None:
    """Validate a file of free message keys such as prompts/flows.yaml.

    Template variables are collected here and checked against the flows that use each
    key in check_flow_references. Returns None when the file is not a YAML mapping.
    """
    problem_count = len(problems)
    root = compose(text, path=path, problems=problems)
    if root is None and len(problems) == problem_count:
        return []  # an empty file defines no keys yet
    root = _root_mapping(root, path=path, name=path.rsplit("/", 1)[-1], problems=problems)
    if root is None:
        return None
    definitions = []
    for key, key_node, value_node in mapping_items(root):
        if not KEY_PATTERN.match(key):
            problems.append(PromptProblem(path, line_of(key_node), "bad_message_key", key))
            continue
        texts = check_texts(
            value_node, path=path, key=key, entry_id=None,
            required_languages=REQUIRED_LANGUAGES, required_variables=frozenset(),
            allowed_variables=None, spoken=True, problems=problems,
        )
        definitions.append(MessageDefinition(key, path, line_of(key_node), texts, fixed=False))
    return definitions


def read_system(text: str, *, path: str, problems: list[ValidationProblem]) -> SystemPrompts:
    """Validate system.yaml: system prompt and grounding rule per language, one instruction per intent."""
    prompts = SystemPrompts()
    root = _root_mapping(compose(text, path=path, problems=problems), path=path, name="system.yaml", problems=problems)
    if root is None:
        return prompts
    fields_found = {key: (key_node, value_node) for key, key_node, value_node in mapping_items(root)}
    for key, (key_node, _) in fields_found.items():
        if key not in SYSTEM_KEYS:
            problems.append(PromptProblem(path, line_of(key_node), "unknown_key", key, expected=", ".join(SYSTEM_KEYS)))
    for key in SYSTEM_KEYS:
        if key not in fields_found:
            problems.append(PromptProblem(path, line_of(root), "missing_key", key))

    for key in ("system", "grounding"):
        if key in fields_found:
            texts = check_texts(
                fields_found[key][1], path=path, key=key, entry_id=None,
                required_languages=REQUIRED_LANGUAGES, required_variables=frozenset(),
                allowed_variables=frozenset(), spoken=False, problems=problems,
            )
            setattr(prompts, key, {language: info.text for language, info in texts.items()})

    if "intents" not in fields_found:
        return prompts
    intents_node = fields_found["intents"][1]
    if not isinstance(intents_node, yaml.MappingNode):
        problems.append(PromptProblem(path, line_of(intents_node), "not_mapping", "intents"))
        return prompts
    seen: set[str] = set()
    for intent, intent_key_node, value_node in mapping_items(intents_node):
        if intent not in INTENT_VARIABLES:
            problems.append(
                PromptProblem(
                    path, line_of(intent_key_node), "unknown_key", f"intents.{intent}",
                    expected=", ".join(INTENT_VARIABLES),
                )
            )
            continue
        seen.add(intent)
        texts = check_texts(
            value_node, path=path, key=f"intents.{intent}", entry_id=None,
            required_languages=INTENT_REQUIRED_LANGUAGES, required_variables=INTENT_VARIABLES[intent],
            allowed_variables=INTENT_VARIABLES[intent], spoken=False, problems=problems,
        )
        prompts.intents[intent] = {language: info.text for language, info in texts.items()}
    for intent in INTENT_VARIABLES:
        if intent not in seen:
            problems.append(PromptProblem(path, line_of(intents_node), "missing_key", f"intents.{intent}"))
    return prompts


def _choice(
    node: yaml.Node, *, path: str, key: str, centre: str, choices: tuple[str, ...], problems: list[ValidationProblem]
) -> str | None:
    value = scalar_text(node)
    if value in choices:
        return value
    problems.append(
        PromptProblem(path, line_of(node), "bad_choice", key, centre, value=str(value or ""), expected=", ".join(choices))
    )
    return None


def _threshold(node: yaml.Node, *, path: str, centre: str, problems: list[ValidationProblem]) -> float | None:
    key = "auto_response_threshold"
    raw = scalar_text(node)
    try:
        value = float(raw) if raw else None
    except ValueError:
        value = None
    if value is None:
        problems.append(PromptProblem(path, line_of(node), "not_number", key, centre, value=raw or ""))
        return None
    if not MIN_AUTO_RESPONSE_THRESHOLD <= value <= MAX_AUTO_RESPONSE_THRESHOLD:
        problems.append(
            PromptProblem(
                path, line_of(node), "out_of_range", key, centre, value=raw or "",
                expected=f"{MIN_AUTO_RESPONSE_THRESHOLD:.2f}-{MAX_AUTO_RESPONSE_THRESHOLD:.2f}",
            )
        )
        return None
    return value


def _extras(node: yaml.Node, *, path: str, centre: str, problems: list[ValidationProblem]) -> tuple[str, ...]:
    if scalar_text(node) == "":
        return ()  # `extras:` with nothing after it
    if not isinstance(node, yaml.SequenceNode):
        problems.append(PromptProblem(path, line_of(node), "not_list", "extras", centre))
        return ()
    extras: list[str] = []
    for item in node.value:
        value = _choice(item, path=path, key="extras", centre=centre, choices=CENTRE_EXTRAS, problems=problems)
        if value is None:
            continue
        if value in extras:
            problems.append(PromptProblem(path, line_of(item), "duplicate_extra", "extras", centre, value=value))
            continue
        extras.append(value)
    return tuple(extras)


def read_centre(text: str, *, path: str, centre: str, problems: list[ValidationProblem]) -> CentreFile | None:
    """Validate one prompts/centres/<centre>.yaml; message overrides are checked later."""
    if not KEY_PATTERN.match(centre):
        problems.append(PromptProblem(path, 1, "bad_centre_name", value=centre))
        return None
    root = _root_mapping(compose(text, path=path, problems=problems), path=path, name=f"{centre}.yaml", problems=problems)
    if root is None:
        return None
    fields_found = {key: (key_node, value_node) for key, key_node, value_node in mapping_items(root)}
    for key, (key_node, _) in fields_found.items():
        if key not in CENTRE_KEYS:
            problems.append(
                PromptProblem(path, line_of(key_node), "unknown_key", key, centre, expected=", ".join(CENTRE_KEYS))
            )
    for key in CENTRE_REQUIRED_KEYS:
        if key not in fields_found:
            problems.append(PromptProblem(path, line_of(root), "missing_key", key, centre))

    def node_of(key: str) -> yaml.Node | None:
        return fields_found[key][1] if key in fields_found else None

    if (node := node_of("centre")) is not None and scalar_text(node) != centre:
        problems.append(
            PromptProblem(path, line_of(node), "centre_mismatch", "centre", centre, value=str(scalar_text(node)), expected=centre)
        )
    name = centre
    if (node := node_of("name")) is not None:
        value = scalar_text(node)
        if value is None:
            problems.append(PromptProblem(path, line_of(node), "not_text", "name", centre))
        elif not value:
            problems.append(PromptProblem(path, line_of(node), "empty_text", "name", centre))
        else:
            name = value
    automation = None
    if (node := node_of("automation_level")) is not None:
        automation = _choice(
            node, path=path, key="automation_level", centre=centre, choices=AUTOMATION_LEVELS, problems=problems
        )
    threshold = None
    if (node := node_of("auto_response_threshold")) is not None:
        threshold = _threshold(node, path=path, centre=centre, problems=problems)
    sensitivity = DEFAULT_ESCALATION_SENSITIVITY
    if (node := node_of("escalation_sensitivity")) is not None:
        sensitivity = _choice(
            node, path=path, key="escalation_sensitivity", centre=centre,
            choices=ESCALATION_SENSITIVITIES, problems=problems,
        ) or DEFAULT_ESCALATION_SENSITIVITY
    extras: tuple[str, ...] = ()
    if (node := node_of("extras")) is not None:
        extras = _extras(node, path=path, centre=centre, problems=problems)
    overrides: list[tuple[str, yaml.Node, yaml.Node]] = []
    if (node := node_of("messages")) is not None:
        if isinstance(node, yaml.MappingNode):
            overrides = mapping_items(node)
        elif scalar_text(node) != "":
            problems.append(PromptProblem(path, line_of(node), "not_mapping", "messages", centre))
    return CentreFile(
        centre=centre, path=path, name=name, automation_level=automation, auto_response_threshold=threshold,
        escalation_sensitivity=sensitivity, extras=extras, override_nodes=overrides,
    )


def check_centre_overrides(
    centre: CentreFile, *, messages: dict[str, MessageDefinition], problems: list[ValidationProblem]
) -> dict[str, dict[str, str]]:
    """Validate a centre's message overrides against the message keys of all prompt files.

    An override may leave out languages (the shared text is used), and may use only the
    variables of the text it replaces, because the code or flow that renders the key
    fills in only those.
    """
    overrides: dict[str, dict[str, str]] = {}
    for key, key_node, value_node in centre.override_nodes:
        definition = messages.get(key)
        if definition is None:
            problems.append(
                PromptProblem(
                    centre.path, line_of(key_node), "unknown_override", "messages", centre.centre,
                    value=key, expected=_suggest(key, messages),
                )
            )
            continue
        if definition.fixed:
            required = MESSAGE_VARIABLES[key]
            allowed = required
        else:
            required = frozenset()
            allowed = frozenset().union(*(info.variables for info in definition.texts.values()))
        texts = check_texts(
            value_node, path=centre.path, key=f"messages.{key}", entry_id=centre.centre,
            required_languages=(), required_variables=required, allowed_variables=allowed,
            spoken=True, problems=problems,
        )
        overrides[key] = {language: info.text for language, info in texts.items()}
    return overrides


def _scalar_key(node: yaml.Node) -> str | None:
    """Return the message key a scalar node names, or None for null and booleans."""
    if not isinstance(node, yaml.ScalarNode) or node.tag in (_YAML_NULL, _YAML_BOOL):
        return None
    return str(node.value).strip()


def _collect_slots(node: yaml.Node, slots: set[str]) -> None:
    """Add the slot names of a `slots:` value: a list of names or of {name: ...}, or a mapping by name."""
    if isinstance(node, yaml.SequenceNode):
        for item in node.value:
            if isinstance(item, yaml.MappingNode):
                for key, _, value in mapping_items(item):
                    if key in ("name", "slot") and (name := _scalar_key(value)):
                        slots.add(name)
            elif name := _scalar_key(item):
                slots.add(name)
    elif isinstance(node, yaml.MappingNode):
        slots.update(key for key, _, _ in mapping_items(node))


def read_flow(text: str, *, path: str, flow: str, problems: list[ValidationProblem]) -> FlowFile:
    """Collect the message references and slots of one dialogs/flows/*.yaml file.

    The flow format belongs to the flow engine, so this reads only what the prompt
    contract needs, wherever it sits in the file: FLOW_MESSAGE_FIELDS values
    (message keys, or lists of keys), `collect: <slot>` and `slots:` lists or mappings. A top-level
    `id` or `name` names the flow; otherwise the file name does.
    """
    result = FlowFile(flow=flow, path=path)
    root = compose(text, path=path, problems=problems)
    if root is None:
        return result
    if isinstance(root, yaml.MappingNode):
        for key, _, value in mapping_items(root):
            if key in ("id", "name") and (name := _scalar_key(value)):
                result.flow = name
                break

    pending: list[yaml.Node] = [root]
    while pending:
        node = pending.pop()
        if isinstance(node, yaml.SequenceNode):
            pending.extend(node.value)
            continue
        if not isinstance(node, yaml.MappingNode):
            continue
        for key, _, value in mapping_items(node):
            if key in FLOW_MESSAGE_FIELDS:
                _add_references(result, key, value, problems)
            elif key == "collect":
                if isinstance(value, yaml.MappingNode):
                    _collect_slots(yaml.SequenceNode("tag:yaml.org,2002:seq", [value]), result.slots)
                elif name := _scalar_key(value):
                    result.slots.add(name)
            elif key == "slots":
                _collect_slots(value, result.slots)
            if isinstance(value, (yaml.MappingNode, yaml.SequenceNode)):
                pending.append(value)
    result.references.sort(key=lambda reference: reference.line)
    return result


def _add_references(flow: FlowFile, field_name: str, node: yaml.Node, problems: list[ValidationProblem]) -> None:
    items = node.value if isinstance(node, yaml.SequenceNode) else [node]
    for item in items:
        if isinstance(item, yaml.MappingNode):
            continue  # a nested step or option: the walk in read_flow visits its fields
        if isinstance(item, yaml.ScalarNode) and item.tag in (_YAML_NULL, _YAML_BOOL):
            continue  # `confirm: true` and the like are flags, not references
        key = _scalar_key(item)
        if key is None or not KEY_PATTERN.match(key):
            problems.append(PromptProblem(flow.path, line_of(item), "not_message_key", field_name, flow.flow))
            continue
        flow.references.append(FlowReference(flow.flow, flow.path, line_of(item), field_name, key))


def _suggest(key: str, messages: dict[str, MessageDefinition]) -> str:
    close = difflib.get_close_matches(key, list(messages), n=3, cutoff=0.5)
    return ", ".join(close or list(messages)[:5]) or "-"


def check_flow_references(
    flows: list[FlowFile],
    *,
    messages: dict[str, MessageDefinition],
    all_keys_known: bool,
    problems: list[ValidationProblem],
) -> None:
    """Check that every key a flow names exists and that its texts use only variables the flow fills in.

    A flow fills in its declared slots and the built-in variables. A flow message that
    no flow refers to may use any slot declared by some flow, since a flow being written
    may refer to it next. Without `all_keys_known` (a prompt file could not be parsed)
    missing keys are not reported, because the parse error already is.
    """
    referring: dict[str, list[FlowFile]] = {}
    for flow in flows:
        for reference in flow.references:
            if reference.key not in messages:
                if not all_keys_known:
                    continue
                problems.append(
                    PromptProblem(
                        reference.path, reference.line, "unknown_message", reference.field_name, flow.flow,
                        value=reference.key, expected=_suggest(reference.key, messages),
                    )
                )
                continue
            users = referring.setdefault(reference.key, [])
            if flow not in users:
                users.append(flow)

    all_slots = frozenset().union(*(flow.slots for flow in flows))
    for definition in messages.values():
        if definition.fixed:
            continue
        for language, info in definition.texts.items():
            item_key = f"{definition.key}.{language}"
            users = referring.get(definition.key, [])
            if not users:
                allowed = BUILTIN_VARIABLES | all_slots
                for name in sorted(info.variables - allowed):
                    problems.append(
                        PromptProblem(
                            definition.path, info.line, "unknown_variable", item_key,
                            value="{" + name + "}",
                            expected=", ".join("{" + slot + "}" for slot in sorted(allowed)),
                        )
                    )
                continue
            for flow in users:
                for name in sorted(info.variables - BUILTIN_VARIABLES - flow.slots):
                    problems.append(
                        PromptProblem(
                            definition.path, info.line, "undeclared_variable", item_key,
                            value="{" + name + "}", expected=flow.flow,
                        )
                    )
