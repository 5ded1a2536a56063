"""Benchmark of the escalation policy: precision and recall per cue, handoffs per sensitivity, latency.

Run from the repository root with `python -m bench.escalation`. Uses the shipped policy
(dialogs/escalation.yaml), the real detectors and the labelled turns of
tests/escalation/cases.yaml. Latency is the wall time of `EscalationPolicy.evaluate` for
one turn, text only and with three seconds of 16 kHz audio for the arousal cue.
"""

from __future__ import annotations

import logging
import os
import platform
import statistics
import time
from collections import Counter
from pathlib import Path

import numpy as np
import yaml

from voicebot.escalation import TEXT_CUES, EscalationPolicy
from voicebot.escalation.policy_file import SENSITIVITY_LEVELS

REPO_ROOT = Path(__file__).resolve().parents[1]
CASES_PATH = REPO_ROOT / "tests" / "escalation" / "cases.yaml"
POLICY_PATH = REPO_ROOT / "dialogs" / "escalation.yaml"
LATENCY_REPEATS = 5
AUDIO_SECONDS = 3.0
# A centre of each sensitivity level in the shipped policy file.
CENTRE_OF_LEVEL = {"low": "shanghai", "medium": "default", "high": "beijing"}


def _machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs; Python {platform.python_version()}"


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _ratio(numerator: int, denominator: int) -> str:
    return f"{numerator / denominator:.3f}" if denominator else "-"


def _cue_table(policy: EscalationPolicy, cases: list[dict]) -> list[str]:
    true_pos, false_pos, false_neg = Counter(), Counter(), Counter()
    for index, case in enumerate(cases):
        state = policy.new_call(call_id=f"bench-{index}", centre=case["centre"])
        found = set(policy.evaluate(case["text"], partial=False, audio=None, call_state=state).cues)
        expected = set(case["cues"])
        for cue in TEXT_CUES:
            true_pos[cue] += cue in found and cue in expected
            false_pos[cue] += cue in found and cue not in expected
            false_neg[cue] += cue in expected and cue not in found
    rows = []
    for cue in TEXT_CUES:
        support = true_pos[cue] + false_neg[cue]
        rows.append(
            f"| {cue} | {support} | {_ratio(true_pos[cue], true_pos[cue] + false_pos[cue])} "
            f"| {_ratio(true_pos[cue], support)} |"
        )
    tp, fp, fn = sum(true_pos.values()), sum(false_pos.values()), sum(false_neg.values())
    rows.append(f"| **all cues** | {tp + fn} | {_ratio(tp, tp + fp)} | {_ratio(tp, tp + fn)} |")
    return rows


def _sensitivity_table(policy: EscalationPolicy, cases: list[dict]) -> list[str]:
    rows = []
    for level in SENSITIVITY_LEVELS:
        centre = CENTRE_OF_LEVEL[level]
        handoffs = 0
        true_pos = false_pos = false_neg = 0
        labelled = 0
        for index, case in enumerate(cases):
            state = policy.new_call(call_id=f"bench-{level}-{index}", centre=centre)
            escalate = policy.evaluate(case["text"], partial=False, audio=None, call_state=state).escalate
            handoffs += escalate
            if policy.settings.sensitivity_of(case["centre"]) != level:
                continue
            labelled += 1
            true_pos += escalate and case["escalate"]
            false_pos += escalate and not case["escalate"]
            false_neg += case["escalate"] and not escalate
        rows.append(
            f"| {level} ({centre}) | {handoffs} of {len(cases)} ({handoffs / len(cases):.0%}) | {labelled} "
            f"| {_ratio(true_pos, true_pos + false_pos)} | {_ratio(true_pos, true_pos + false_neg)} |"
        )
    return rows


def _latencies(policy: EscalationPolicy, cases: list[dict]) -> tuple[list[float], list[float]]:
    t = np.arange(int(AUDIO_SECONDS * 16_000)) / 16_000
    audio = (0.1 * np.sin(2 * np.pi * 160 * t) * 32767).astype(np.int16)
    text_only: list[float] = []
    with_audio: list[float] = []
    for repeat in range(LATENCY_REPEATS):
        state = policy.new_call(call_id=f"bench-latency-{repeat}")
        for case in cases:
            started = time.perf_counter()
            policy.evaluate(case["text"], partial=False, audio=None, call_state=state)
            text_only.append(time.perf_counter() - started)
        for case in cases[:20]:
            started = time.perf_counter()
            policy.evaluate(case["text"], partial=False, audio=audio, call_state=state)
            with_audio.append(time.perf_counter() - started)
    return text_only, with_audio


def run() -> str:
    """Measure the escalation policy and return the results as a markdown section."""
    # One INFO line per decision would flood the benchmark output.
    logging.getLogger("voicebot.escalation").setLevel(logging.WARNING)
    cases = yaml.safe_load(CASES_PATH.read_text(encoding="utf-8"))["cases"]
    started = time.perf_counter()
    policy = EscalationPolicy.from_file(POLICY_PATH)
    policy.evaluate("预热", partial=False, audio=None, call_state=policy.new_call(call_id="bench-warm-up"))
    load_seconds = time.perf_counter() - started

    text_only, with_audio = _latencies(policy, cases)
    sources = Counter(case["source"] for case in cases)
    lines = [
        "## Escalation policy",
        "",
        f"Machine: {_machine()}.",
        f"Policy {policy.policy_version}; {len(cases)} labelled turns "
        f"({', '.join(f'{count} {source}' for source, count in sorted(sources.items()))}); "
        f"policy load and first decision {load_seconds:.2f} s.",
        "",
        "The rules and the labelled turns were written together, so the figures below are in-sample: they show",
        "that every listed case holds, not how the rules generalise to new calls.",
        "",
        "Cue detection on the labelled turns (a cue counts when any of its rules fires, whatever its score):",
        "",
        "| cue | cases with the cue | precision | recall |",
        "|---|---|---|---|",
        *_cue_table(policy, cases),
        "",
        "Handoffs per sensitivity. Every turn is run at a centre of each level; precision and recall of the",
        "handoff decision use the turns labelled for a centre of that level.",
        "",
        "| sensitivity (centre) | handoffs over all turns | labelled turns | precision | recall |",
        "|---|---|---|---|---|",
        *_sensitivity_table(policy, cases),
        "",
        f"Decision latency per turn, text only ({len(text_only)} turns): "
        f"p50 {_percentile(text_only, 0.5) * 1000:.2f} ms, p95 {_percentile(text_only, 0.95) * 1000:.2f} ms.",
        f"With {AUDIO_SECONDS:.0f} s of 16 kHz audio for the arousal cue ({len(with_audio)} turns): "
        f"p50 {_percentile(with_audio, 0.5) * 1000:.2f} ms, p95 {_percentile(with_audio, 0.95) * 1000:.2f} ms; "
        f"mean {statistics.mean(with_audio) * 1000:.2f} ms.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(run())
