"""Loading dialogs/escalation.yaml and the validation errors designers see."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.escalation.conftest import POLICY_PATH
from voicebot.errors import KnowledgeBaseError
from voicebot.escalation import PolicyFileError, load_policy

VALID = """\
policy_version: test-1
centres:
  default: medium
  shanghai: low
  beijing: high
cues:
  fraud: {skill: fraud, priority: 1, action: handoff_now}
  location_mismatch: {skill: fraud, priority: 1, action: handoff_now}
  money_movement: {skill: card_services, priority: 2, action: handoff_now}
  human_request: {skill: card_services, priority: 2, action: handoff_now}
  emotion: {skill: complaints, priority: 3, action: handoff_now, min_score: 0.6}
  arousal: {skill: complaints, priority: 3, action: handoff_after, occurrences: 2}
  asr_failure: {skill: card_services, priority: 4, action: handoff_now}
sensitivity:
  low:
    emotion: {min_score: 0.8}
  high:
    arousal: {action: handoff_now}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "escalation.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _problems(tmp_path: Path, text: str, lang: str = "zh") -> str:
    with pytest.raises(PolicyFileError) as caught:
        load_policy(_write(tmp_path, text), lang=lang)
    return str(caught.value)


def test_repository_policy_loads():
    """The shipped file is valid and maps Shanghai to low and Beijing to high sensitivity."""
    settings = load_policy(POLICY_PATH)
    assert settings.policy_version
    assert settings.sensitivity_of("shanghai") == "low"
    assert settings.sensitivity_of("Beijing") == "high"
    assert settings.sensitivity_of("chengdu") == "medium"


def test_repository_policy_escalates_more_in_beijing():
    """Beijing's emotion threshold is below the default and Shanghai's above it."""
    settings = load_policy(POLICY_PATH)
    low, medium, high = (settings.levels[level]["emotion"].min_score for level in ("low", "medium", "high"))
    assert low > medium > high
    assert settings.levels["high"]["arousal"].action == "handoff_now"
    assert settings.levels["low"]["arousal"].action == "flag_only"
    for level in ("low", "medium", "high"):
        for cue in ("fraud", "location_mismatch", "money_movement", "human_request"):
            assert settings.levels[level][cue].action == "handoff_now", (level, cue)


def test_overrides_merge(tmp_path):
    """A level override changes only the keys it names; thresholds keep their defaults."""
    settings = load_policy(_write(tmp_path, VALID))
    assert settings.levels["low"]["emotion"].min_score == 0.8
    assert settings.levels["medium"]["emotion"].min_score == 0.6
    assert settings.levels["medium"]["arousal"].occurrences == 2
    assert settings.levels["high"]["arousal"].occurrences == 1
    assert settings.levels["medium"]["money_movement"].thresholds["large_amount_yuan"] == 10_000
    assert settings.levels["medium"]["asr_failure"].thresholds["consecutive_turns"] == 3


def test_error_is_knowledge_base_error(tmp_path):
    """Validation errors are KnowledgeBaseErrors, so start-up handles them like other dialog files."""
    with pytest.raises(KnowledgeBaseError):
        load_policy(_write(tmp_path, VALID.replace("action: handoff_now}", "action: now}", 1)))


def test_bad_action_names_line_and_choices(tmp_path):
    """An invalid action names the file, the line, the key and the valid values, in Chinese."""
    message = _problems(tmp_path, VALID.replace("action: handoff_now}", "action: now}", 1))
    assert "escalation.yaml 第 7 行" in message
    assert "cues.fraud.action" in message
    assert "handoff_now, handoff_after, flag_only" in message


def test_bad_action_in_english(tmp_path):
    """With lang="en" the same problem is reported in English."""
    message = _problems(tmp_path, VALID.replace("action: handoff_now}", "action: now}", 1), lang="en")
    assert "escalation.yaml, line 7" in message
    assert "invalid value 'now' for 'cues.fraud.action'" in message


def test_missing_occurrences(tmp_path):
    """handoff_after without occurrences is rejected with a request to add occurrences."""
    message = _problems(tmp_path, VALID.replace(", occurrences: 2}", "}"))
    assert "occurrences" in message
    assert "第 12 行" in message


def test_stray_occurrences(tmp_path):
    """occurrences with another action is rejected: remove it or switch to handoff_after."""
    text = VALID.replace("arousal: {action: handoff_now}", "arousal: {action: flag_only, occurrences: 3}")
    message = _problems(tmp_path, text, "en")
    assert "sensitivity.high.arousal" in message
    assert "remove 'occurrences'" in message


def test_every_problem_reported(tmp_path):
    """Several problems are reported together, one line each."""
    text = VALID.replace("priority: 4", "priority: 9").replace("shanghai: low", "shanghai: lowest")
    text = text.replace("  emotion: {skill", "  emotions: {skill")
    message = _problems(tmp_path, text, "en")
    lines = message.splitlines()
    assert any("'cues.asr_failure.priority' is 9, out of range; write a number within 1..5" in line for line in lines)
    assert any("invalid value 'lowest' for 'centres.shanghai'" in line for line in lines)
    assert any("unknown cue 'emotions'" in line for line in lines)
    assert any("no settings for cue 'emotion'" in line for line in lines)


def test_unknown_key_and_threshold(tmp_path):
    """A misspelt key or a threshold the cue does not have is named with the allowed ones."""
    text = VALID.replace("priority: 2, action: handoff_now}", "priority: 2, action: handoff_now, skil: x}", 1)
    text = text.replace("{min_score: 0.8}", "{thresholds: {large_amount_yuan: 5}}")
    message = _problems(tmp_path, text, "en")
    assert "unknown key 'cues.money_movement.skil'" in message
    assert "unknown key 'sensitivity.low.emotion.thresholds.large_amount_yuan'" in message


def test_not_a_number(tmp_path):
    """A text where a number belongs gets an example number."""
    message = _problems(tmp_path, VALID.replace("min_score: 0.6", "min_score: high"))
    assert "“cues.emotion.min_score”的值“high”不是数字" in message


def test_no_default_centre(tmp_path):
    """centres without default asks to add it."""
    message = _problems(tmp_path, VALID.replace("  default: medium\n", ""))
    assert "default: medium" in message


def test_empty_version(tmp_path):
    """An empty policy_version is rejected, because decisions carry it."""
    message = _problems(tmp_path, VALID.replace("policy_version: test-1", "policy_version:"), "en")
    assert "'policy_version' is empty" in message


def test_missing_file(tmp_path):
    """A missing file raises a KnowledgeBaseError naming the path."""
    with pytest.raises(KnowledgeBaseError, match="absent.yaml"):
        load_policy(tmp_path / "absent.yaml")


def test_yaml_syntax_error(tmp_path):
    """Invalid YAML names the line where the parser stopped."""
    with pytest.raises(KnowledgeBaseError, match="第 4 行：YAML 语法错误"):
        load_policy(_write(tmp_path, "policy_version: x\ncentres:\n  default: [medium\n"))
