"""Fixtures for console tests: a console on 127.0.0.1:0 backed by the local Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as redis_asyncio
import yaml
from aiohttp import web

from voicebot.console import RepConsole, add_console_routes, hash_password, load_users
from voicebot.handoff import HandoffQueue

REDIS_URL = "redis://127.0.0.1:6379/0"
PASSWORDS = {"rep1": "correct horse 1", "rep2": "battery staple 2", "rep3": "complaints only 3", "designer": "d3sign!"}
# A low scrypt cost keeps logins fast in tests; production hashes use the default n=2**14.
TEST_SCRYPT_N = 2**10


@dataclass
class ConsoleSite:
    """A running console: its base URL, the console state and a second queue acting as a call process."""

    url: str
    console: RepConsole
    call_queue: HandoffQueue
    users_file: Path


async def _delete_prefix(prefix: str) -> None:
    client = redis_asyncio.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def write_users(path: Path) -> Path:
    """Write a users file with hashed passwords for rep1, rep2 (fraud), rep3 (complaints) and a designer."""
    entries = [
        {"username": "rep1", "name": "王丽", "skills": ["fraud", "card_services"], "roles": ["rep"]},
        {"username": "rep2", "name": "陈强", "skills": ["fraud"], "roles": ["rep"]},
        {"username": "rep3", "name": "李娜", "skills": ["complaints"], "roles": ["rep"]},
        {"username": "designer", "name": "赵敏", "skills": [], "roles": ["designer"]},
    ]
    for entry in entries:
        entry["password_hash"] = hash_password(PASSWORDS[entry["username"]], n=TEST_SCRYPT_N)  # type: ignore[assignment]
    path.write_text(yaml.safe_dump({"users": entries}, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[ConsoleSite]:
    """A console app on 127.0.0.1:0 with its own queue, plus a call-side queue on another client."""
    prefix = f"test:console:{uuid.uuid4().hex[:8]}:"
    queue_options = {
        "redis_url": REDIS_URL,
        "key_prefix": f"{prefix}handoff:",
        "sweep_interval_s": 0.1,
        "event_block_s": 0.2,
        "presence_ttl_s": 3.0,
    }
    console_queue = HandoffQueue(**queue_options)  # type: ignore[arg-type]
    call_queue = HandoffQueue(**queue_options)  # type: ignore[arg-type]
    await console_queue.connect()
    await call_queue.connect()
    users_file = write_users(tmp_path / "users.yaml")
    app = web.Application()
    console = add_console_routes(
        app,
        queue=console_queue,
        users=load_users(users_file),
        key_prefix=f"{prefix}console:",
        cookie_secure=False,
    )
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    tcp_site = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp_site.start()
    port = runner.addresses[0][1]
    try:
        yield ConsoleSite(
            url=f"http://127.0.0.1:{port}", console=console, call_queue=call_queue, users_file=users_file
        )
    finally:
        await runner.cleanup()
        await call_queue.close()
        await console_queue.close()
        await _delete_prefix(prefix)


@pytest.fixture
async def make_client(site: ConsoleSite) -> AsyncIterator[object]:
    """A factory of logged-out HTTP clients of the console, each with its own cookie jar."""
    sessions: list[aiohttp.ClientSession] = []

    async def make() -> aiohttp.ClientSession:
        # unsafe=True lets the jar keep cookies of an IP-address host such as 127.0.0.1.
        session = aiohttp.ClientSession(base_url=site.url, cookie_jar=aiohttp.CookieJar(unsafe=True))
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        await session.close()


async def login(client: aiohttp.ClientSession, username: str) -> None:
    """Log the client in as `username` with its test password."""
    response = await client.post("/console/api/login", json={"username": username, "password": PASSWORDS[username]})
    assert response.status == 200, await response.text()
