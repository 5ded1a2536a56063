"""Spoken system messages (greeting, clarify, goodbye, ...) loaded from prompts/messages.yaml.

The file maps a message key to one text per language: `zh` is Mandarin and `yue` is
Cantonese, both written in Simplified characters. Texts may hold `{name}` template
variables that `Messages.render` fills in.

This module also holds the YAML validation helpers that the FAQ loader shares: they keep
the line of every YAML node so that an error can name the file, the line, the entry and
the fix, in Simplified Chinese by default or in English with `lang="en"`.
"""

from __future__ import annotations

import logging
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import yaml

from voicebot.errors import KnowledgeBaseError

logger = logging.getLogger(__name__)

# Languages the bot speaks. Each message and each FAQ answer needs a text for every
# language in REQUIRED_LANGUAGES; `en` may be added and is used for English callers.
REQUIRED_LANGUAGES: tuple[str, ...] = ("zh", "yue")
OPTIONAL_LANGUAGES: tuple[str, ...] = ("en",)
FALLBACK_LANGUAGE = "zh"

# Message keys the dialog needs, with the template variables each text must contain.
MESSAGE_VARIABLES: dict[str, frozenset[str]] = {
    "greeting": frozenset(),
    "clarify": frozenset({"choices"}),
    "not_heard": frozenset(),
    "goodbye": frozenset(),
    "transfer": frozenset(),
    "hold": frozenset(),
    "fallback": frozenset(),
    "queue_position": frozenset({"position"}),
    "no_agent": frozenset(),
    "transfer_failed": frozenset(),
}

# Characters that espeak-ng reads wrongly or not at all in Chinese text. Spoken texts
# spell them out: 百分之十, 一百元.
UNSPEAKABLE_CHARACTERS = "%％‰¥￥$＄#＃&＆*@~～^|\\<>"

# Problem templates for validation errors: (Simplified Chinese, English).
# `{key}`, `{value}` and `{expected}` are filled in per problem.
_PROBLEMS: dict[str, tuple[str, str]] = {
    "file_missing": (
        "文件不存在，请检查路径或创建该文件",
        "file not found; check the path or create the file",
    ),
    "yaml_syntax": (
        "YAML 语法错误：{value}。请检查缩进、冒号和引号",
        "invalid YAML: {value}. Check indentation, colons and quotes",
    ),
    "not_mapping": (
        "“{key}”应该是键值映射（每行写“名称: 内容”）",
        "'{key}' must be a mapping (one 'name: value' per line)",
    ),
    "not_list": (
        "“{key}”应该是列表（每项以“- ”开头）",
        "'{key}' must be a list (one '- item' per line)",
    ),
    "not_text": (
        "“{key}”应该是一段文字，请直接写文字，不要写列表或映射",
        "'{key}' must be text; write the text itself, not a list or mapping",
    ),
    "empty_text": (
        "“{key}”是空的，请填写内容",
        "'{key}' is empty; write the text",
    ),
    "unknown_key": (
        "未知字段“{key}”，可用的字段是：{expected}。请检查拼写或删除该字段",
        "unknown key '{key}'; allowed keys are: {expected}. Fix the spelling or remove it",
    ),
    "missing_key": (
        "缺少字段“{key}”，请添加",
        "missing key '{key}'; add it",
    ),
    "missing_language": (
        "“{key}”缺少 {value} 语言的文本，请添加“{value}: ……”（zh 为普通话，yue 为粤语）",
        "'{key}' has no text for language {value}; add '{value}: ...' (zh is Mandarin, yue is Cantonese)",
    ),
    "unknown_language": (
        "“{key}”下的语言代码“{value}”未知，可用的语言代码是：{expected}",
        "unknown language code '{value}' under '{key}'; allowed codes are: {expected}",
    ),
    "missing_variable": (
        "“{key}”的文本必须包含模板变量 {value}，请在合适的位置写上 {value}",
        "the text of '{key}' must contain the template variable {value}; add {value} where it belongs",
    ),
    "unknown_variable": (
        "“{key}”的文本里有未知的模板变量 {value}，可用的变量是：{expected}",
        "the text of '{key}' contains the unknown template variable {value}; allowed variables are: {expected}",
    ),
    "bad_template": (
        "“{key}”的文本不是有效的模板：{value}。花括号只能用于模板变量，例如 {{choices}}",
        "the text of '{key}' is not a valid template: {value}. Use braces only for template variables such as {{choices}}",
    ),
    "unspeakable": (
        "“{key}”的文本包含语音合成无法朗读的字符“{value}”，请改写成汉字，例如 百分之十、一百元",
        "the text of '{key}' contains '{value}', which speech synthesis cannot read; spell it out, e.g. 百分之十, 一百元",
    ),
    "duplicate_id": (
        "条目 id “{value}”重复，第一次出现在第 {expected} 行。每个条目的 id 必须唯一，请改名或合并这两个条目",
        "duplicate entry id '{value}', first used on line {expected}. Ids must be unique; rename or merge the entries",
    ),
    "bad_id": (
        "条目 id “{value}”无效，只能使用小写英文字母、数字和下划线，并以字母开头，例如 annual_fee",
        "invalid entry id '{value}'; use lowercase letters, digits and underscores, starting with a letter, e.g. annual_fee",
    ),
    "empty_list": (
        "“{key}”是空列表，请至少写 {expected} 条",
        "'{key}' is an empty list; write at least {expected} items",
    ),
    "duplicate_question": (
        "例句“{value}”已经出现在条目“{expected}”中，同一句话只能属于一个条目，请删除其中一处",
        "example question '{value}' is already listed under entry '{expected}'; keep it in one entry only",
    ),
    "no_entries": (
        "知识库里没有任何条目，请在 entries 下至少添加一个条目",
        "the knowledge base has no entries; add at least one under 'entries'",
    ),
}


