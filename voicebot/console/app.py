"""HTTP routes of the rep console, mounted under /console/ on the voicebot aiohttp app.

Pages: `GET /console/` (the console), `GET /console/reviews` (review queue: HTML for a
browser, JSON otherwise), static files under `/console/static/`.
JSON API (session cookie required, POST bodies must be application/json):
- `POST /console/api/login` {username, password}, `POST /console/api/logout`, `GET /console/api/me`
- `POST /console/api/presence` {status}
- `GET /console/api/queue`: waiting handoffs of my skills
- `GET /console/api/handoffs/{id}`: state and screen-pop
- `POST /console/api/handoffs/{id}/accept|decline|hangup`
- `POST /console/api/calls/{call_id}/disposition` {disposition, notes, handoff_id}
- `POST /console/api/calls/{call_id}/correction` {bot_text, corrected_text, handoff_id}
- `GET /console/ws`: live events and call audio, see `voicebot.console.live`.

Only application/json POSTs are accepted, so a cross-site HTML form cannot post here; with
the SameSite=Strict cookie that is the CSRF defence.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from aiohttp import web

from voicebot.console.auth import LoginThrottle, SessionStore, User, Users
from voicebot.console.live import ConsoleHub
from voicebot.console.records import DISPOSITIONS, CallNotes, RecordError
from voicebot.errors import UpstreamError
from voicebot.handoff.models import HandoffError, HandoffNotFoundError, HandoffStateError
from voicebot.handoff.queue import HandoffQueue

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
COOKIE_NAME = "voicebot_console"
COOKIE_PATH = "/console"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class RepConsole:
    """The console's state: queue, users, sessions, call notes and the live hub."""

    def __init__(
        self,
        *,
        queue: HandoffQueue,
        users: Users,
        key_prefix: str,
        cookie_secure: bool,
        session_ttl_s: int,
        record_ttl_s: int,
        max_reviews: int,
        heartbeat_interval_s: float,
    ) -> None:
        self.queue = queue
        self.users = users
        self.cookie_secure = cookie_secure
        self.sessions = SessionStore(client=queue.client, key_prefix=key_prefix, ttl_s=session_ttl_s)
        self.throttle = LoginThrottle(client=queue.client, key_prefix=key_prefix)
        self.notes = CallNotes(client=queue.client, key_prefix=key_prefix, ttl_s=record_ttl_s, max_reviews=max_reviews)
        self.hub = ConsoleHub(queue=queue, heartbeat_interval_s=heartbeat_interval_s)


CONSOLE_KEY = web.AppKey("console", RepConsole)


def add_console_routes(
    app: web.Application,
    *,
    queue: HandoffQueue,
    users: Users,
    key_prefix: str = "voicebot:console:",
    cookie_secure: bool = True,
    session_ttl_s: int = 8 * 3600,
    record_ttl_s: int = 7 * 24 * 3600,
    max_reviews: int = 10000,
    heartbeat_interval_s: float | None = None,
) -> RepConsole:
    """Mount the console under /console/ and start its hub with the app.

    Args:
        app: The voicebot aiohttp application.
        queue: A connected handoff queue (the caller connects and closes it).
        users: Console users, from `load_users`.
        key_prefix: Prefix of the session, disposition and review keys.
        cookie_secure: Send the session cookie only over HTTPS. Set False only for plain
            HTTP on a closed network or in tests.
        session_ttl_s: Seconds a session lives after its last request.
        record_ttl_s: Seconds dispositions are kept.
        max_reviews: Maximum corrections kept in the review queue.
        heartbeat_interval_s: Seconds between presence heartbeats; a third of the queue's
            presence TTL when None.
    """
    console = RepConsole(
        queue=queue,
        users=users,
        key_prefix=key_prefix,
        cookie_secure=cookie_secure,
        session_ttl_s=session_ttl_s,
        record_ttl_s=record_ttl_s,
        max_reviews=max_reviews,
        heartbeat_interval_s=heartbeat_interval_s or queue.presence_ttl_s / 3,
    )
    app[CONSOLE_KEY] = console

    async def run_hub(_app: web.Application) -> AsyncIterator[None]:
        console.hub.start()
        yield
        await console.hub.stop()

    app.cleanup_ctx.append(run_hub)
    router = app.router
    router.add_get("/console", _redirect_to_console)
    router.add_get("/console/", _index)
    router.add_static("/console/static/", STATIC_DIR, name="console-static")
    router.add_post("/console/api/login", _login)
    router.add_post("/console/api/logout", _logout)
    router.add_get("/console/api/me", _with_user(_me))
    router.add_post("/console/api/presence", _with_user(_presence))
    router.add_get("/console/api/queue", _with_user(_queue))
    router.add_get("/console/api/handoffs/{handoff_id}", _with_user(_handoff))
    router.add_post("/console/api/handoffs/{handoff_id}/accept", _with_user(_accept))
    router.add_post("/console/api/handoffs/{handoff_id}/decline", _with_user(_decline))
    router.add_post("/console/api/handoffs/{handoff_id}/hangup", _with_user(_hangup))
    router.add_post("/console/api/calls/{call_id}/disposition", _with_user(_disposition))
    router.add_post("/console/api/calls/{call_id}/correction", _with_user(_correction))
    router.add_get("/console/reviews", _with_user(_reviews))
    router.add_get("/console/ws", _with_user(_websocket))
    return console


