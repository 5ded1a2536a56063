"""References from dialogs/flows/*.yaml to message keys and the template variables those messages use."""

from __future__ import annotations

import pytest

from voicebot.prompts import load_bundle
from voicebot.responder.messages import DialogFileError

from .conftest import PromptTree

pytestmark = pytest.mark.timeout(60)

FLOW = "dialogs/flows/lost_card.yaml"
FLOW_MESSAGES = "prompts/flows.yaml"


def problems(tree: PromptTree, lang: str = "zh") -> DialogFileError:
    with pytest.raises(DialogFileError) as caught:
        load_bundle(tree.prompts, tree.dialogs, lang=lang)
    return caught.value


def only(error: DialogFileError, code: str):
    found = [problem for problem in error.problems if problem.code == code]
    assert len(found) == 1, f"expected one {code}, got:\n{error}"
    return found[0]


def test_no_flows_folder(tree):
    """Without dialogs/flows there is nothing to cross-check."""
    bundle = load_bundle(tree.prompts, tree.dialogs)
    assert bundle.flow_references == ()


def test_empty_flow_files(tree):
    """An empty flows folder and an empty prompts/flows.yaml are accepted while flows are being written."""
    (tree.dialogs / "flows").mkdir()
    tree.write(FLOW_MESSAGES, "")
    bundle = load_bundle(tree.prompts, tree.dialogs)
    assert bundle.flow_references == ()


def test_flow_references_resolved(tree):
    """A flow's say, reprompt and confirm keys resolve to flows.yaml and messages.yaml keys."""
    tree.add_flow()
    bundle = load_bundle(tree.prompts, tree.dialogs)
    referenced = [(reference.field_name, reference.key) for reference in bundle.flow_references]
    assert referenced == [
        ("say", "ask_card_last4"),
        ("reprompt", "not_heard"),
        ("confirm", "confirm_card_last4"),
        ("say", "lost_card_done"),
    ]
    assert {reference.flow for reference in bundle.flow_references} == {"lost_card"}
    assert bundle.message_files["confirm_card_last4"] == str(tree.path(FLOW_MESSAGES))
    assert bundle.render("confirm_card_last4", "zh", card_last4="六二八八") == "您说的后四位是六二八八，对吗？"
    assert bundle.render("lost_card_done", "zh", digits="六二八八") == "尾号六二八八的卡已经挂失。"


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_unknown_message_key(tree, lang):
    """A flow naming a key no prompt file defines is reported in the flow file with a suggestion."""
    tree.add_flow()
    tree.edit(FLOW, "say: lost_card_done", "say: lost_card_dnoe")
    error = problems(tree, lang)
    problem = only(error, "unknown_message")
    assert problem.path == str(tree.path(FLOW))
    assert problem.line == tree.line_of(FLOW, "lost_card_dnoe")
    text = problem.describe(lang)
    assert "lost_card_done" in text  # the closest existing key is suggested
    if lang == "en":
        assert f"line {problem.line}" in text
        assert "refers to the message key 'lost_card_dnoe', which no prompt file defines" in text
    else:
        assert f"第 {problem.line} 行" in text
        assert "引用的消息键“lost_card_dnoe”在提示语文件里不存在" in text


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_text_instead_of_key(tree, lang):
    """Text written where a message key belongs is reported with where the text should go."""
    tree.add_flow()
    tree.edit(FLOW, "say: ask_card_last4", "say: 请告诉我后四位")
    problem = only(problems(tree, lang), "not_message_key")
    assert problem.line == tree.line_of(FLOW, "请告诉我后四位")
    expected = "must be a message key" if lang == "en" else "应该写消息键"
    assert expected in problem.describe(lang)


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_undeclared_slot_variable(tree, lang):
    """A message variable that the referring flow does not declare as a slot is reported."""
    tree.add_flow()
    tree.edit(FLOW_MESSAGES, "{card_last4}，对吗", "{card_number}，对吗")
    problem = only(problems(tree, lang), "undeclared_variable")
    assert problem.path == str(tree.path(FLOW_MESSAGES))
    assert problem.line == tree.line_of(FLOW_MESSAGES, "{card_number}")
    text = problem.describe(lang)
    assert "{card_number}" in text
    if lang == "en":
        assert "the flow 'lost_card' that refers to it declares no such slot" in text
    else:
        assert "流程“lost_card”没有声明这个槽位" in text
        assert "collect: card_number" in text


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_collect_needs_declared_slot(tree, lang):
    """A slot that a step collects must be declared under slots, as the flow engine requires."""
    tree.add_flow()
    tree.edit(FLOW, "slots:\n  card_last4: {type: digits, length: 4, dtmf: true}\n", "")
    problem = only(problems(tree, lang), "unknown_slot")
    assert problem.path == str(tree.path(FLOW))
    assert problem.line == tree.line_of(FLOW, "collect: card_last4")
    expected = "slot 'card_last4' is not declared under 'slots'" if lang == "en" else "槽位“card_last4”没有在 slots 里定义"
    assert expected in problem.describe(lang)