@dataclass(frozen=True)
class ValidationProblem:
    """One problem found in a dialog file, with where it is and which rule it breaks."""

    path: str
    line: int | None  # 1-based, None when the file cannot be read
    code: str  # a key of the problem templates, e.g. "missing_language"
    key: str = ""  # the YAML key the problem is about
    entry_id: str | None = None  # FAQ entry id, when the problem is inside an entry
    value: str = ""
    expected: str = ""

    def describe(self, lang: str = "zh") -> str:
        """Format the problem as one line in Simplified Chinese (`zh`) or English (`en`)."""
        zh_template, en_template = _PROBLEMS[self.code]
        english = lang == "en"
        problem = (en_template if english else zh_template).format(
            key=self.key, value=self.value, expected=self.expected
        )
        if english:
            where = self.path if self.line is None else f"{self.path}, line {self.line}"
            entry = f", entry '{self.entry_id}'" if self.entry_id else ""
            return f"{where}{entry}: {problem}."
        where = self.path if self.line is None else f"{self.path} 第 {self.line} 行"
        entry = f"，条目“{self.entry_id}”" if self.entry_id else ""
        return f"{where}{entry}：{problem}。"


class DialogFileError(KnowledgeBaseError):
    """A dialog or prompt file is invalid; `problems` lists every problem found."""

    def __init__(self, problems: list[ValidationProblem], *, lang: str = "zh") -> None:
        self.problems = tuple(problems)
        lines = [problem.describe(lang) for problem in problems]
        super().__init__("\n".join(lines))


def load_yaml_node(path: Path, *, lang: str = "zh") -> yaml.Node | None:
    """Parse a YAML file into a node tree that keeps line numbers.

    Raises DialogFileError when the file is missing or is not valid YAML. Returns None
    for an empty file.
    """
    display = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise DialogFileError([ValidationProblem(display, None, "file_missing")], lang=lang) from error
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        line = mark.line + 1 if mark is not None else None
        reason = error.problem or str(error)
        problem = ValidationProblem(display, line, "yaml_syntax", value=reason)
        raise DialogFileError([problem], lang=lang) from error


def line_of(node: yaml.Node) -> int:
    """Return the 1-based line where a YAML node starts."""
    return node.start_mark.line + 1


def mapping_items(node: yaml.MappingNode) -> list[tuple[str, yaml.ScalarNode, yaml.Node]]:
    """Return (key text, key node, value node) for each pair of a mapping node."""
    items = []
    for key_node, value_node in node.value:
        items.append((str(key_node.value), key_node, value_node))
    return items


def scalar_text(node: yaml.Node) -> str | None:
    """Return a scalar node's text stripped of surrounding space, or None for other nodes.

    Plain scalars such as `2024-06-01` or `1` are read as written, not as dates or numbers.
    """
    if not isinstance(node, yaml.ScalarNode):
        return None
    if node.tag == "tag:yaml.org,2002:null":
        return ""
    return str(node.value).strip()


def template_variables(text: str) -> set[str]:
    """Return the `{name}` variables of a str.format template; raises ValueError if malformed."""
    names = set()
    for _, field_name, _, _ in string.Formatter().parse(text):
        if field_name is not None:
            names.add(field_name)
    return names


