"""EscalationPolicy.evaluate: decisions, occurrences across turns, partial turns and the log."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from tests.escalation.conftest import POLICY_PATH
from voicebot.escalation import EscalationPolicy
from voicebot.responder.base import Reply, ReplyKind

SAMPLE_RATE_HZ = 16_000


def _tone(f0_hz: float, amplitude: float) -> np.ndarray:
    t = np.arange(SAMPLE_RATE_HZ) / SAMPLE_RATE_HZ
    return amplitude * (np.sin(2 * np.pi * f0_hz * t) + 0.5 * np.sin(4 * np.pi * f0_hz * t))


def test_fraud_goes_to_fraud_skill(policy):
    """A location-mismatch fraud report hands over at once to the fraud skill, priority 1."""
    state = policy.new_call(call_id="call-1", centre="shanghai")
    decision = policy.evaluate("我的卡在迪败被刷了一笔 可是我人在上海 是不是被刷了呢?", partial=False, audio=None, call_state=state)
    assert decision.escalate
    assert decision.skill == "fraud"
    assert decision.priority == 1
    assert decision.policy_version == policy.policy_version
    assert decision.sensitivity == "low"
    assert set(decision.cues) == {"fraud", "location_mismatch"}
    assert all(reason.triggered for reason in decision.reasons)


def test_most_urgent_skill_wins(policy):
    """With anger and a fraud report in one turn, the fraud skill gets the call."""
    state = policy.new_call(call_id="call-2")
    decision = policy.evaluate("气死我了 有一笔交易不是我本人操作的", partial=False, audio=None, call_state=state)
    assert decision.skill == "fraud"
    assert decision.reasons[0].cue == "fraud"
    assert {reason.cue for reason in decision.reasons} == {"fraud", "emotion"}


def test_no_cue_no_handoff(policy):
    """An FAQ question gives no reasons, no skill and no priority."""
    state = policy.new_call(call_id="call-3")
    decision = policy.evaluate("信用卡年费是多少", partial=False, audio=None, call_state=state)
    assert not decision.escalate
    assert decision.reasons == ()
    assert decision.skill is None
    assert decision.priority is None
    assert decision.handoff_reason is None


def test_handoff_reason_for_reply(policy):
    """handoff_reason lists the triggering rule ids and fits Reply.handoff_reason."""
    state = policy.new_call(call_id="call-4")
    decision = policy.evaluate("我要转员工", partial=False, audio=None, call_state=state)
    reply = Reply(text="", kind=ReplyKind.HANDOFF, confidence=1.0, handoff_reason=decision.handoff_reason)
    assert reply.handoff_reason == "human.agent_request"


def test_below_min_score_is_flag_only(policy):
    """Mild annoyance is flagged in Shanghai (low) and hands over at the default centre."""
    shanghai = policy.new_call(call_id="call-5", centre="shanghai")
    decision = policy.evaluate("真让人无语", partial=False, audio=None, call_state=shanghai)
    assert not decision.escalate
    assert [(reason.rule_id, reason.action) for reason in decision.reasons] == [("emotion.annoyance", "flag_only")]

    default = policy.new_call(call_id="call-6", centre="default")
    assert policy.evaluate("真让人无语", partial=False, audio=None, call_state=default).escalate


def test_unknown_centre_uses_default(policy, caplog):
    """A centre not in the file gets the default sensitivity and a warning naming it."""
    with caplog.at_level(logging.WARNING, logger="voicebot.escalation.policy"):
        state = policy.new_call(call_id="call-7", centre="chengdu")
    assert state.sensitivity == "medium"
    assert "chengdu" in caplog.text


def test_sensitivity_override(policy):
    """An explicit sensitivity replaces the centre's level; an invalid one raises naming it."""
    state = policy.new_call(call_id="call-17", centre="shanghai", sensitivity="high")
    assert state.sensitivity == "high"
    assert policy.evaluate("明天就要还款了", partial=False, audio=None, call_state=state).escalate
    with pytest.raises(ValueError, match="'extreme'"):
        policy.new_call(call_id="call-18", sensitivity="extreme")


def test_partial_turn_not_counted(policy):
    """A partial transcript may hand over, but only the final turn counts an occurrence."""
    state = policy.new_call(call_id="call-8")
    partial = policy.evaluate("我要转人", partial=True, audio=None, call_state=state)
    assert not partial.escalate
    partial = policy.evaluate("我要转人工", partial=True, audio=None, call_state=state)
    assert partial.escalate
    assert partial.partial
    assert state.occurrences["human_request"] == 0
    final = policy.evaluate("我要转人工", partial=False, audio=None, call_state=state)
    assert final.escalate
    assert state.occurrences["human_request"] == 1