def test_unreferenced_message_variable(tree):
    """A flow message no flow uses may name only built-ins or slots some flow declares."""
    tree.add_flow()
    with tree.path(FLOW_MESSAGES).open("a", encoding="utf-8") as file:
        file.write("\nask_amount:\n  zh: 您要还{amount}吗？\n  yue: 你要还{amount}呀？\n")
    error = problems(tree)
    found = [problem for problem in error.problems if problem.code == "unknown_variable"]
    assert [problem.line for problem in found] == [
        tree.line_of(FLOW_MESSAGES, "您要还{amount}"),
        tree.line_of(FLOW_MESSAGES, "你要还{amount}"),
    ]
    assert "{card_last4}" in found[0].describe()  # the declared slots are listed as allowed


def test_flow_key_defined_twice(tree):
    """A flow message key that messages.yaml already defines is a duplicate."""
    tree.add_flow()
    with tree.path(FLOW_MESSAGES).open("a", encoding="utf-8") as file:
        file.write("\ngoodbye:\n  zh: 再见。\n  yue: 拜拜。\n")
    problem = only(problems(tree), "duplicate_message")
    assert problem.line == tree.line_of(FLOW_MESSAGES, "goodbye:")
    assert "prompts/messages.yaml:" in problem.describe()


def test_bad_flow_message_key(tree):
    """Flow message keys must be lowercase identifiers."""
    tree.add_flow()
    tree.edit(FLOW_MESSAGES, "lost_card_done:", "Lost-Card-Done:")
    error = problems(tree)
    assert only(error, "bad_message_key").line == tree.line_of(FLOW_MESSAGES, "Lost-Card-Done:")
    assert only(error, "unknown_message").path == str(tree.path(FLOW))


def test_flow_message_needs_both_languages(tree):
    """A flow message without a Cantonese text is reported like a missing messages.yaml text."""
    tree.add_flow()
    tree.edit(FLOW_MESSAGES, "  yue: 请话我知你张卡最后四个字。\n", "")
    problem = only(problems(tree), "missing_language")
    assert problem.line == tree.line_of(FLOW_MESSAGES, "请告诉我您卡号的后四位")


def test_broken_flow_yaml(tree):
    """A flow file that is not valid YAML is reported with its line."""
    tree.add_flow()
    tree.edit(FLOW, "    collect: card_last4", "\tcollect: card_last4")
    problem = only(problems(tree), "yaml_syntax")
    assert problem.path == str(tree.path(FLOW))
    assert problem.line == tree.line_of(FLOW, "collect: card_last4")


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_flow_engine_rules_checked(tree, lang):
    """A flow that the flow engine could not run, here a jump to a missing step, is rejected with its line."""
    tree.add_flow()
    tree.edit(FLOW, "    confirm: confirm_card_last4\n", "    confirm: confirm_card_last4\n    on_no: ask_again\n")
    problem = only(problems(tree, lang), "unknown_step")
    assert problem.path == str(tree.path(FLOW))
    assert problem.line == tree.line_of(FLOW, "on_no: ask_again")
    text = problem.describe(lang)
    if lang == "en":
        assert f"line {problem.line}, step 'confirm_last4': step 'ask_again' does not exist" in text
    else:
        assert f"第 {problem.line} 行，步骤“confirm_last4”：步骤“ask_again”不存在" in text


def test_centre_overrides_flow_message(tree):
    """A centre may override a flow message, using only the variables of the shared text."""
    tree.add_flow()
    tree.edit(
        "prompts/centres/beijing.yaml",
        "messages:\n",
        "messages:\n  confirm_card_last4:\n    zh: 跟您确认一下，卡号后四位是{card_last4}吗？\n",
    )
    bundle = load_bundle(tree.prompts, tree.dialogs)
    assert bundle.render("confirm_card_last4", "zh", "beijing", card_last4="六二八八") == "跟您确认一下，卡号后四位是六二八八吗？"
    assert bundle.render("confirm_card_last4", "zh", "shanghai", card_last4="六二八八") == "您说的后四位是六二八八，对吗？"


def test_dtmf_prompt_checked(tree):
    """A `dtmf_prompt` key is checked like `say`, because the flow engine speaks it too."""
    tree.add_flow()
    tree.edit(FLOW, "    collect: card_last4\n", "    collect: card_last4\n    dtmf_prompt: card_last4_keypad\n")
    problem = only(problems(tree), "unknown_message")
    assert problem.key == "dtmf_prompt"
    assert problem.line == tree.line_of(FLOW, "card_last4_keypad")


def test_engine_builtins_only(tree):
    """A variable the flow engine does not fill in, such as {minutes}, is rejected."""
    tree.add_flow()
    tree.edit(FLOW_MESSAGES, "尾号{digits}的卡", "尾号{digits}的卡{minutes}分钟内")
    problem = only(problems(tree), "undeclared_variable")
    assert problem.value == "{minutes}"
    assert "{digits}" in problem.describe()


def test_broken_prompt_file_no_cascade(tree):
    """A prompt file that cannot be parsed is reported once, not again as every flow reference."""
    tree.add_flow()
    tree.edit(FLOW_MESSAGES, "  zh: 尾号{digits}的卡", "  zh: {digits}尾号的卡")  # a plain value cannot start with {
    error = problems(tree)
    assert [problem.code for problem in error.problems] == ["yaml_syntax"]
    assert error.problems[0].path == str(tree.path(FLOW_MESSAGES))