# Helpers


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _json(value: object, status: int = 200) -> web.Response:
    return web.json_response(value, status=status, dumps=lambda data: json.dumps(data, ensure_ascii=False))


async def _body(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(
            text=json.dumps({"error": "send the request body as application/json"}), content_type="application/json"
        )
    try:
        body = await request.json()
    except json.JSONDecodeError as error:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "invalid JSON body"}), content_type="application/json"
        ) from error
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text=json.dumps({"error": "expected a JSON object"}), content_type="application/json")
    return body


async def _current_user(request: web.Request) -> User | None:
    console = request.app[CONSOLE_KEY]
    token = request.cookies.get(COOKIE_NAME, "")
    username = await console.sessions.lookup(token)
    if username is None:
        return None
    return console.users.by_name.get(username)


def _with_user(handler: Callable[[web.Request, User], Awaitable[web.StreamResponse]]) -> Handler:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            user = await _current_user(request)
        except UpstreamError as error:
            logger.error("Console session lookup failed: %s", error)
            return _error(503, "session store unavailable; retry shortly")
        if user is None:
            return _error(401, "not logged in or session expired; log in again")
        try:
            return await handler(request, user)
        except HandoffNotFoundError as error:
            return _error(404, str(error))
        except HandoffStateError as error:
            return _error(409, str(error))
        except (HandoffError, RecordError) as error:
            return _error(400, str(error))
        except UpstreamError as error:
            logger.error("Console request %s failed: %s", request.path, error)
            return _error(503, "Redis unavailable; retry shortly")

    return wrapped


def _user_json(user: User) -> dict[str, Any]:
    return {"username": user.username, "name": user.name, "skills": list(user.skills), "roles": list(user.roles)}


async def _handoff_for(request: web.Request, user: User) -> Any:
    """Return the handoff of the URL if the user has its skill, else raise HTTP 403."""
    console = request.app[CONSOLE_KEY]
    info = await console.queue.get(request.match_info["handoff_id"])
    if info.skill not in user.skills:
        raise web.HTTPForbidden(
            text=json.dumps({"error": f"handoff needs skill {info.skill}, which this user lacks"}),
            content_type="application/json",
        )
    return info


# Pages


