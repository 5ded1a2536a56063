"""Every validation error of the prompt and centre files, in Chinese and English, with file and line."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from voicebot.prompts import load_bundle
from voicebot.responder.messages import DialogFileError

from .conftest import PromptTree

pytestmark = pytest.mark.timeout(60)

MESSAGES = "prompts/messages.yaml"
SYSTEM = "prompts/system.yaml"
SHANGHAI = "prompts/centres/shanghai.yaml"
BEIJING = "prompts/centres/beijing.yaml"
SHENZHEN = "prompts/centres/shenzhen.yaml"


@dataclass(frozen=True)
class Case:
    """One broken edit and the problem it must produce."""

    name: str
    file: str  # file the problem is reported in, relative to the temp root
    old: str  # text replaced in `file`; "" for cases that write or delete a file
    new: str
    code: str
    marker: str | None  # text on the expected line after the edit; None when no line is known
    zh: str
    en: str
    line_offset: int = 0  # the expected line is this many lines after the marker's first line


CASES = [
    Case("yaml syntax", MESSAGES, "  zh: 感谢您的来电", "\tzh: 感谢您的来电", "yaml_syntax",
         "感谢您的来电", "YAML 语法错误", "invalid YAML"),
    Case("unknown message key", MESSAGES, "greeting:", "greting:", "unknown_key",
         "greting:", "未知字段“greting”", "unknown key 'greting'"),
    Case("unknown variable", MESSAGES, "你系想问{choices}", "你系想问{choice}", "unknown_variable",
         "{choice}", "未知的模板变量 {choice}", "unknown template variable {choice}"),
    Case("unspeakable character", MESSAGES, "我正在为您查询", "百分百%为您查询", "unspeakable",
         "百分百%", "无法朗读的字符“%”", "which speech synthesis cannot read"),
    Case("bad template", MESSAGES, "我没有听清楚", "我没有听清楚{", "bad_template",
         "我没有听清楚{", "不是有效的模板", "is not a valid template"),
    Case("empty text", MESSAGES, "  zh: 感谢您的来电，祝您生活愉快，再见。", '  zh: ""', "empty_text",
         'zh: ""', "“goodbye.zh”是空的", "'goodbye.zh' is empty"),
    Case("text is a list", MESSAGES, "  zh: 感谢您的来电，祝您生活愉快，再见。", "  zh: [感谢, 再见]", "not_text",
         "[感谢, 再见]", "应该是一段文字", "must be text"),
    Case("missing language", MESSAGES, "  yue: 请等一等，我帮你查紧。\n", "", "missing_language",
         "我正在为您查询", "缺少 yue 语言的文本", "has no text for language yue"),
    Case("unknown language", MESSAGES, "  yue: 请等一等", "  cn: 请等一等", "unknown_language",
         "cn: 请等一等", "语言代码“cn”未知", "unknown language code 'cn'"),
    Case("intent without passages", SYSTEM, "      已审批政策段落：\n      {passages}\n", "", "missing_variable",
         "根据下面的已审批政策段落", "必须包含模板变量 {passages}", "must contain the template variable {passages}",
         line_offset=-1),
    Case("unknown intent", SYSTEM, "  lost_card:", "  lost_cards:", "unknown_key",
         "lost_cards:", "未知字段“intents.lost_cards”", "unknown key 'intents.lost_cards'"),
    Case("missing intent", SYSTEM, "  lost_card:", "  lost_cards:", "missing_key",
         "lost_cards:", "缺少字段“intents.lost_card”", "missing key 'intents.lost_card'"),
    Case("system prompt variable", SYSTEM, "正在电话里用普通话", "正在{centre}电话里用普通话", "unknown_variable",
         "正在{centre}", "未知的模板变量 {centre}", "unknown template variable {centre}", line_offset=-1),
    Case("automation level", SHANGHAI, "automation_level: high", "automation_level: very_high", "bad_choice",
         "very_high", "“automation_level”的值“very_high”无效", "invalid value 'very_high' for 'automation_level'"),
    Case("threshold not a number", BEIJING, "auto_response_threshold: 0.92", "auto_response_threshold: high",
         "not_number", "auto_response_threshold: high", "应该是一个数字", "must be a number"),
    Case("threshold out of range", SHENZHEN, "auto_response_threshold: 0.80", "auto_response_threshold: 1.5",
         "out_of_range", "auto_response_threshold: 1.5", "请写 0.50-0.99 范围内的数字",
         "write a number in the range 0.50-0.99"),
    Case("sensitivity", BEIJING, "escalation_sensitivity: high", "escalation_sensitivity: very", "bad_choice",
         "escalation_sensitivity: very", "可选的值是：low, medium, high", "choose one of: low, medium, high"),
    Case("unknown centre key", BEIJING, "escalation_sensitivity: high", "escalation_sensitivty: high",
         "unknown_key", "escalation_sensitivty", "未知字段“escalation_sensitivty”",
         "unknown key 'escalation_sensitivty'"),
    Case("missing centre key", BEIJING, "automation_level: medium\n", "", "missing_key",
         "centre: beijing", "缺少字段“automation_level”", "missing key 'automation_level'"),
    Case("unknown extra", SHENZHEN, "  - proactive_suggestions", "  - proactive_tips", "bad_choice",
         "proactive_tips", "“extras”的值“proactive_tips”无效", "invalid value 'proactive_tips' for 'extras'"),
    Case("duplicate extra", SHENZHEN, "  - proactive_suggestions", "  - sentiment_analysis", "duplicate_extra",
         "  - sentiment_analysis", "extras 里的“sentiment_analysis”重复了", "'sentiment_analysis' is listed twice",
         line_offset=1),
    Case("extras not a list", SHANGHAI, "extras: []", "extras: sentiment_analysis", "not_list",
         "extras: sentiment_analysis", "“extras”应该是列表", "'extras' must be a list"),
    Case("centre name mismatch", SHANGHAI, "centre: shanghai", "centre: shanghia", "centre_mismatch",
         "centre: shanghia", "但文件名是 shanghai.yaml", "but the file is shanghai.yaml"),
    Case("unknown override", SHANGHAI, "  greeting:", "  greetings:", "unknown_override",
         "greetings:", "消息键“greetings”不存在", "the message key 'greetings' does not exist"),
    Case("override variable", SHANGHAI, "请问有什么可以帮您？", "{name}请问有什么可以帮您？", "unknown_variable",
         "{name}", "“messages.greeting.zh”的文本里有未知的模板变量 {name}",
         "the text of 'messages.greeting.zh' contains the unknown template variable {name}"),
    Case("override unspeakable", BEIJING, "为了更好地帮您处理", "为了更好地帮您处理#", "unspeakable",
         "帮您处理#", "无法朗读的字符“#”", "which speech synthesis cannot read"),
]


def break_files(tree: PromptTree, case: Case) -> None:
    tree.edit(case.file, case.old, case.new)


def expect_problem(tree: PromptTree, case: Case, lang: str) -> DialogFileError:
    with pytest.raises(DialogFileError) as caught:
        load_bundle(tree.prompts, tree.dialogs, lang=lang)
    error = caught.value
    path = str(tree.path(case.file))
    matching = [problem for problem in error.problems if problem.code == case.code and problem.path == path]
    assert matching, f"no {case.code} problem in {path}; got:\n{error}"
    problem = matching[0]
    if case.marker is None:
        assert problem.line is None
    else:
        assert problem.line == tree.line_of(case.file, case.marker) + case.line_offset
    described = problem.describe(lang)
    if lang == "en":
        where = path if problem.line is None else f"{path}, line {problem.line}"
        assert described.startswith(where)
        assert case.en in described
    else:
        where = path if problem.line is None else f"{path} 第 {problem.line} 行"
        assert described.startswith(where)
        assert case.zh in described
    assert described in str(error)
    return error


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_problem_reported(tree, case, lang):
    """A broken edit is reported with its file, line and fix in the chosen language."""
    break_files(tree, case)
    expect_problem(tree, case, lang)


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_missing_system_file(tree, lang):
    """A missing system.yaml is reported by name, without a line."""
    tree.path(SYSTEM).unlink()
    case = Case("missing", SYSTEM, "", "", "file_missing", None, "文件不存在", "file not found")
    expect_problem(tree, case, lang)


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_bad_centre_file_name(tree, lang):
    """A centre file name with capitals or dashes is rejected."""
    tree.write("prompts/centres/Guang-zhou.yaml", "automation_level: high\nauto_response_threshold: 0.9\n")
    case = Case("name", "prompts/centres/Guang-zhou.yaml", "", "", "bad_centre_name", "automation_level",
                "中心文件名“Guang-zhou”无效", "invalid centre file name 'Guang-zhou'")
    expect_problem(tree, case, lang)


def test_every_problem_listed(tree):
    """Problems in several files are all reported by one check, not only the first."""
    tree.edit(MESSAGES, "你系想问{choices}", "你系想问{choice}")
    tree.edit(SHANGHAI, "automation_level: high", "automation_level: max")
    tree.edit(SYSTEM, "  lost_card:", "  lost_cards:")
    with pytest.raises(DialogFileError) as caught:
        load_bundle(tree.prompts, tree.dialogs)
    files = {problem.path for problem in caught.value.problems}
    assert files == {str(tree.path(MESSAGES)), str(tree.path(SHANGHAI)), str(tree.path(SYSTEM))}


def test_shipped_files_valid(tree):
    """The shipped messages, system prompts and centre files pass validation."""
    bundle = load_bundle(tree.prompts, tree.dialogs)
    assert "fallback" in bundle.messages
    assert set(bundle.centres) == {"shanghai", "beijing", "shenzhen"}
