"""Loading and validation of the FAQ knowledge base file."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from voicebot.errors import KnowledgeBaseError
from voicebot.responder.faq import load_knowledge_base
from voicebot.responder.messages import DialogFileError

REQUIRED_TOPICS = (
    "annual_fee",
    "bill_inquiry",
    "minimum_payment",
    "card_activation",
    "points_redemption",
    "installment_fee",
    "credit_limit_increase",
    "late_payment",
    "lost_card",
    "address_change",
)

# Markers of written Cantonese; each yue answer should use at least one.
CANTONESE_MARKERS = set("嘅唔系咗啲嚟喺冇佢哋咩俾嘢")

VALID_ENTRY = """\
  - id: annual_fee
    title: 年费
    questions:
      - 年费多少
    answer:
      zh: 普卡年费一百元。
      yue: 普卡年费一百蚊。
    policy_version: sample-1
    approved_by: 审批人
"""


def write_faq(tmp_path: Path, entries: str) -> Path:
    path = tmp_path / "faq.yaml"
    path.write_text("version: 1\nentries:\n" + textwrap.dedent(entries), encoding="utf-8")
    return path


def test_shipped_file_loads(knowledge_base):
    """The repository's dialogs/faq.yaml passes validation and has at least 24 entries."""
    assert len(knowledge_base.entries) >= 24
    for topic in REQUIRED_TOPICS:
        assert topic in knowledge_base.ids


def test_shipped_entries_complete(knowledge_base):
    """Every shipped entry has questions, both answers, a policy version and an approver."""
    for entry in knowledge_base.entries:
        assert len(entry.questions) >= 3, entry.id
        assert entry.answers["zh"], entry.id
        assert entry.answers["yue"], entry.id
        assert entry.policy_version, entry.id
        assert entry.approved_by, entry.id


def test_shipped_answers_speakable(knowledge_base):
    """Shipped answers contain no ASCII digits or symbols, and yue answers read as Cantonese."""
    for entry in knowledge_base.entries:
        for language, text in entry.answers.items():
            assert not re.search(r"[0-9%$¥]", text), (entry.id, language)
        assert CANTONESE_MARKERS & set(entry.answers["yue"]), entry.id


def test_valid_minimal_file(tmp_path):
    """A file with one complete entry loads, and its line number is recorded."""
    knowledge_base = load_knowledge_base(write_faq(tmp_path, VALID_ENTRY))
    entry = knowledge_base.get("annual_fee")
    assert entry.line == 3
    assert entry.answer("yue") == "普卡年费一百蚊。"
    assert entry.answer("en") == "普卡年费一百元。"


def test_missing_language_named(tmp_path):
    """An answer without yue names file, line, entry and the fix, in Chinese and in English."""
    path = write_faq(tmp_path, VALID_ENTRY.replace("      yue: 普卡年费一百蚊。\n", ""))
    with pytest.raises(KnowledgeBaseError) as zh_error:
        load_knowledge_base(path)
    message = str(zh_error.value)
    assert str(path) in message
    assert "第 8 行" in message
    assert "annual_fee" in message
    assert "缺少 yue 语言的文本" in message

    with pytest.raises(KnowledgeBaseError) as en_error:
        load_knowledge_base(path, lang="en")
    message = str(en_error.value)
    assert f"{path}, line 8" in message
    assert "entry 'annual_fee'" in message
    assert "has no text for language yue; add 'yue: ...'" in message


def test_duplicate_id_named(tmp_path):
    """A repeated id is reported on its second line, naming the line of the first."""
    second = VALID_ENTRY.replace("年费多少", "年费怎么收")
    path = write_faq(tmp_path, VALID_ENTRY + second)
    with pytest.raises(DialogFileError) as error:
        load_knowledge_base(path)
    assert len(error.value.problems) == 1
    problem = error.value.problems[0]
    assert problem.code == "duplicate_id"
    assert problem.line == 12
    assert "第 12 行" in str(error.value)
    assert "第一次出现在第 3 行" in str(error.value)

    with pytest.raises(DialogFileError) as en_error:
        load_knowledge_base(path, lang="en")
    assert "duplicate entry id 'annual_fee', first used on line 3" in str(en_error.value)


