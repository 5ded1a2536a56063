"""An OpenAI-compatible chat server on 127.0.0.1:0 that streams a scripted reply or stalls.

The request's `model` field picks the behaviour, so one server serves every test:

- "grounded": streams GROUNDED_PIECES (each fee as the annual_fee FAQ answer states it).
- "ungrounded": streams a grounded sentence, then UNGROUNDED_SENTENCE with a fee no passage has.
- "stall_first": sends the headers and a role-only chunk, then nothing until the test ends.
- "slow": sends the first sentence, then waits for the client to disconnect.

`ScriptedServerState.disconnected` counts requests whose client closed the connection
mid-stream, so a test can check that a cancelled answer stops its request.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

GROUNDED_PIECES = ("普卡年费", "每年一百元。", "金卡每年三百元。")
UNGROUNDED_SENTENCE = "白金卡年费九百九十九元。"


@dataclass
class ScriptedServerState:
    """Request counts per behaviour, disconnects seen, and the event that ends every stall."""

    requests: Counter[str] = field(default_factory=Counter)
    disconnected: Counter[str] = field(default_factory=Counter)
    release: asyncio.Event = field(default_factory=asyncio.Event)


def _chunk(content: str | None, finish_reason: str | None = None) -> bytes:
    delta = {} if content is None else {"content": content}
    body = {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "test",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n".encode()


def build_app(state: ScriptedServerState) -> web.Application:
    """Return the aiohttp application of the scripted server."""

    async def wait_for_disconnect(request: web.Request, mode: str) -> None:
        # aiohttp does not cancel the handler when the client goes, so the transport is polled.
        while not state.release.is_set():
            transport = request.transport
            if transport is None or transport.is_closing():
                state.disconnected[mode] += 1
                return
            await asyncio.sleep(0.05)

    async def finish(response: web.StreamResponse) -> None:
        await response.write(_chunk(None, finish_reason="stop"))
        await response.write(b"data: [DONE]\n\n")

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        mode = body["model"]
        state.requests[mode] += 1
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(_chunk(None))  # role-only first chunk, as llama.cpp sends
        if mode == "stall_first":
            await wait_for_disconnect(request, mode)
            return response
        if mode == "grounded":
            for piece in GROUNDED_PIECES:
                await response.write(_chunk(piece))
            await finish(response)
        elif mode == "ungrounded":
            await response.write(_chunk("普卡年费每年一百元。"))
            await response.write(_chunk(UNGROUNDED_SENTENCE))
            await finish(response)
        elif mode == "slow":
            await response.write(_chunk("普卡年费每年一百元。"))
            await response.write(_chunk("金卡"))
            await wait_for_disconnect(request, mode)
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app


@asynccontextmanager
async def scripted_server() -> AsyncIterator[tuple[str, ScriptedServerState]]:
    """Run the scripted server on 127.0.0.1, port 0, and yield (its /v1 base URL, its state)."""
    state = ScriptedServerState()
    runner = web.AppRunner(build_app(state), shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1", state
    finally:
        state.release.set()
        await runner.cleanup()
