"""Benchmark of the local LLM: first-token latency and decode speed of the embedded Qwen model.

Run from the repository root with `python -m bench.llm [--threads N]`. It starts the
llama.cpp server (xllamacpp) with the embedded Qwen2.5 0.5B instruct GGUF (Q4_K_M) on
127.0.0.1, then sends FAQ-style questions one after another, each with the prompt that
LlmResponder builds from the best FAQ passage. First-token latency is the time from sending the
request to the first content chunk. Decode speed counts the chunks after the first one, because
llama.cpp's server sends one token per chunk, over the time from the first to the last chunk.
The grounding guard checks each answer against its passage, and the share that passes is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import time

from bench import describe_machine, load_average_text
from voicebot.config import Settings
from voicebot.llm.client import LlmClient
from voicebot.llm.grounding import check_grounding
from voicebot.llm.responder import build_messages, faq_retriever
from voicebot.llm.server import DEFAULT_MODEL_ALIAS, local_llm_server
from voicebot.responder.faq import FaqResponder, load_knowledge_base
from voicebot.responder.messages import load_messages

QUESTIONS = (
    "信用卡年费多少钱",
    "最低还款额怎么算",
    "取现要收多少手续费",
    "逾期了会怎么样",
    "分期手续费是多少",
    "免息期有多长",
    "积分多久过期",
    "境外消费有没有手续费",
    "补卡要钱吗",
    "附属卡几岁可以办",
)
MAX_TOKENS = 64


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


async def _measure(threads: int) -> str:
    settings = Settings()
    faq = FaqResponder(load_knowledge_base(settings.knowledge_base), load_messages(settings.messages))
    retrieve = faq_retriever(faq, max_passages=1)
    first_token_s: list[float] = []
    decode_rates: list[float] = []
    grounded = 0
    load_before = load_average_text()
    started = time.monotonic()
    async with local_llm_server(threads=threads, context_tokens=2048) as base_url:
        startup_s = time.monotonic() - started
        async with LlmClient(base_url=base_url, first_token_timeout_s=120.0, idle_timeout_s=60.0) as client:
            for question in QUESTIONS:
                passages = retrieve(question)
                messages = build_messages(question, passages, language="zh")
                sent = time.monotonic()
                first_at: float | None = None
                last_at = sent
                chunks = 0
                pieces: list[str] = []
                async for piece in client.stream_chat(
                    messages, model=DEFAULT_MODEL_ALIAS, max_tokens=MAX_TOKENS, temperature=0.0
                ):
                    now = time.monotonic()
                    if first_at is None:
                        first_at = now
                    last_at = now
                    chunks += 1
                    pieces.append(piece)
                if first_at is None:
                    continue
                first_token_s.append(first_at - sent)
                if chunks > 1 and last_at > first_at:
                    decode_rates.append((chunks - 1) / (last_at - first_at))
                if check_grounding("".join(pieces), [p.text for p in passages]).grounded:
                    grounded += 1

    lines = [
        "## LLM",
        "",
        f"Machine: {describe_machine()}; load average before the run {load_before}, after it {load_average_text()}.",
        f"Model: Qwen2.5 0.5B instruct, GGUF Q4_K_M, llama.cpp via xllamacpp, {threads} threads, "
        f"context 2048 tokens, one request at a time, at most {MAX_TOKENS} tokens per answer, temperature 0.",
        f"Command: `python -m bench.llm --threads {threads}`. Server start-up (model load): {startup_s:.1f} s.",
        "",
        "| measure | p50 | p95 |",
        "|---|---|---|",
    ]
    if first_token_s:
        lines.append(
            f"| first-token latency (s), {len(first_token_s)} questions | {statistics.median(first_token_s):.2f} | "
            f"{_percentile(first_token_s, 0.95):.2f} |"
        )
    if decode_rates:
        lines.append(
            f"| decode speed (tokens/s) | {statistics.median(decode_rates):.1f} | "
            f"{_percentile(decode_rates, 0.05):.1f} (5th percentile, the slow end) |"
        )
    lines += [
        "",
        f"Answers that passed the grounding guard against their passage: {grounded} of {len(QUESTIONS)}.",
        "With only 10 questions, p95 is the second-slowest value, an estimate.",
        "",
    ]
    return "\n".join(lines)


def run(threads: int | None = None) -> str:
    """Run the benchmark and return the `## LLM` markdown section."""
    if threads is None:
        threads = int(os.environ.get("VOICEBOT_BENCH_LLM_THREADS", "2"))
    return asyncio.run(_measure(threads))


def main() -> None:
    """Print the markdown section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for the llama.cpp server (default 2)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(run(args.threads))


if __name__ == "__main__":
    main()
