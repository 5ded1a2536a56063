"""A local OpenAI-compatible llama.cpp server for the embedded GGUF, run with xllamacpp.

`xllamacpp.Server(params)` loads the model and starts llama.cpp's own C++ HTTP server on
its own threads, in this process. The constructor blocks until the model is loaded and the
socket listens, and the destructor (`~Server`) stops the main loop and joins its threads.
So `LocalLlmServer` runs both in a worker thread to keep the event loop free, and drops its
only reference to stop the server.

The server runs in-process and not in a child process. xllamacpp binds to `127.0.0.1:0`,
reports the port it got in `listening_address`, and its destructor stops it cleanly, so a
child process would add only a port hand-over. Decoding runs on
llama.cpp's threads without the GIL, so the event loop stays responsive while it generates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from voicebot.errors import ConfigError, ModelError, UpstreamError

logger = logging.getLogger(__name__)

DEFAULT_MODEL_ALIAS = "qwen2.5-0.5b-instruct"
_POLL_INTERVAL_S = 0.2


class LocalLlmServer:
    """Start and stop one llama.cpp server on 127.0.0.1 for a GGUF model file.

    `threads` is the number of CPU threads for decoding and for prompt processing.
    `context_tokens` is the context window shared by all `parallel_slots`.
    `port` 0 lets the kernel pick a free port, which `base_url` reports after `start`.
    """

    def __init__(
        self,
        *,
        model_path: Path,
        model_alias: str = DEFAULT_MODEL_ALIAS,
        context_tokens: int = 2048,
        threads: int = 2,
        parallel_slots: int = 1,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        ready_timeout_s: float = 120.0,
        llama_log_verbosity: int = 0,
    ) -> None:
        if threads < 1:
            raise ConfigError(f"LLM server threads must be at least 1, got {threads}")
        if context_tokens < 256:
            raise ConfigError(f"LLM context_tokens must be at least 256, got {context_tokens}")
        if parallel_slots < 1:
            raise ConfigError(f"LLM parallel_slots must be at least 1, got {parallel_slots}")
        if not 0 <= port <= 65535:
            raise ConfigError(f"LLM server port must be 0..65535, got {port}")
        self._model_path = Path(model_path)
        self._model_alias = model_alias
        self._context_tokens = context_tokens
        self._threads = threads
        self._parallel_slots = parallel_slots
        self._host = host
        self._port = port
        self._api_key = api_key
        self._ready_timeout_s = ready_timeout_s
        self._llama_log_verbosity = llama_log_verbosity
        self._server: object | None = None
        self._root_url: str | None = None

    @property
    def base_url(self) -> str:
        """OpenAI base URL of the running server, ending in `/v1`."""
        if self._root_url is None:
            raise RuntimeError("LocalLlmServer.base_url read before start() returned")
        return self._root_url + "/v1"

    @property
    def model_alias(self) -> str:
        """Model id that `/v1/models` lists and that requests may name."""
        return self._model_alias

    def _build_server(self) -> tuple[object, str]:
        import xllamacpp  # imported here so that code which only talks to a remote server needs no native library

        params = xllamacpp.CommonParams()
        params.model.path = str(self._model_path)
        params.model_alias = {self._model_alias}
        params.n_ctx = self._context_tokens
        params.n_parallel = self._parallel_slots
        params.cpuparams.n_threads = self._threads
        params.cpuparams_batch.n_threads = self._threads
        params.hostnames = [self._host]
        params.port = self._port
        params.verbosity = self._llama_log_verbosity
        if self._api_key:
            params.api_keys = [self._api_key]
        try:
            server = xllamacpp.Server(params)
        except RuntimeError as e:
            raise UpstreamError(
                f"llama.cpp server failed to start with model {self._model_path} on {self._host}:{self._port}: {e}. "
                "Check that the file is a GGUF model and that the port is free."
            ) from e
        return server, str(server.listening_address)

    async def start(self) -> str:
        """Load the model, start the server and wait until `GET /v1/models` returns 200; return `base_url`.

        Raises ModelError when the model file is missing and UpstreamError when the server does
        not start or does not respond within `ready_timeout_s`.
        """
        if self._server is not None:
            raise RuntimeError("LocalLlmServer.start() called twice")
        if not self._model_path.is_file():
            raise ModelError(
                f"LLM model file {self._model_path} not found. Assemble the embedded model with "
                "`python -m voicebot.llm.model_files` or pass the path of another GGUF file."
            )
        started = time.monotonic()
        self._server, self._root_url = await asyncio.to_thread(self._build_server)
        try:
            await self._wait_ready(deadline=started + self._ready_timeout_s)
        except BaseException:
            await self.stop()
            raise
        logger.info(
            "llama.cpp server for %s listening at %s (%d threads, context %d tokens) after %.1f s",
            self._model_path.name, self._root_url, self._threads, self._context_tokens, time.monotonic() - started,
        )
        return self.base_url

    async def _wait_ready(self, *, deadline: float) -> None:
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        url = self.base_url + "/models"
        last_problem = "no answer yet"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5.0)) as session:
            while time.monotonic() < deadline:
                try:
                    async with session.get(url, headers=headers) as response:
                        if response.status == 200:
                            return
                        last_problem = f"HTTP {response.status}"
                except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                    last_problem = repr(e)
                await asyncio.sleep(_POLL_INTERVAL_S)
        raise UpstreamError(
            f"llama.cpp server at {self._root_url} did not respond to GET /v1/models within "
            f"{self._ready_timeout_s:.0f} s ({last_problem}). Raise ready_timeout_s on a slow machine."
        )

    async def stop(self) -> None:
        """Stop the server and free the model. Safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        # The destructor stops the HTTP server and joins llama.cpp's threads. It runs when the
        # last reference goes, so the worker thread gets the only one.
        holder = [server]
        del server
        await asyncio.to_thread(holder.clear)
        logger.info("llama.cpp server at %s stopped", self._root_url)


@contextlib.asynccontextmanager
async def local_llm_server(
    *,
    model_path: Path | None = None,
    model_alias: str = DEFAULT_MODEL_ALIAS,
    context_tokens: int = 2048,
    threads: int = 2,
    parallel_slots: int = 1,
    api_key: str | None = None,
    ready_timeout_s: float = 120.0,
) -> AsyncIterator[str]:
    """Run a local llama.cpp server for the block and yield its OpenAI base URL (`.../v1`).

    Without `model_path` the embedded Qwen2.5 0.5B instruct GGUF is assembled (or found in the
    cache) first. The server binds to a free port on 127.0.0.1 and stops when the block exits.
    """
    if model_path is None:
        from voicebot.llm.model_files import ensure_qwen_gguf

        model_path = await asyncio.to_thread(ensure_qwen_gguf)
    server = LocalLlmServer(
        model_path=model_path,
        model_alias=model_alias,
        context_tokens=context_tokens,
        threads=threads,
        parallel_slots=parallel_slots,
        api_key=api_key,
        ready_timeout_s=ready_timeout_s,
    )
    base_url = await server.start()
    try:
        yield base_url
    finally:
        await server.stop()