def check_language_texts(
    node: yaml.Node,
    *,
    path: str,
    key: str,
    entry_id: str | None,
    required_variables: frozenset[str],
    problems: list[ValidationProblem],
) -> dict[str, str]:
    """Validate a `{language: text}` mapping and return the texts that passed.

    Appends a problem for a wrong node type, an unknown or missing language, an empty
    text, a character speech synthesis cannot read, and a missing or unknown template
    variable.
    """
    if not isinstance(node, yaml.MappingNode):
        problems.append(ValidationProblem(path, line_of(node), "not_mapping", key, entry_id))
        return {}

    allowed = REQUIRED_LANGUAGES + OPTIONAL_LANGUAGES
    texts: dict[str, str] = {}
    for language, language_node, text_node in mapping_items(node):
        item_key = f"{key}.{language}"
        if language not in allowed:
            problems.append(
                ValidationProblem(
                    path, line_of(language_node), "unknown_language", key, entry_id,
                    value=language, expected=", ".join(allowed),
                )
            )
            continue
        text = scalar_text(text_node)
        if text is None:
            problems.append(ValidationProblem(path, line_of(text_node), "not_text", item_key, entry_id))
            continue
        if not text:
            problems.append(ValidationProblem(path, line_of(text_node), "empty_text", item_key, entry_id))
            continue
        bad = next((char for char in text if char in UNSPEAKABLE_CHARACTERS), None)
        if bad is not None:
            problems.append(
                ValidationProblem(path, line_of(text_node), "unspeakable", item_key, entry_id, value=bad)
            )
            continue
        try:
            variables = template_variables(text)
        except ValueError as error:
            problems.append(
                ValidationProblem(path, line_of(text_node), "bad_template", item_key, entry_id, value=str(error))
            )
            continue
        known = ", ".join("{" + name + "}" for name in sorted(required_variables)) or "-"
        for name in sorted(variables - required_variables):
            problems.append(
                ValidationProblem(
                    path, line_of(text_node), "unknown_variable", item_key, entry_id,
                    value="{" + name + "}", expected=known,
                )
            )
        for name in sorted(required_variables - variables):
            problems.append(
                ValidationProblem(
                    path, line_of(text_node), "missing_variable", item_key, entry_id, value="{" + name + "}"
                )
            )
        texts[language] = text

    for language in REQUIRED_LANGUAGES:
        if language not in texts and not any(
            p.key.startswith(f"{key}.{language}") and p.entry_id == entry_id for p in problems
        ):
            problems.append(
                ValidationProblem(path, line_of(node), "missing_language", key, entry_id, value=language)
            )
    return texts


class Messages:
    """Spoken system messages, one text per message key and language."""

    def __init__(self, texts: Mapping[str, Mapping[str, str]], *, path: str = "") -> None:
        self._texts = {key: dict(by_language) for key, by_language in texts.items()}
        self.path = path

    def keys(self) -> tuple[str, ...]:
        """Return the message keys, in file order."""
        return tuple(self._texts)

    def render(self, key: str, language: str, **variables: str) -> str:
        """Return the text of `key` in `language` with its template variables filled in.

        A language without its own text, such as `en` when the file has none, gets the
        Mandarin text. Raises KnowledgeBaseError for an unknown key or a missing variable.
        """
        by_language = self._texts.get(key)
        if by_language is None:
            known = ", ".join(self._texts)
            raise KnowledgeBaseError(
                f"unknown message key {key!r}; the keys in {self.path or 'the messages file'} are: {known}"
            )
        text = by_language.get(language)
        if text is None:
            logger.debug("Message %s has no %s text; using %s", key, language, FALLBACK_LANGUAGE)
            text = by_language[FALLBACK_LANGUAGE]
        try:
            return text.format(**variables)
        except KeyError as error:
            raise KnowledgeBaseError(
                f"message {key!r} needs the template variable {error.args[0]!r}; "
                f"pass it to Messages.render as a keyword argument"
            ) from error


def load_messages(path: str | Path, *, lang: str = "zh") -> Messages:
    """Load and validate a messages file such as prompts/messages.yaml.

    Every key of MESSAGE_VARIABLES must be present with a text for each of
    REQUIRED_LANGUAGES, and each text must contain exactly the template variables that
    its key needs. Raises DialogFileError (a KnowledgeBaseError) listing every problem,
    each with file and line, in Simplified Chinese or, with `lang="en"`, in English.
    """
    file_path = Path(path)
    display = str(file_path)
    root = load_yaml_node(file_path, lang=lang)
    problems: list[ValidationProblem] = []
    if root is None or not isinstance(root, yaml.MappingNode):
        line = 1 if root is None else line_of(root)
        problems.append(ValidationProblem(display, line, "not_mapping", key=file_path.name))
        raise DialogFileError(problems, lang=lang)

    texts: dict[str, dict[str, str]] = {}
    for key, key_node, value_node in mapping_items(root):
        if key not in MESSAGE_VARIABLES:
            problems.append(
                ValidationProblem(
                    display, line_of(key_node), "unknown_key", key, expected=", ".join(MESSAGE_VARIABLES)
                )
            )
            continue
        texts[key] = check_language_texts(
            value_node,
            path=display,
            key=key,
            entry_id=None,
            required_variables=MESSAGE_VARIABLES[key],
            problems=problems,
        )
    for key in MESSAGE_VARIABLES:
        if key not in texts and not any(p.key == key for p in problems):
            problems.append(ValidationProblem(display, line_of(root), "missing_key", key))

    if problems:
        raise DialogFileError(problems, lang=lang)
    logger.info("Loaded %d messages from %s", len(texts), display)
    return Messages(texts, path=display)
