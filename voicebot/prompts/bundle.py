"""One validated, immutable version of the whole prompt and dialog set.

A `PromptBundle` contains the spoken messages (prompts/messages.yaml and every other
prompts/*.yaml), the LLM system prompts and intent instructions (prompts/system.yaml),
the centre settings with their message overrides (prompts/centres/*.yaml), the flows
(dialogs/flows/*.yaml, checked against the messages of the same set), the FAQ knowledge
base (dialogs/faq.yaml) and the escalation policy (dialogs/escalation.yaml). It also
keeps the text of every file it was built from, so a stored version can be rebuilt and
activated again without reading the disk.

A call takes `PromptStore.current()` once when it starts and keeps that bundle to its
end: bundles are never changed in place, so a reload affects only calls that start after
it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

from voicebot.dialog.flows import FlowFileError, FlowSet, parse_flows
from voicebot.errors import KnowledgeBaseError
from voicebot.escalation.policy_file import PolicyFileError, PolicySettings, parse_policy
from voicebot.prompts.problems import PromptProblem
from voicebot.prompts.schema import (
    CENTRE_EXTRAS,
    CENTRES_DIR,
    DEFAULT_AUTO_RESPONSE_THRESHOLD,
    DEFAULT_AUTOMATION_LEVEL,
    DEFAULT_CENTRE,
    DEFAULT_ESCALATION_SENSITIVITY,
    ESCALATION_FILE,
    FAQ_FILE,
    FLOWS_DIR,
    MESSAGES_FILE,
    SYSTEM_FILE,
)
from voicebot.prompts.validate import (
    CentreFile,
    FlowFile,
    FlowReference,
    MessageDefinition,
    check_centre_overrides,
    check_flow_references,
    read_centre,
    read_fixed_messages,
    read_flow,
    read_flow_messages,
    read_system,
)
from voicebot.responder.faq import KnowledgeBase, parse_knowledge_base
from voicebot.responder.messages import FALLBACK_LANGUAGE, DialogFileError, Messages, ValidationProblem

logger = logging.getLogger(__name__)

# Logical file names inside a bundle: the folder the file came from, then its path there.
PROMPTS_PREFIX = "prompts/"
DIALOGS_PREFIX = "dialogs/"
FAQ_NAME = DIALOGS_PREFIX + FAQ_FILE
ESCALATION_NAME = DIALOGS_PREFIX + ESCALATION_FILE

_EMPTY: Mapping[str, str] = MappingProxyType({})


def _frozen(texts: Mapping[str, Mapping[str, str]]) -> Mapping[str, Mapping[str, str]]:
    return MappingProxyType({key: MappingProxyType(dict(value)) for key, value in texts.items()})


@dataclass(frozen=True)
class CentreSettings:
    """Bot settings of one contact centre, from prompts/centres/<centre>.yaml."""

    centre: str
    name: str
    automation_level: str  # "low", "medium" or "high"
    auto_response_threshold: float  # 0-1 confidence below which an answer is not spoken as fact
    escalation_sensitivity: str  # "low", "medium" or "high"; high hands over more often
    extras: tuple[str, ...] = ()  # names from CENTRE_EXTRAS
    messages: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def sentiment_analysis(self) -> bool:
        """Whether the centre wants caller sentiment analysed for escalation."""
        return "sentiment_analysis" in self.extras

    @property
    def proactive_suggestions(self) -> bool:
        """Whether the centre wants the bot to send suggestions to reps during a handoff."""
        return "proactive_suggestions" in self.extras


DEFAULT_CENTRE_SETTINGS = CentreSettings(
    centre=DEFAULT_CENTRE,
    name=DEFAULT_CENTRE,
    automation_level=DEFAULT_AUTOMATION_LEVEL,
    auto_response_threshold=DEFAULT_AUTO_RESPONSE_THRESHOLD,
    escalation_sensitivity=DEFAULT_ESCALATION_SENSITIVITY,
)


def content_digest(files: Mapping[str, str]) -> str:
    """Return the SHA-256 hex digest of a set of files, independent of their order."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode("utf-8") + b"\0" + files[name].encode("utf-8") + b"\0")
    return digest.hexdigest()


