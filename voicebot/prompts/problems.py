"""Validation problems of the prompt files, on top of the shared dialog-file problems.

`PromptProblem` is a `ValidationProblem` with extra problem codes for what only the prompt
set can get wrong: references between flows and prompt files, template variables that a
flow does not declare, and centre settings. Codes that the shared table in
voicebot.responder.messages already has (unknown_key, missing_language, ...) keep their
shared wording.
"""

from __future__ import annotations

from dataclasses import dataclass

from voicebot.prompts.schema import BUILTIN_VARIABLES
from voicebot.responder.messages import ValidationProblem

# Problem templates: (Simplified Chinese, English). `{key}`, `{value}` and `{expected}`
# are filled in per problem.
_PROMPT_PROBLEMS: dict[str, tuple[str, str]] = {
    "unknown_message": (
        "“{key}”引用的消息键“{value}”在提示语文件里不存在，请改成已有的键（例如 {expected}），"
        "或者在 prompts/flows.yaml 里添加“{value}:”并写上 zh 和 yue 文本",
        "'{key}' refers to the message key '{value}', which no prompt file defines; use an existing key "
        "(e.g. {expected}) or add '{value}:' with zh and yue texts to prompts/flows.yaml",
    ),
    "not_message_key": (
        "“{key}”应该写消息键（例如 ask_card_digits），不能直接写文字或列表；请把文字放进 prompts/flows.yaml，"
        "这里写它的键",
        "'{key}' must be a message key (e.g. ask_card_digits), not text or a list; put the text into "
        "prompts/flows.yaml and write its key here",
    ),
    "undeclared_variable": (
        "“{key}”的文本使用了模板变量 {value}，但引用它的流程“{expected}”没有声明这个槽位；"
        "请在流程里添加“collect: {bare}”或把它写进 slots，或改用内置变量 {builtins}",
        "the text of '{key}' uses the template variable {value}, but the flow '{expected}' that refers to it "
        "declares no such slot; add 'collect: {bare}' or list it under slots in that flow, or use a built-in "
        "variable: {builtins}",
    ),
    "duplicate_message": (
        "消息键“{key}”已经在 {expected} 中定义，同一个键只能定义一次，请改名或删除其中一处",
        "message key '{key}' is already defined in {expected}; define each key once, rename or remove one",
    ),
    "bad_message_key": (
        "消息键“{key}”无效，只能使用小写英文字母、数字和下划线，并以字母开头，例如 ask_card_digits",
        "invalid message key '{key}'; use lowercase letters, digits and underscores, starting with a letter, "
        "e.g. ask_card_digits",
    ),
    "bad_choice": (
        "“{key}”的值“{value}”无效，可选的值是：{expected}",
        "invalid value '{value}' for '{key}'; choose one of: {expected}",
    ),
    "not_number": (
        "“{key}”应该是一个数字，例如 0.85，现在写的是“{value}”",
        "'{key}' must be a number such as 0.85, got '{value}'",
    ),
    "out_of_range": (
        "“{key}”的值 {value} 超出范围，请写 {expected} 范围内的数字",
        "'{key}' is {value}, which is out of range; write a number in the range {expected}",
    ),
    "unknown_override": (
        "中心只能覆盖已有的消息，消息键“{value}”不存在；请检查拼写，可用的键例如：{expected}",
        "a centre can override only existing messages, and the message key '{value}' does not exist; "
        "check the spelling, existing keys include: {expected}",
    ),
    "bad_centre_name": (
        "中心文件名“{value}”无效，文件名只能使用小写英文字母、数字和下划线，例如 shanghai.yaml",
        "invalid centre file name '{value}'; use lowercase letters, digits and underscores, e.g. shanghai.yaml",
    ),
    "centre_mismatch": (
        "“centre”写的是“{value}”，但文件名是 {expected}.yaml；请把 centre 改成 {expected}，或者把文件改名",
        "'centre' is '{value}' but the file is {expected}.yaml; set centre to {expected} or rename the file",
    ),
    "duplicate_extra": (
        "extras 里的“{value}”重复了，请只写一次",
        "'{value}' is listed twice under extras; list it once",
    ),
}


@dataclass(frozen=True)
class PromptProblem(ValidationProblem):
    """A problem in a prompt, centre or flow file; `entry_id` names the flow or centre it is in."""

    def describe(self, lang: str = "zh") -> str:
        """Format the problem as one line in Simplified Chinese (`zh`) or English (`en`)."""
        templates = _PROMPT_PROBLEMS.get(self.code)
        if templates is None:
            return super().describe(lang)
        english = lang == "en"
        builtins = ", ".join("{" + name + "}" for name in sorted(BUILTIN_VARIABLES))
        problem = (templates[1] if english else templates[0]).format(
            key=self.key,
            value=self.value,
            expected=self.expected,
            bare=self.value.strip("{}"),
            builtins=builtins,
        )
        # Location wording follows ValidationProblem.describe, so every line of a report
        # reads the same whichever table its code comes from.
        if english:
            where = self.path if self.line is None else f"{self.path}, line {self.line}"
            entry = f", entry '{self.entry_id}'" if self.entry_id else ""
            return f"{where}{entry}: {problem}."
        where = self.path if self.line is None else f"{self.path} 第 {self.line} 行"
        entry = f"，条目“{self.entry_id}”" if self.entry_id else ""
        return f"{where}{entry}：{problem}。"
