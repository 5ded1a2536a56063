"""The labelled set: recall on fraud and money movement, precision overall, every case by itself."""

from __future__ import annotations

import csv
from collections import Counter

import pytest

from tests.escalation.conftest import load_cases
from voicebot.escalation import TEXT_CUES, EscalationPolicy

MIN_CASES = 80
MIN_PRECISION = 0.9


def _decide(policy: EscalationPolicy, case: dict, call_id: str):
    state = policy.new_call(call_id=call_id, centre=case["centre"])
    return policy.evaluate(case["text"], partial=False, audio=None, call_state=state)


def _counts(policy: EscalationPolicy, cases: list[dict]) -> tuple[Counter, Counter, Counter]:
    """Return true positives, false positives and false negatives per cue."""
    true_pos, false_pos, false_neg = Counter(), Counter(), Counter()
    for index, case in enumerate(cases):
        found = set(_decide(policy, case, f"case-{index}").cues)
        expected = set(case["cues"])
        for cue in TEXT_CUES:
            if cue in found and cue in expected:
                true_pos[cue] += 1
            elif cue in found:
                false_pos[cue] += 1
            elif cue in expected:
                false_neg[cue] += 1
    return true_pos, false_pos, false_neg


def test_cases_cover_every_kind(cases):
    """The set has at least 80 cases from clips, transcripts, variants, Cantonese and negatives."""
    assert len(cases) >= MIN_CASES
    sources = Counter(case["source"] for case in cases)
    for source in ("clip", "asr", "variant", "cantonese", "negative"):
        assert sources[source] >= 8, f"only {sources[source]} cases of source {source}"
    centres = {case["centre"] for case in cases}
    assert {"default", "shanghai", "beijing"} <= centres
    for case in cases:
        assert set(case["cues"]) <= set(TEXT_CUES), case


def test_cases_hold_every_caller_clip(cases, callers_folder):
    """Every caller clip's true text is a case, with a handoff exactly where the manifest expects one."""
    by_text = {case["text"]: case for case in cases if case["source"] == "clip"}
    with open(callers_folder / "MANIFEST.tsv", encoding="utf-8") as manifest:
        rows = list(csv.DictReader(manifest, delimiter="\t"))
    assert len(rows) == 22
    for row in rows:
        assert row["text"] in by_text, f"clip {row['file']} has no case"
        case = by_text[row["text"]]
        assert case["escalate"] == (row["expected"] == "handoff"), row["file"]
        if row["expected"] == "handoff":
            assert row["label"] in case["cues"], row["file"]


def test_recall_fraud_and_money(policy, cases):
    """Every fraud and money-movement case is detected."""
    true_pos, _, false_neg = _counts(policy, cases)
    for cue in ("fraud", "money_movement", "location_mismatch"):
        assert true_pos[cue] > 0
        assert false_neg[cue] == 0, f"{cue} missed in {false_neg[cue]} cases"


def test_precision_overall(policy, cases):
    """Cue detections and handoff decisions are each at least 90 % precise."""
    true_pos, false_pos, _ = _counts(policy, cases)
    detected = sum(true_pos.values()) + sum(false_pos.values())
    assert sum(true_pos.values()) / detected >= MIN_PRECISION

    decisions = [(_decide(policy, case, f"p-{i}").escalate, case["escalate"]) for i, case in enumerate(cases)]
    escalated = [expected for got, expected in decisions if got]
    assert sum(escalated) / len(escalated) >= MIN_PRECISION


@pytest.mark.parametrize("case", load_cases(), ids=lambda case: f"{case['centre']}:{case['text']}")
def test_case(policy, case):
    """One labelled turn gives exactly its cues and its handoff decision at its centre."""
    decision = _decide(policy, case, "one-case")
    assert sorted(decision.cues) == sorted(case["cues"])
    assert decision.escalate == case["escalate"]
