"""HTTP and WebSocket front of the service (aiohttp).

Routes:
- `GET /media`: the media-stream WebSocket, one call per connection;
- `GET /healthz`: liveness and the number of calls in progress;
- `GET /calls/{call_id}`: the call record (masked transcript, timings) as JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from telephony.gateway import SipSettings, add_sip_routes, start_sip_gateway
from voicebot.call import CLOSE_TRY_AGAIN_LATER, CallSession
from voicebot.console import add_console_routes, load_users
from voicebot.config import Settings
from voicebot.services import Services, load_services

logger = logging.getLogger(__name__)

SERVICES_KEY = web.AppKey("services", Services)
CALLS_KEY = web.AppKey("calls", set)
SETTINGS_KEY = web.AppKey("settings", Settings)
# A media message is about 250 bytes; this bounds what a broken peer can make us buffer.
MAX_WS_MESSAGE_BYTES = 64 * 1024


async def media_stream(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES_KEY]
    calls: set[asyncio.Task[object]] = request.app[CALLS_KEY]
    ws = web.WebSocketResponse(max_msg_size=MAX_WS_MESSAGE_BYTES, heartbeat=None)
    await ws.prepare(request)
    if len(calls) >= request.app[SETTINGS_KEY].max_calls:
        logger.warning("call rejected: %d calls in progress, max_calls is %d", len(calls), request.app[SETTINGS_KEY].max_calls)
        await ws.close(code=CLOSE_TRY_AGAIN_LATER, message=b"at capacity (max_calls reached); retry later")
        return ws
    session = CallSession(ws, services)
    task = asyncio.current_task()
    assert task is not None
    calls.add(task)
    try:
        await session.run()
    finally:
        calls.discard(task)
    return ws


async def healthz(request: web.Request) -> web.Response:
    calls = request.app[CALLS_KEY]
    services = request.app[SERVICES_KEY]
    return web.json_response({"status": "ok", "calls": len(calls), "max_calls": request.app[SETTINGS_KEY].max_calls})


async def call_record(request: web.Request) -> web.Response:
    services = request.app[SERVICES_KEY]
    call_id = request.match_info["call_id"]
    record = await services.store.get_call(call_id)
    if record is None:
        return web.json_response({"error": f"call {call_id} not found (records expire after the TTL)"}, status=404)
    # The record holds its turns in index order; see docs/call-record.md for the fields.
    return web.json_response({"call": dataclasses.asdict(record)}, dumps=_dumps)


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def create_app(services: Services, settings: Settings | None = None) -> web.Application:
    """Build the aiohttp app; `settings` defaults to the ones the services were loaded with."""
    app = web.Application()
    app[SERVICES_KEY] = services
    app[CALLS_KEY] = set()
    app.router.add_get("/media", media_stream)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/calls/{call_id}", call_record)
    settings = settings or services.settings
    app[SETTINGS_KEY] = settings
    if settings.console_users:
        add_console_routes(
            app,
            queue=services.handoff_queue,
            users=load_users(Path(settings.console_users)),
            cookie_secure=settings.console_cookie_secure,
        )
    return app


@contextlib.asynccontextmanager
async def running_server(settings: Settings, services: Services | None = None) -> AsyncIterator[tuple[str, Services]]:
    """Start the service on settings.host:settings.port (0 picks a free port); yield (base URL, services)."""
    own_services = services is None
    if services is None:
        services = await load_services(settings)
    app = create_app(services, settings)
    sip_gateway = None
    if settings.sip_enabled:
        sip_gateway = await start_sip_gateway(services, SipSettings.from_env())
        add_sip_routes(app, sip_gateway)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=settings.hangup_timeout_s)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    port = runner.addresses[0][1] if runner.addresses else settings.port
    host = settings.host if ":" not in settings.host else f"[{settings.host}]"
    url = f"http://{host}:{port}"
    logger.info("voicebot listening on %s (media stream at ws://%s:%d/media)", url, host, port)
    try:
        yield url, services
    finally:
        if sip_gateway is not None:
            await sip_gateway.close()
        await runner.cleanup()
        if own_services:
            await services.close()