def text_digest(text: str) -> str:
    """Return the SHA-256 hex digest of one file's text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class PromptBundle:
    """One validated version of the prompt set. Build it with load_bundle or build_bundle."""

    digest: str  # SHA-256 of the files, see content_digest
    files: Mapping[str, str]  # logical name ("prompts/messages.yaml") to file text
    messages: Mapping[str, Mapping[str, str]]  # message key to {language: text}
    message_files: Mapping[str, str]  # message key to the file that defines it, as errors show it
    system: Mapping[str, str]  # language to LLM system prompt
    grounding: Mapping[str, str]  # language to the grounding rule
    intents: Mapping[str, Mapping[str, str]]  # intent to {language: instruction}
    centres: Mapping[str, CentreSettings]
    flow_references: tuple[FlowReference, ...]
    flows: FlowSet  # dialogs/flows/*.yaml; its messages are every message of this set, without centre overrides
    # dialogs/faq.yaml and dialogs/escalation.yaml; None in a set without the file, such as a
    # version stored before these files were part of the set.
    knowledge_base: KnowledgeBase | None
    escalation: PolicySettings | None
    sequence: int = 0  # assigned by PromptStore; 0 for a bundle that was never stored

    @property
    def version(self) -> str:
        """Version label: the store's sequence number and the start of the content digest."""
        return f"v{self.sequence}-{self.digest[:12]}"

    def with_sequence(self, sequence: int) -> PromptBundle:
        """Return a copy numbered `sequence`."""
        return replace(self, sequence=sequence)

    def file_digest(self, name: str) -> str:
        """Return the SHA-256 of file `name` ("dialogs/faq.yaml"), or "" when the set has no such file.

        Two versions with the same FAQ digest can share one FAQ index.
        """
        text = self.files.get(name)
        return "" if text is None else text_digest(text)

    def centre_settings(self, centre: str | None = None) -> CentreSettings:
        """Return the settings of `centre`; None and "default" give the default settings.

        A prompts/centres/default.yaml, if present, replaces the built-in defaults.
        Raises KnowledgeBaseError for a centre that has no file.
        """
        name = centre or DEFAULT_CENTRE
        settings = self.centres.get(name)
        if settings is not None:
            return settings
        if name == DEFAULT_CENTRE:
            return DEFAULT_CENTRE_SETTINGS
        known = ", ".join(sorted(self.centres)) or "-"
        raise KnowledgeBaseError(
            f"unknown centre {name!r}; add {PROMPTS_PREFIX}{CENTRES_DIR}/{name}.yaml or use one of: {known}"
        )

    def text(self, key: str, language: str, centre: str | None = None) -> str:
        """Return the template of `key` for `language` with the centre's override applied.

        Lookup order: the centre's text for the language, the shared text for the
        language, the centre's Mandarin text, the shared Mandarin text.
        """
        shared = self.messages.get(key)
        if shared is None:
            known = ", ".join(self.messages)
            raise KnowledgeBaseError(f"unknown message key {key!r}; the prompt files define: {known}")
        override = self.centre_settings(centre).messages.get(key, _EMPTY)
        for candidate in (override.get(language), shared.get(language), override.get(FALLBACK_LANGUAGE)):
            if candidate is not None:
                return candidate
        return shared[FALLBACK_LANGUAGE]

    def render(self, key: str, language: str, centre: str | None = None, **variables: object) -> str:
        """Return the text of `key` in `language` for `centre` with its template variables filled in.

        Raises KnowledgeBaseError for an unknown key or centre, or a missing variable.
        """
        template = self.text(key, language, centre)
        try:
            return template.format(**variables)
        except KeyError as error:
            raise KnowledgeBaseError(
                f"message {key!r} needs the template variable {error.args[0]!r}; pass it to render as a keyword argument"
            ) from error

    def messages_for(self, centre: str | None = None) -> Messages:
        """Return the messages with `centre`'s overrides applied, for code that takes a Messages object."""
        settings = self.centre_settings(centre)
        texts: dict[str, dict[str, str]] = {}
        for key, shared in self.messages.items():
            merged = dict(shared)
            merged.update(settings.messages.get(key, _EMPTY))
            texts[key] = merged
        return Messages(texts, path=f"{PROMPTS_PREFIX} {self.version}")

    def system_prompt(self, language: str) -> str:
        """Return the LLM system prompt for `language`: the system text, then the grounding rule."""
        system = self.system.get(language) or self.system[FALLBACK_LANGUAGE]
        grounding = self.grounding.get(language) or self.grounding[FALLBACK_LANGUAGE]
        return f"{system}\n\n{grounding}"

    def intent_instruction(self, intent: str, language: str, **variables: object) -> str:
        """Return the LLM instruction for `intent` with its template variables filled in.

        Raises KnowledgeBaseError for an unknown intent or a missing variable.
        """
        texts = self.intents.get(intent)
        if texts is None:
            raise KnowledgeBaseError(f"unknown intent {intent!r}; {SYSTEM_FILE} defines: {', '.join(self.intents)}")
        template = texts.get(language) or texts[FALLBACK_LANGUAGE]
        try:
            return template.format(**variables)
        except KeyError as error:
            raise KnowledgeBaseError(
                f"intent {intent!r} needs the template variable {error.args[0]!r}; "
                "pass it to intent_instruction as a keyword argument"
            ) from error


