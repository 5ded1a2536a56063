"""An OpenAI-compatible chat server on 127.0.0.1:0 that fails in chosen ways.

The request's `model` field picks the behaviour, so one server serves every test:

- "ok": streams the reply in three chunks, then `finish_reason` and `[DONE]`.
- "stall_first": sends the headers, then nothing until the test ends.
- "stall_mid": sends two content chunks, then nothing until the test ends.
- "truncate": sends two content chunks and closes without `finish_reason` or `[DONE]`.
- "no_done": sends the whole reply with `finish_reason` and closes without `[DONE]`.
- "malformed": sends one content chunk, then a data line that is not JSON.
- "no_choices": sends a JSON chunk without `choices`.
- "fail_once": returns HTTP 500 to the first request and streams "ok" after that.
- "unauthorized": returns HTTP 401.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web

REPLY_PIECES = ("普卡年费每年一百元。", "金卡每年三百元。", "首年免年费。")
REPLY_TEXT = "".join(REPLY_PIECES)


@dataclass
class FaultyServerState:
    """Request counts per behaviour, and the event that ends every stall."""

    requests: Counter[str] = field(default_factory=Counter)
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


def build_app(state: FaultyServerState) -> web.Application:
    """Return the aiohttp application of the faulty server."""

    async def stall() -> None:
        try:
            await asyncio.wait_for(state.release.wait(), timeout=30.0)
        except asyncio.TimeoutError:
            pass

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        mode = body["model"]
        state.requests[mode] += 1
        if mode == "unauthorized":
            return web.json_response({"error": {"message": "invalid api key"}}, status=401)
        if mode == "fail_once" and state.requests[mode] == 1:
            return web.json_response({"error": {"message": "internal error"}}, status=500)

        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(_chunk(None))  # role-only first chunk, as llama.cpp sends
        if mode == "stall_first":
            await stall()
            return response
        if mode == "no_choices":
            await response.write(b'data: {"id": "x", "object": "chat.completion.chunk"}\n\n')
            return response

        await response.write(_chunk(REPLY_PIECES[0]))
        if mode == "malformed":
            await response.write(b"data: {not json\n\n")
            return response
        await response.write(_chunk(REPLY_PIECES[1]))
        if mode == "stall_mid":
            await stall()
            return response
        if mode == "truncate":
            return response
        await response.write(_chunk(REPLY_PIECES[2]))
        await response.write(_chunk(None, finish_reason="stop"))
        if mode != "no_done":
            await response.write(b"data: [DONE]\n\n")
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app
