"""Flow files: the shipped flows load, and broken files give errors with file, line and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from voicebot.dialog.flows import BUILTIN_VARIABLES, FlowFileError, load_flow_messages, load_flows

REPO_ROOT = Path(__file__).resolve().parents[2]
FLOWS_DIR = REPO_ROOT / "dialogs" / "flows"
MESSAGES = REPO_ROOT / "prompts" / "flows.yaml"


def test_shipped_flows_load() -> None:
    """The five shipped flows load and each has one trigger intent."""
    flows = load_flows(FLOWS_DIR, MESSAGES)
    assert set(flows.flows) == {"lost_card", "address_change", "card_activation", "bill_inquiry",
                                "credit_limit_increase"}
    assert flows.for_intent("lost_card") is flows.flows["lost_card"]


def test_message_contract() -> None:
    """Every message a flow uses exists in zh and yue, with only slot or built-in variables."""
    flows = load_flows(FLOWS_DIR, MESSAGES)
    messages, variables, problems = load_flow_messages(MESSAGES)
    assert problems == []
    for flow in flows.flows.values():
        for key in flow.message_keys():
            assert key in variables, key
            assert variables[key] <= set(flow.slots) | set(BUILTIN_VARIABLES), key
            for language in ("zh", "yue"):
                assert messages.render(key, language, **{name: "x" for name in variables[key]})


def _write(directory: Path, text: str) -> None:
    directory.mkdir(exist_ok=True)
    (directory / "broken.yaml").write_text(text, encoding="utf-8")


BROKEN = """\
id: broken
triggers: [lost_card]
slots:
  card_last4: {type: digits, length: 4}
steps:
  - id: ask
    say: no_such_message
    collect: card_last4
  - id: act
    action: freeze_card
    args: {card_id: card_last4}
    on_fail: nowhere
"""


def test_errors_name_file_line_and_fix_in_chinese(tmp_path: Path) -> None:
    """Errors are in Simplified Chinese by default and name the file, line, step and fix."""
    _write(tmp_path / "flows", BROKEN)
    with pytest.raises(FlowFileError) as raised:
        load_flows(tmp_path / "flows", MESSAGES)
    message = str(raised.value)
    assert "broken.yaml 第 7 行，步骤“ask”" in message
    assert "提示语“no_such_message”在提示语文件里不存在" in message
    assert "步骤“nowhere”不存在" in message


def test_errors_in_english(tmp_path: Path) -> None:
    """With lang="en" the same problems are reported in English."""
    _write(tmp_path / "flows", BROKEN)
    with pytest.raises(FlowFileError) as raised:
        load_flows(tmp_path / "flows", MESSAGES, lang="en")
    message = str(raised.value)
    assert "line 7, step 'ask'" in message
    assert "message key 'no_such_message' is not in the prompt files" in message


def test_unknown_variable_rejected(tmp_path: Path) -> None:
    """A message variable that is neither a slot nor a built-in is an error."""
    _write(tmp_path / "flows", """\
id: bad_vars
triggers: [lost_card]
slots:
  card_last4: {type: digits, length: 4}
steps:
  - id: done
    say: address_done
    end: true
""")
    with pytest.raises(FlowFileError, match="new_address"):
        load_flows(tmp_path / "flows", MESSAGES)


def test_yaml_syntax_error(tmp_path: Path) -> None:
    """Invalid YAML is reported with its line."""
    _write(tmp_path / "flows", "id: x\nsteps: [\n")
    with pytest.raises(FlowFileError, match="YAML"):
        load_flows(tmp_path / "flows", MESSAGES)
