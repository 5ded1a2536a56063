"""Loading, validation and rendering of prompts/messages.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from voicebot.errors import KnowledgeBaseError
from voicebot.responder.messages import MESSAGE_VARIABLES, DialogFileError, load_messages

from faq_cases import MESSAGES_PATH


def copy_messages(tmp_path: Path, old: str, new: str) -> Path:
    """Write a copy of the shipped messages file with one text replaced."""
    text = MESSAGES_PATH.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "messages.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def test_shipped_messages_load(messages):
    """Every message key has a Mandarin and a Cantonese text."""
    assert set(messages.keys()) == set(MESSAGE_VARIABLES)
    for key in MESSAGE_VARIABLES:
        assert messages.render(key, "zh", choices="甲还是乙", position="3")
        assert messages.render(key, "yue", choices="甲定系乙", position="3")


def test_clarify_renders_choices(messages):
    """The clarify message puts the candidate titles into the sentence."""
    text = messages.render("clarify", "zh", choices="年费和免年费还是查询账单")
    assert "年费和免年费还是查询账单" in text
    assert "{" not in text


def test_cantonese_differs(messages):
    """Cantonese texts are Cantonese wording, not a copy of the Mandarin text."""
    for key in MESSAGE_VARIABLES:
        assert messages.render(key, "zh", choices="x", position="1") != messages.render(key, "yue", choices="x", position="1")


def test_english_falls_back(messages):
    """A language without its own text gets the Mandarin text."""
    assert messages.render("greeting", "en") == messages.render("greeting", "zh")


def test_render_unknown_key(messages):
    """Rendering a key that does not exist raises KnowledgeBaseError listing the keys."""
    with pytest.raises(KnowledgeBaseError, match="unknown message key 'farewell'"):
        messages.render("farewell", "zh")


def test_render_missing_variable(messages):
    """Rendering clarify without choices raises KnowledgeBaseError naming the variable."""
    with pytest.raises(KnowledgeBaseError, match="'choices'"):
        messages.render("clarify", "zh")


def test_missing_choices_variable(tmp_path):
    """A clarify text without {choices} is reported with its line, in Chinese and English."""
    path = copy_messages(tmp_path, "您是想问{choices}？", "您是想问哪一个？")
    with pytest.raises(DialogFileError) as error:
        load_messages(path)
    assert error.value.problems[0].code == "missing_variable"
    assert error.value.problems[0].line == 11
    assert f"{path} 第 11 行" in str(error.value)
    assert "必须包含模板变量 {choices}" in str(error.value)

    with pytest.raises(DialogFileError) as en_error:
        load_messages(path, lang="en")
    assert "must contain the template variable {choices}" in str(en_error.value)


def test_unknown_variable_named(tmp_path):
    """A misspelt template variable is reported as unknown."""
    path = copy_messages(tmp_path, "你系想问{choices}？", "你系想问{choice}？")
    with pytest.raises(DialogFileError) as error:
        load_messages(path, lang="en")
    codes = [problem.code for problem in error.value.problems]
    assert codes == ["unknown_variable", "missing_variable"]
    assert "unknown template variable {choice}" in str(error.value)


def test_missing_message_key(tmp_path):
    """Removing the hold message is reported as a missing key."""
    text = MESSAGES_PATH.read_text(encoding="utf-8")
    path = tmp_path / "messages.yaml"
    path.write_text(text.split("hold:")[0], encoding="utf-8")
    with pytest.raises(DialogFileError) as error:
        load_messages(path)
    assert [problem.code for problem in error.value.problems] == ["missing_key"]
    assert "缺少字段“hold”" in str(error.value)


def test_unknown_message_key(tmp_path):
    """A key that the dialog does not use is reported with the allowed keys."""
    path = copy_messages(tmp_path, "greeting:", "greting:")
    with pytest.raises(DialogFileError) as error:
        load_messages(path, lang="en")
    assert "unknown key 'greting'" in str(error.value)
    assert "allowed keys are: greeting" in str(error.value)


def test_missing_cantonese_text(tmp_path):
    """A message without a yue text is reported."""
    path = copy_messages(tmp_path, "  yue: 请等一等，我帮你查紧。\n", "")
    with pytest.raises(DialogFileError) as error:
        load_messages(path)
    assert error.value.problems[0].code == "missing_language"
    assert "“hold”缺少 yue 语言的文本" in str(error.value)