def read_sources(
    prompts_dir: Path,
    dialogs_dir: Path,
    *,
    faq_path: Path | None = None,
    escalation_path: Path | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """Read every file of the prompt set from disk.

    Returns (files, display_paths): logical name to text, and logical name to the path
    that errors show. The set is prompts/*.yaml, prompts/centres/*.yaml,
    dialogs/flows/*.yaml, and the FAQ and escalation policy files, by default
    dialogs/faq.yaml and dialogs/escalation.yaml, stored as those logical names wherever
    they are. A missing centres or flows folder is an empty set, and a missing FAQ or
    policy file is left out. Raises DialogFileError for a file that is not UTF-8.
    """
    paths: dict[str, Path] = {}
    for folder, prefix, pattern in (
        (prompts_dir, PROMPTS_PREFIX, "*.yaml"),
        (prompts_dir / CENTRES_DIR, f"{PROMPTS_PREFIX}{CENTRES_DIR}/", "*.yaml"),
        (dialogs_dir / FLOWS_DIR, f"{DIALOGS_PREFIX}{FLOWS_DIR}/", "*.yaml"),
    ):
        if folder.is_dir():
            for path in sorted(folder.glob(pattern)):
                if path.is_file():
                    paths[prefix + path.name] = path
    for name, path in _dialog_files(dialogs_dir, faq_path, escalation_path).items():
        if path.is_file():
            paths[name] = path
    files: dict[str, str] = {}
    for name, path in paths.items():
        try:
            files[name] = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            problem = PromptProblem(str(path), None, "yaml_syntax", value=f"not UTF-8 ({error.reason})")
            raise DialogFileError([problem]) from error
    display_paths = {name: str(path) for name, path in paths.items()}
    for required in (MESSAGES_FILE, SYSTEM_FILE):
        display_paths.setdefault(PROMPTS_PREFIX + required, str(prompts_dir / required))  # named when missing
    return files, display_paths


def _dialog_files(dialogs_dir: Path, faq_path: Path | None, escalation_path: Path | None) -> dict[str, Path]:
    return {
        FAQ_NAME: faq_path if faq_path is not None else dialogs_dir / FAQ_FILE,
        ESCALATION_NAME: escalation_path if escalation_path is not None else dialogs_dir / ESCALATION_FILE,
    }


def source_paths(
    prompts_dir: Path,
    dialogs_dir: Path,
    *,
    faq_path: Path | None = None,
    escalation_path: Path | None = None,
) -> list[Path]:
    """Return the files read_sources would read, for watchers that compare modification times."""
    found: list[Path] = []
    for folder in (prompts_dir, prompts_dir / CENTRES_DIR, dialogs_dir / FLOWS_DIR):
        if folder.is_dir():
            found.extend(path for path in sorted(folder.glob("*.yaml")) if path.is_file())
    found.extend(path for path in _dialog_files(dialogs_dir, faq_path, escalation_path).values() if path.is_file())
    return found


def build_bundle(
    files: Mapping[str, str], *, display_paths: Mapping[str, str] | None = None, lang: str = "zh"
) -> PromptBundle:
    """Validate a set of file texts and return the bundle they make.

    `files` maps logical names (see read_sources) to texts; `display_paths` maps them to the
    paths errors should name, by default the logical names. Raises DialogFileError
    listing every problem of every file, in Simplified Chinese or, with lang="en", English.
    """
    display_paths = display_paths or {}
    problems: list[ValidationProblem] = []

    def where(name: str) -> str:
        return display_paths.get(name, name)

    messages: dict[str, MessageDefinition] = {}
    all_keys_known = True

    def define(definitions: list[MessageDefinition] | None) -> None:
        nonlocal all_keys_known
        if definitions is None:
            all_keys_known = False
            return
        for definition in definitions:
            first = messages.get(definition.key)
            if first is not None:
                problems.append(
                    PromptProblem(
                        definition.path, definition.line, "duplicate_message", definition.key,
                        expected=f"{first.path}:{first.line}",
                    )
                )
                continue
            messages[definition.key] = definition

    messages_name = PROMPTS_PREFIX + MESSAGES_FILE
    system_name = PROMPTS_PREFIX + SYSTEM_FILE
    for required in (messages_name, system_name):
        if required not in files:
            problems.append(PromptProblem(where(required), None, "file_missing"))
    if messages_name in files:
        define(read_fixed_messages(files[messages_name], path=where(messages_name), problems=problems))
    system = None
    if system_name in files:
        system = read_system(files[system_name], path=where(system_name), problems=problems)

    centre_files: list[CentreFile] = []
    flow_files: list[FlowFile] = []
    flow_texts: dict[str, str] = {}
    for name in sorted(files):
        text = files[name]
        relative = name[len(PROMPTS_PREFIX):] if name.startswith(PROMPTS_PREFIX) else None
        if relative is not None and "/" not in relative and relative not in (MESSAGES_FILE, SYSTEM_FILE):
            define(read_flow_messages(text, path=where(name), problems=problems))
        elif relative is not None and relative.startswith(f"{CENTRES_DIR}/"):
            centre = relative.split("/", 1)[1].removesuffix(".yaml")
            parsed = read_centre(text, path=where(name), centre=centre, problems=problems)
            if parsed is not None:
                centre_files.append(parsed)
        elif name.startswith(f"{DIALOGS_PREFIX}{FLOWS_DIR}/"):
            flow = name.rsplit("/", 1)[1].removesuffix(".yaml")
            flow_files.append(read_flow(text, path=where(name), flow=flow, problems=problems))
            flow_texts[where(name)] = text

    centres: dict[str, CentreSettings] = {}
    for parsed in centre_files:
        overrides = check_centre_overrides(parsed, messages=messages, problems=problems)
        centres[parsed.centre] = CentreSettings(
            centre=parsed.centre,
            name=parsed.name,
            automation_level=parsed.automation_level or DEFAULT_AUTOMATION_LEVEL,
            auto_response_threshold=parsed.auto_response_threshold or DEFAULT_AUTO_RESPONSE_THRESHOLD,
            escalation_sensitivity=parsed.escalation_sensitivity,
            extras=tuple(extra for extra in CENTRE_EXTRAS if extra in parsed.extras),
            messages=_frozen(overrides),
        )
    check_flow_references(flow_files, messages=messages, all_keys_known=all_keys_known, problems=problems)

    message_texts = {key: {language: info.text for language, info in d.texts.items()} for key, d in messages.items()}
    flows = _read_flows(flow_texts, message_texts, problems=problems, lang=lang)
    knowledge_base = _read_knowledge_base(files, where(FAQ_NAME), problems=problems, lang=lang)
    escalation = _read_escalation(files, where(ESCALATION_NAME), problems=problems, lang=lang)

    if problems:
        raise DialogFileError(problems, lang=lang)
    assert system is not None  # a missing system.yaml is a problem above
    assert flows is not None  # flow problems are problems above
    bundle = PromptBundle(
        digest=content_digest(files),
        files=MappingProxyType(dict(files)),
        messages=_frozen(message_texts),
        message_files=MappingProxyType({key: d.path for key, d in messages.items()}),
        system=MappingProxyType(dict(system.system)),
        grounding=MappingProxyType(dict(system.grounding)),
        intents=_frozen(system.intents),
        centres=MappingProxyType(centres),
        flow_references=tuple(reference for flow in flow_files for reference in flow.references),
        flows=flows,
        knowledge_base=knowledge_base,
        escalation=escalation,
    )
    logger.info(
        "Validated prompt set %s: %d messages, %d centres, %d flows, %d FAQ topics, escalation policy %s",
        bundle.digest[:12], len(bundle.messages), len(bundle.centres), len(flows.flows),
        len(knowledge_base.entries) if knowledge_base else 0, escalation.policy_version if escalation else "-",
    )
    return bundle


def _read_flows(
    flow_texts: Mapping[str, str],
    message_texts: Mapping[str, Mapping[str, str]],
    *,
    problems: list[ValidationProblem],
    lang: str,
) -> FlowSet | None:
    """Check the flows against the flow engine's rules; message references are checked by check_flow_references.

    A flow file that is not valid YAML is reported once already, so it is left out here.
    """
    broken = {problem.path for problem in problems if problem.code == "yaml_syntax"}
    texts = {path: text for path, text in flow_texts.items() if path not in broken}
    messages = Messages(message_texts, path=f"{PROMPTS_PREFIX}*.yaml")
    try:
        return parse_flows(texts, messages=messages, message_variables=None, lang=lang)
    except FlowFileError as error:
        problems.extend(error.problems)  # type: ignore[arg-type]  # FlowProblem describes itself the same way
        return None


def _read_knowledge_base(
    files: Mapping[str, str], path: str, *, problems: list[ValidationProblem], lang: str
) -> KnowledgeBase | None:
    text = files.get(FAQ_NAME)
    if text is None:
        return None
    try:
        return parse_knowledge_base(text, path=path, lang=lang)
    except DialogFileError as error:
        problems.extend(error.problems)
        return None


def _read_escalation(
    files: Mapping[str, str], path: str, *, problems: list[ValidationProblem], lang: str
) -> PolicySettings | None:
    text = files.get(ESCALATION_NAME)
    if text is None:
        return None
    try:
        return parse_policy(text, path=path, lang=lang)
    except (DialogFileError, PolicyFileError) as error:
        problems.extend(error.problems)  # type: ignore[arg-type]  # PolicyProblem describes itself the same way
        return None


def load_bundle(
    prompts_dir: str | Path,
    dialogs_dir: str | Path,
    *,
    faq_path: str | Path | None = None,
    escalation_path: str | Path | None = None,
    lang: str = "zh",
) -> PromptBundle:
    """Read and validate the prompt set on disk; raises DialogFileError naming file, line and fix."""
    files, display_paths = read_sources(
        Path(prompts_dir),
        Path(dialogs_dir),
        faq_path=Path(faq_path) if faq_path is not None else None,
        escalation_path=Path(escalation_path) if escalation_path is not None else None,
    )
    return build_bundle(files, display_paths=display_paths, lang=lang)