async def _redirect_to_console(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/console/")


async def _index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-store"})


# Login


async def _login(request: web.Request) -> web.StreamResponse:
    console = request.app[CONSOLE_KEY]
    body = await _body(request)
    username = str(body.get("username", ""))
    password = str(body.get("password", ""))
    if await console.throttle.blocked(username):
        logger.warning("Console login blocked after repeated failures")
        return _error(429, "too many failed logins; wait 15 minutes or ask an admin")
    user = console.users.authenticate(username, password)
    if user is None:
        await console.throttle.record_failure(username)
        logger.info("Console login failed")
        return _error(401, "wrong username or password")
    await console.throttle.reset(username)
    token = await console.sessions.create(user.username)
    response = _json({"user": _user_json(user), "dispositions": list(DISPOSITIONS)})
    response.set_cookie(
        COOKIE_NAME,
        token,
        max_age=console.sessions.ttl_s,
        path=COOKIE_PATH,
        httponly=True,
        secure=console.cookie_secure,
        samesite="Strict",
    )
    logger.info("Rep %s logged in to the console", user.username)
    return response


async def _logout(request: web.Request) -> web.StreamResponse:
    console = request.app[CONSOLE_KEY]
    token = request.cookies.get(COOKIE_NAME, "")
    username = await console.sessions.lookup(token)
    if token:
        await console.sessions.delete(token)
    if username is not None:
        connection = console.hub.connections.get(username)
        if connection is not None:
            await connection.ws.close(code=1000, message=b"logged out")
        await console.queue.remove_rep(username)
    response = _json({"ok": True})
    response.del_cookie(COOKIE_NAME, path=COOKIE_PATH)
    return response


async def _me(request: web.Request, user: User) -> web.StreamResponse:
    console = request.app[CONSOLE_KEY]
    presence = await console.queue.presence(user.username)
    return _json(
        {
            "user": _user_json(user),
            "presence": asdict(presence) if presence is not None else None,
            "dispositions": list(DISPOSITIONS),
            "console_connected": user.username in console.hub.connections,
        }
    )


# Queue


async def _presence(request: web.Request, user: User) -> web.StreamResponse:
    console = request.app[CONSOLE_KEY]
    body = await _body(request)
    status = str(body.get("status", ""))
    await console.queue.set_presence(user.username, status, skills=list(user.skills), name=user.name)
    presence = await console.queue.presence(user.username)
    return _json({"presence": asdict(presence) if presence is not None else None})


async def _queue(request: web.Request, user: User) -> web.StreamResponse:
    console = request.app[CONSOLE_KEY]
    waiting = await console.queue.waiting(list(user.skills))
    return _json({"handoffs": [info.to_dict() for info in waiting]})


async def _handoff(request: web.Request, user: User) -> web.StreamResponse:
    info = await _handoff_for(request, user)
    return _json({"handoff": info.to_dict(with_screen_pop=True)})


async def _accept(request: web.Request, user: User) -> web.StreamResponse:
    console = request.app[CONSOLE_KEY]
    connection = console.hub.connections.get(user.username)
    if connection is None:
        return _error(409, "the console WebSocket is not connected to this server; reload the console page")
    info = await _handoff_for(request, user)
    await console.queue.accept(info.handoff_id, user.username)
    endpoint = console.queue.rep_endpoint(info.handoff_id, sample_rate_hz=info.bridge_sample_rate_hz)
    try:
        await endpoint.open()
    except UpstreamError:
        await console.queue.rep_disconnected(info.handoff_id, user.username)
        raise
    await connection.start_call(info.handoff_id, endpoint)
    return _json({"handoff_id": info.handoff_id, "call_id": info.call_id, "sample_rate_hz": info.bridge_sample_rate_hz})


async def _decline(request: web.Request, user: User) -> web.StreamResponse:
    console = request.app[CONSOLE_KEY]
    info = await _handoff_for(request, user)
    await console.queue.decline(info.handoff_id, user.username)
    return _json({"ok": True})


async def _hangup(request: web.Request, user: User) -> web.StreamResponse:
    console = request.app[CONSOLE_KEY]
    info = await _handoff_for(request, user)
    connection = console.hub.connections.get(user.username)
    if connection is not None and connection.handoff_id == info.handoff_id:
        await connection.end_call()
    await console.queue.hangup(info.handoff_id, user.username)
    return _json({"ok": True, "call_id": info.call_id})


# Records


async def _disposition(request: web.Request, user: User) -> web.StreamResponse:
    console = request.app[CONSOLE_KEY]
    body = await _body(request)
    record = await console.notes.save_disposition(
        call_id=request.match_info["call_id"],
        handoff_id=str(body.get("handoff_id", "")),
        rep_id=user.username,
        disposition=str(body.get("disposition", "")),
        notes=str(body.get("notes", "")),
    )
    return _json({"disposition": asdict(record)})


async def _correction(request: web.Request, user: User) -> web.StreamResponse:
    console = request.app[CONSOLE_KEY]
    body = await _body(request)
    correction = await console.notes.add_correction(
        call_id=request.match_info["call_id"],
        handoff_id=str(body.get("handoff_id", "")),
        rep_id=user.username,
        bot_text=str(body.get("bot_text", "")),
        corrected_text=str(body.get("corrected_text", "")),
    )
    return _json({"correction": asdict(correction)}, status=201)


async def _reviews(request: web.Request, user: User) -> web.StreamResponse:
    console = request.app[CONSOLE_KEY]
    if "designer" not in user.roles:
        return _error(403, "the review queue needs the designer role")
    if request.query.get("format") != "json" and "text/html" in request.headers.get("Accept", ""):
        return web.FileResponse(STATIC_DIR / "reviews.html", headers={"Cache-Control": "no-store"})
    try:
        limit = min(1000, max(1, int(request.query.get("limit", "100"))))
    except ValueError:
        return _error(400, "invalid limit; use a number from 1 to 1000")
    return _json({"reviews": await console.notes.list_reviews(limit=limit)})


# Live


async def _websocket(request: web.Request, user: User) -> web.StreamResponse:
    console = request.app[CONSOLE_KEY]
    origin = request.headers.get("Origin")
    if origin is not None and origin.split("://", 1)[-1] != request.host:
        logger.warning("Console WebSocket of rep %s rejected: origin does not match the host", user.username)
        return _error(403, "WebSocket origin does not match the console host")
    return await console.hub.serve(request, rep_id=user.username, skills=user.skills)
