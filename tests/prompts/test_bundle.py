"""Rendering, centre settings and LLM prompts of a loaded bundle."""

from __future__ import annotations

import pytest

from voicebot.errors import KnowledgeBaseError
from voicebot.prompts import load_bundle
from voicebot.prompts.schema import INTENT_VARIABLES

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def bundle(tree):
    return load_bundle(tree.prompts, tree.dialogs)


def test_centre_settings_table(bundle):
    """The centre files carry each centre's automation level, threshold, sensitivity and extras."""
    rows = {
        name: (s.automation_level, s.auto_response_threshold, s.escalation_sensitivity, s.extras)
        for name, s in bundle.centres.items()
    }
    assert rows == {
        "shanghai": ("high", 0.85, "low", ()),
        "beijing": ("medium", 0.92, "high", ()),
        "shenzhen": ("high", 0.80, "medium", ("sentiment_analysis", "proactive_suggestions")),
    }
    assert bundle.centre_settings("shenzhen").sentiment_analysis
    assert bundle.centre_settings("shenzhen").proactive_suggestions
    assert not bundle.centre_settings("beijing").sentiment_analysis


def test_default_centre(bundle):
    """Calls without a centre get the default settings and the shared texts."""
    settings = bundle.centre_settings(None)
    assert settings == bundle.centre_settings("default")
    assert (settings.automation_level, settings.auto_response_threshold, settings.escalation_sensitivity) == (
        "medium", 0.80, "medium"
    )
    assert bundle.render("greeting", "zh") == bundle.render("greeting", "zh", centre="default")


def test_unknown_centre(bundle):
    """A centre without a file raises KnowledgeBaseError naming the file to add."""
    with pytest.raises(KnowledgeBaseError, match="centres/guangzhou.yaml"):
        bundle.centre_settings("guangzhou")
    with pytest.raises(KnowledgeBaseError, match="unknown centre 'guangzhou'"):
        bundle.render("greeting", "zh", centre="guangzhou")


def test_centre_override_applied(bundle):
    """A centre's own text replaces the shared one for that centre only."""
    assert "上海客服中心" in bundle.render("greeting", "zh", centre="shanghai")
    assert "北京客服中心" in bundle.render("greeting", "zh", centre="beijing")
    assert "中心" in bundle.render("greeting", "zh")
    assert "上海" not in bundle.render("greeting", "zh")
    assert bundle.render("transfer", "zh", centre="beijing").startswith("好的，为了更好地帮您处理")
    assert bundle.render("transfer", "zh", centre="shanghai") == bundle.render("transfer", "zh")


def test_override_language_fallback(bundle):
    """A Cantonese caller of a centre with only a Mandarin override hears the shared Cantonese text."""
    assert bundle.render("greeting", "yue", centre="shanghai") == bundle.render("greeting", "yue")
    assert "深圳" in bundle.render("greeting", "yue", centre="shenzhen")
    assert bundle.render("greeting", "en", centre="shanghai") == bundle.render("greeting", "zh", centre="shanghai")


def test_render_variables(bundle):
    """Template variables are filled in, and a missing one raises KnowledgeBaseError."""
    assert bundle.render("clarify", "zh", choices="年费还是账单") == "不好意思，我想确认一下，您是想问年费还是账单？"
    with pytest.raises(KnowledgeBaseError, match="'choices'"):
        bundle.render("clarify", "zh")
    with pytest.raises(KnowledgeBaseError, match="unknown message key 'farewell'"):
        bundle.render("farewell", "zh")


def test_messages_for_centre(bundle):
    """messages_for gives the FAQ responder a Messages object with the centre's overrides."""
    messages = bundle.messages_for("beijing")
    assert "北京客服中心" in messages.render("greeting", "zh")
    assert messages.render("fallback", "yue") == bundle.render("fallback", "yue")


def test_system_prompt_grounding(bundle):
    """Each language's system prompt ends with the grounding rule against invented fees, rates and dates."""
    for language, rule in (("zh", "不能编造"), ("yue", "唔可以作"), ("en", "Never invent")):
        prompt = bundle.system_prompt(language)
        assert prompt.startswith(bundle.system[language])
        assert prompt.endswith(bundle.grounding[language])
        assert rule in prompt


def test_intent_instructions(bundle):
    """Every intent has an instruction, and the variables it needs are filled in."""
    assert set(bundle.intents) == set(INTENT_VARIABLES)
    text = bundle.intent_instruction("faq", "yue", passages="普卡年费每年一百元。")
    assert text.endswith("普卡年费每年一百元。")
    summary = bundle.intent_instruction(
        "summary_for_rep", "zh", reasons="疑似盗刷", collected="卡号后四位", conversation="客户：……"
    )
    assert "疑似盗刷" in summary
    with pytest.raises(KnowledgeBaseError, match="'passages'"):
        bundle.intent_instruction("free_form", "zh")
    with pytest.raises(KnowledgeBaseError, match="unknown intent 'refund'"):
        bundle.intent_instruction("refund", "zh")


def test_bundle_immutable(bundle):
    """A bundle's texts and settings cannot be changed in place."""
    with pytest.raises(TypeError):
        bundle.messages["greeting"]["zh"] = "x"  # type: ignore[index]
    with pytest.raises(TypeError):
        bundle.centres["shanghai"] = bundle.centres["beijing"]  # type: ignore[index]
    with pytest.raises(AttributeError):
        bundle.digest = "0"  # type: ignore[misc]


def test_version_from_content(tree, bundle):
    """The digest depends only on the files' contents, and any edit changes it."""
    assert load_bundle(tree.prompts, tree.dialogs).digest == bundle.digest
    assert bundle.version == f"v0-{bundle.digest[:12]}"
    tree.edit("prompts/messages.yaml", "请稍等，我正在为您查询。", "请稍等，我马上为您查询。")
    assert load_bundle(tree.prompts, tree.dialogs).digest != bundle.digest