def test_empty_questions_named(tmp_path):
    """An empty questions list names the entry and asks for at least one question."""
    path = write_faq(tmp_path, VALID_ENTRY.replace("    questions:\n      - 年费多少\n", "    questions: []\n"))
    with pytest.raises(DialogFileError) as error:
        load_knowledge_base(path)
    assert error.value.problems[0].code == "empty_list"
    assert "第 5 行" in str(error.value)
    assert "“questions”是空列表，请至少写 1 条" in str(error.value)

    with pytest.raises(DialogFileError) as en_error:
        load_knowledge_base(path, lang="en")
    assert "'questions' is an empty list; write at least 1 items" in str(en_error.value)


def test_unknown_key_named(tmp_path):
    """A misspelt key is reported with its line and the list of allowed keys."""
    path = write_faq(tmp_path, VALID_ENTRY.replace("approved_by:", "aproved_by:"))
    with pytest.raises(DialogFileError) as error:
        load_knowledge_base(path)
    codes = [problem.code for problem in error.value.problems]
    assert codes == ["unknown_key", "missing_key"]
    message = str(error.value)
    assert "第 11 行，条目“annual_fee”：未知字段“aproved_by”" in message
    assert "缺少字段“approved_by”" in message

    with pytest.raises(DialogFileError) as en_error:
        load_knowledge_base(path, lang="en")
    assert "line 11, entry 'annual_fee': unknown key 'aproved_by'" in str(en_error.value)


def test_unspeakable_symbol_rejected(tmp_path):
    """A percent sign in an answer is rejected with the advice to spell it out."""
    path = write_faq(tmp_path, VALID_ENTRY.replace("普卡年费一百元。", "手续费1%。"))
    with pytest.raises(DialogFileError) as error:
        load_knowledge_base(path)
    assert error.value.problems[0].code == "unspeakable"
    assert "百分之十" in str(error.value)


def test_duplicate_question_rejected(tmp_path):
    """The same example question under two entries is reported."""
    second = VALID_ENTRY.replace("id: annual_fee", "id: fee_waiver")
    path = write_faq(tmp_path, VALID_ENTRY + second)
    with pytest.raises(DialogFileError) as error:
        load_knowledge_base(path)
    assert [problem.code for problem in error.value.problems] == ["duplicate_question"]
    assert error.value.problems[0].entry_id == "fee_waiver"


def test_bad_id_rejected(tmp_path):
    """An id with capitals or spaces is rejected."""
    path = write_faq(tmp_path, VALID_ENTRY.replace("id: annual_fee", "id: Annual Fee"))
    with pytest.raises(DialogFileError) as error:
        load_knowledge_base(path)
    assert error.value.problems[0].code == "bad_id"


def test_yaml_syntax_error_has_line(tmp_path):
    """Broken YAML is reported with the line of the syntax error."""
    path = write_faq(tmp_path, VALID_ENTRY + "  - id: [unclosed\n")
    with pytest.raises(DialogFileError) as error:
        load_knowledge_base(path)
    assert error.value.problems[0].code == "yaml_syntax"
    assert error.value.problems[0].line is not None


def test_missing_file_named(tmp_path):
    """A path that does not exist raises KnowledgeBaseError naming the path."""
    path = tmp_path / "absent.yaml"
    with pytest.raises(KnowledgeBaseError) as error:
        load_knowledge_base(path, lang="en")
    assert str(path) in str(error.value)
    assert "file not found" in str(error.value)


def test_all_problems_listed(tmp_path):
    """Several broken entries produce one problem each in a single error."""
    broken = VALID_ENTRY.replace("      yue: 普卡年费一百蚊。\n", "")
    other = VALID_ENTRY.replace("id: annual_fee", "id: late_payment").replace("年费多少", "逾期").replace(
        "    approved_by: 审批人\n", ""
    )
    path = write_faq(tmp_path, broken + other)
    with pytest.raises(DialogFileError) as error:
        load_knowledge_base(path)
    assert [problem.entry_id for problem in error.value.problems] == ["annual_fee", "late_payment"]
    assert len(str(error.value).splitlines()) == 2