def test_asr_failure_by_sensitivity(policy):
    """Two unusable turns hand over in Beijing; the default centre waits for a third."""
    beijing = policy.new_call(call_id="call-9", centre="beijing")
    default = policy.new_call(call_id="call-10", centre="default")
    for state in (beijing, default):
        state.asr_failure.add_turn(confidence=0.2)
        state.asr_failure.add_turn(confidence=0.3, failed=True)
    assert policy.evaluate("嗯", partial=False, audio=None, call_state=beijing).escalate
    decision = policy.evaluate("嗯", partial=False, audio=None, call_state=default)
    assert not decision.escalate
    default.asr_failure.add_turn(confidence=0.1)
    decision = policy.evaluate("", partial=False, audio=None, call_state=default)
    assert decision.escalate
    assert decision.handoff_reason == "asr.repeated_failure"
    assert decision.skill == "card_services"


def test_arousal_handoff_after_two_turns(policy):
    """At the default centre arousal hands over on its second aroused turn, in Beijing on its first."""
    default = policy.new_call(call_id="call-11", centre="default")
    beijing = policy.new_call(call_id="call-12", centre="beijing")
    calm, aroused = _tone(150.0, 0.05), _tone(210.0, 0.2)
    for state in (default, beijing):
        for _ in range(2):
            assert not policy.evaluate("好的", partial=False, audio=calm, call_state=state).escalate

    first = policy.evaluate("好的", partial=False, audio=aroused, call_state=default)
    assert not first.escalate
    assert [(r.rule_id, r.action, r.occurrences) for r in first.reasons] == [
        ("arousal.louder_and_higher", "handoff_after", 1)
    ]
    second = policy.evaluate("好的", partial=False, audio=aroused, call_state=default)
    assert second.escalate
    assert second.skill == "complaints"

    assert policy.evaluate("好的", partial=False, audio=aroused, call_state=beijing).escalate


def test_shanghai_arousal_flag_only(policy):
    """In Shanghai (low) an aroused voice is flagged and never hands over."""
    state = policy.new_call(call_id="call-13", centre="shanghai")
    for _ in range(2):
        policy.evaluate("好的", partial=False, audio=_tone(150.0, 0.05), call_state=state)
    for _ in range(3):
        decision = policy.evaluate("好的", partial=False, audio=_tone(210.0, 0.2), call_state=state)
        assert not decision.escalate
        assert decision.reasons[0].action == "flag_only"


def test_log_line_has_rules_not_words(policy, caplog):
    """The decision log names rule ids, version and call, and never the caller's words."""
    caller_words = "我要给我儿子转账五万块钱"
    state = policy.new_call(call_id="call-14")
    with caplog.at_level(logging.INFO, logger="voicebot.escalation.policy"):
        policy.evaluate(caller_words, partial=False, audio=None, call_state=state)
    [record] = [r for r in caplog.records if r.name == "voicebot.escalation.policy"]
    message = record.getMessage()
    assert "call=call-14" in message
    assert "escalate=True" in message
    assert "money.transfer_request(0.80,handoff_now,1,fired)" in message
    assert f"policy_version={policy.policy_version}" in message
    assert record.call_id == "call-14"
    for fragment in ("儿子", "转账", "五万", "块钱"):
        assert fragment not in message


def test_reasons_keep_words_for_the_rep(policy):
    """The decision's reasons carry the matched words and corrections for the rep's screen."""
    state = policy.new_call(call_id="call-15")
    decision = policy.evaluate("我的卡被倒刷了", partial=False, audio=None, call_state=state)
    [reason] = decision.reasons
    assert reason.matched == "倒刷"
    assert reason.corrections[0].term == "盗刷"


def test_policy_from_file_in_english():
    """from_file accepts lang and loads the shipped file."""
    assert EscalationPolicy.from_file(POLICY_PATH, lang="en").policy_version


@pytest.mark.parametrize("centre", ["default", "shanghai", "beijing", "shenzhen"])
def test_fraud_money_person_hand_over_everywhere(policy, centre):
    """Fraud, money movement and a request for a person hand over at every centre."""
    for text in ("有意比较意不是我本人操作的", "把信用卡里的前转到我的储蓄卡", "我要转员工"):
        state = policy.new_call(call_id="call-16", centre=centre)
        assert policy.evaluate(text, partial=False, audio=None, call_state=state).escalate, (centre, text)
