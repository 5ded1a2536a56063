"""Fixtures for the LLM call tests: the embedded llama.cpp server once per session, and the call fixtures."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

# The whole-call test needs the real service and the caller clips, as the call tests do.
from tests.calls.conftest import caller_manifest, callers_dir, services  # noqa: F401
from tests.llm_calls.helpers import load_faq
from voicebot.llm.runtime import LlmRuntime, start_llm_fallback


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def llm_runtime() -> AsyncIterator[LlmRuntime]:
    """The embedded Qwen2.5 0.5B on a local llama.cpp server, started as the service would start it."""
    runtime = await start_llm_fallback(
        base_url="embedded",
        api_key="",
        model_small="",
        model_large="",
        faq=load_faq(),
        redis_url="",
        # One thread: the test machine has two cores, shared with Whisper in the call test.
        threads=1,
        # CPU-only decoding on a shared machine can take tens of seconds for the first token.
        first_token_timeout_s=90.0,
        idle_timeout_s=30.0,
    )
    assert runtime is not None
    try:
        yield runtime
    finally:
        await runtime.close()
