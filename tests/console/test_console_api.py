"""Rep console HTTP and WebSocket API against a real server and Redis."""

from __future__ import annotations

import asyncio
import hashlib
import json
import struct

import aiohttp
import pytest

from tests.console.conftest import PASSWORDS, ConsoleSite, login
from tests.handoff.conftest import fraud_request
from voicebot.console import load_users, verify_password
from voicebot.handoff import Accepted, Declined, Ended, Offered, RepDisconnected, TimedOut

pytestmark = pytest.mark.timeout(60)


async def next_text(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, object]:
    """Return the next JSON event of the given type from the console WebSocket."""
    while True:
        message = await asyncio.wait_for(ws.receive(), timeout=10)
        if message.type == aiohttp.WSMsgType.TEXT:
            payload = json.loads(message.data)
            if payload["type"] == kind:
                return payload
        elif message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            raise AssertionError(f"console WebSocket closed while waiting for {kind}")


async def next_binary(ws: aiohttp.ClientWebSocketResponse) -> bytes:
    """Return the next binary (audio) message from the console WebSocket."""
    while True:
        message = await asyncio.wait_for(ws.receive(), timeout=10)
        if message.type == aiohttp.WSMsgType.BINARY:
            return bytes(message.data)
        if message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            raise AssertionError("console WebSocket closed while waiting for audio")


async def available_rep(make_client, username: str):  # type: ignore[no-untyped-def]
    """Log in, open the console WebSocket and become available; return (client, ws)."""
    client = await make_client()
    await login(client, username)
    ws = await client.ws_connect("/console/ws")
    await next_text(ws, "hello")
    response = await client.post("/console/api/presence", json={"status": "available"})
    assert response.status == 200
    return client, ws


async def test_wrong_password_rejected(site: ConsoleSite, make_client) -> None:  # type: ignore[no-untyped-def]
    """A wrong password gets 401 and the users file stores only scrypt hashes."""
    client = await make_client()
    response = await client.post("/console/api/login", json={"username": "rep1", "password": "wrong"})
    assert response.status == 401
    response = await client.post("/console/api/login", json={"username": "nobody", "password": "x"})
    assert response.status == 401
    assert "Set-Cookie" not in response.headers
    stored = site.users_file.read_text(encoding="utf-8")
    assert PASSWORDS["rep1"] not in stored
    users = load_users(site.users_file)
    assert users.by_name["rep1"].password_hash.startswith("scrypt$")
    assert verify_password(PASSWORDS["rep1"], users.by_name["rep1"].password_hash)
    assert not verify_password("wrong", users.by_name["rep1"].password_hash)


async def test_session_cookie_and_logout(site: ConsoleSite, make_client) -> None:  # type: ignore[no-untyped-def]
    """Login sets an HttpOnly SameSite=Strict cookie whose hash, not value, is in Redis."""
    client = await make_client()
    response = await client.post("/console/api/login", json={"username": "rep1", "password": PASSWORDS["rep1"]})
    assert response.status == 200
    cookie_header = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie_header
    assert "SameSite=Strict" in cookie_header
    assert "Path=/console" in cookie_header
    token = response.cookies["voicebot_console"].value
    digest = hashlib.sha256(token.encode()).hexdigest()
    client_redis = site.call_queue.client
    keys = [key async for key in client_redis.scan_iter(match="test:console:*session:*")]
    assert any(key.endswith(digest) for key in keys)
    assert not any(token in key for key in keys)
    assert 0 < await client_redis.ttl(next(key for key in keys if key.endswith(digest)))

    me = await client.get("/console/api/me")
    assert me.status == 200
    assert (await me.json())["user"]["username"] == "rep1"
    await client.post("/console/api/logout", json={})
    assert (await client.get("/console/api/me")).status == 401
    stranger = await make_client()
    assert (await stranger.get("/console/api/queue")).status == 401


async def test_login_throttled_after_failures(make_client) -> None:  # type: ignore[no-untyped-def]
    """Ten failed logins block even the right password for that username."""
    client = await make_client()
    for _ in range(10):
        response = await client.post("/console/api/login", json={"username": "rep2", "password": "guess"})
        assert response.status == 401
    response = await client.post("/console/api/login", json={"username": "rep2", "password": PASSWORDS["rep2"]})
    assert response.status == 429


async def test_presence_changes(site: ConsoleSite, make_client) -> None:  # type: ignore[no-untyped-def]
    """Presence moves between available, busy and away; bad input is rejected."""
    client = await make_client()
    await login(client, "rep1")
    for status in ("available", "busy", "away"):
        response = await client.post("/console/api/presence", json={"status": status})
        assert response.status == 200
        assert (await response.json())["presence"]["status"] == status
        presence = await site.call_queue.presence("rep1")
        assert presence is not None
        assert presence.status == status
        assert presence.skills == ["fraud", "card_services"]
    response = await client.post("/console/api/presence", json={"status": "lunch"})
    assert response.status == 400
    response = await client.post("/console/api/presence", data="status=away")
    assert response.status == 415


async def test_queue_and_screen_pop_json(site: ConsoleSite, make_client) -> None:  # type: ignore[no-untyped-def]
    """The queue lists my skills' handoffs and the screen-pop is masked; other skills get 403."""
    handoff_id = await site.call_queue.request(fraud_request("call-q"))
    await site.call_queue.request(fraud_request("call-c", skill="complaints"))
    client = await make_client()
    await login(client, "rep2")
    queue = await (await client.get("/console/api/queue")).json()
    assert [item["handoff_id"] for item in queue["handoffs"]] == [handoff_id]
    item = queue["handoffs"][0]
    assert item["position"] == 1
    assert item["priority"] == 5
    assert item["waited_s"] >= 0
    assert [reason["label"] for reason in item["reasons"]] == ["疑似欺诈", "交易地点与所在地不符"]
    assert item["screen_pop"] is None

    detail = await (await client.get(f"/console/api/handoffs/{handoff_id}")).json()
    pop = detail["handoff"]["screen_pop"]
    assert pop["verification"] == "verified"
    assert pop["slots"]["card_last4"] == "7890"
    assert "6222021234567890" not in json.dumps(pop, ensure_ascii=False)
    assert pop["transcript"][0][0] == "caller"

    outsider = await make_client()
    await login(outsider, "rep3")
    assert (await outsider.get(f"/console/api/handoffs/{handoff_id}")).status == 403
    assert (await outsider.get("/console/api/handoffs/unknown")).status == 404


async def test_accept_decline_hangup(site: ConsoleSite, make_client) -> None:  # type: ignore[no-untyped-def]
    """Decline passes the call on; accept bridges audio both ways; hang-up ends it."""
    client1, ws1 = await available_rep(make_client, "rep1")
    await asyncio.sleep(0.01)
    client2, ws2 = await available_rep(make_client, "rep2")
    handoff_id = await site.call_queue.request(fraud_request("call-a"))
    events = site.call_queue.events(handoff_id)
    offer = await next_text(ws1, "offer")
    assert offer["handoff_id"] == handoff_id
    assert isinstance(await anext(events), Offered)

    assert (await client1.post(f"/console/api/handoffs/{handoff_id}/decline", json={})).status == 200
    declined = await asyncio.wait_for(anext(events), timeout=10)
    assert isinstance(declined, Declined)
    assert (await next_text(ws2, "offer"))["handoff_id"] == handoff_id
    assert (await client1.post(f"/console/api/handoffs/{handoff_id}/accept", json={})).status == 409

    call = site.call_queue.call_endpoint(handoff_id, sample_rate_hz=8000)
    await call.open()
    response = await client2.post(f"/console/api/handoffs/{handoff_id}/accept", json={})
    assert response.status == 200
    assert (await response.json())["sample_rate_hz"] == 8000
    assert isinstance(await asyncio.wait_for(anext(events), timeout=10), Offered)
    accepted = await asyncio.wait_for(anext(events), timeout=10)
    assert isinstance(accepted, Accepted)
    assert accepted.rep_id == "rep2"
    assert await call.wait_rep_ready(timeout_s=5)

    caller_frame = struct.pack("<160h", *([1200] * 160))
    await call.send_caller_audio(caller_frame)
    assert await next_binary(ws2) == caller_frame
    rep_frame = struct.pack("<160h", *([-900] * 160))
    await ws2.send_bytes(rep_frame)
    rep_audio = call.rep_audio()
    assert await asyncio.wait_for(anext(rep_audio), timeout=10) == rep_frame

    response = await client2.post(f"/console/api/handoffs/{handoff_id}/hangup", json={})
    assert response.status == 200
    assert isinstance(await asyncio.wait_for(anext(events), timeout=10), Ended)
    await call.close()
    await ws1.close()
    await ws2.close()


async def test_accept_needs_websocket(site: ConsoleSite, make_client) -> None:  # type: ignore[no-untyped-def]
    """Accept without the console WebSocket is rejected with 409."""
    client = await make_client()
    await login(client, "rep1")
    await client.post("/console/api/presence", json={"status": "available"})
    handoff_id = await site.call_queue.request(fraud_request("call-n"))
    response = await client.post(f"/console/api/handoffs/{handoff_id}/accept", json={})
    assert response.status == 409
    assert "WebSocket" in (await response.json())["error"]


async def test_closed_websocket_requeues_call(site: ConsoleSite, make_client) -> None:  # type: ignore[no-untyped-def]
    """Closing the console mid-call emits RepDisconnected and the handoff waits again."""
    client, ws = await available_rep(make_client, "rep1")
    handoff_id = await site.call_queue.request(fraud_request("call-d"))
    await next_text(ws, "offer")
    assert (await client.post(f"/console/api/handoffs/{handoff_id}/accept", json={})).status == 200
    events = site.call_queue.events(handoff_id)
    assert isinstance(await anext(events), Offered)
    assert isinstance(await asyncio.wait_for(anext(events), timeout=10), Accepted)
    await ws.close()
    disconnected = await asyncio.wait_for(anext(events), timeout=10)
    assert isinstance(disconnected, RepDisconnected)
    assert await site.call_queue.position(handoff_id) == 1
    assert await site.call_queue.presence("rep1") is None


async def test_disposition_and_notes_saved(site: ConsoleSite, make_client) -> None:  # type: ignore[no-untyped-def]
    """A disposition and masked notes are stored under the call id."""
    client = await make_client()
    await login(client, "rep1")
    response = await client.post(
        "/console/api/calls/call-77/disposition",
        json={"disposition": "card_blocked", "notes": "已冻结，客户手机13812345678", "handoff_id": "h-77"},
    )
    assert response.status == 200
    stored = await site.console.notes.get_disposition("call-77")
    assert stored is not None
    assert stored.disposition == "card_blocked"
    assert stored.rep_id == "rep1"
    assert stored.handoff_id == "h-77"
    assert "13812345678" not in stored.notes
    assert "[PHONE]" in stored.notes
    response = await client.post("/console/api/calls/call-77/disposition", json={"disposition": "sold"})
    assert response.status == 400
    assert "'sold'" in (await response.json())["error"]


async def test_correction_reaches_review_queue(site: ConsoleSite, make_client) -> None:  # type: ignore[no-untyped-def]
    """A rep's correction appears in /console/reviews for designers only."""
    rep = await make_client()
    await login(rep, "rep1")
    response = await rep.post(
        "/console/api/calls/call-9/correction",
        json={"bot_text": "您的卡没有问题", "corrected_text": "我帮您转接反欺诈专员核实这笔交易", "handoff_id": "h-9"},
    )
    assert response.status == 201
    assert (await rep.get("/console/reviews")).status == 403
    assert (await rep.post("/console/api/calls/call-9/correction", json={"corrected_text": " "})).status == 400

    designer = await make_client()
    await login(designer, "designer")
    reviews = await (await designer.get("/console/reviews")).json()
    assert reviews["reviews"][0]["corrected_text"] == "我帮您转接反欺诈专员核实这笔交易"
    assert reviews["reviews"][0]["call_id"] == "call-9"
    assert reviews["reviews"][0]["rep_id"] == "rep1"
    page = await designer.get("/console/reviews", headers={"Accept": "text/html"})
    assert page.status == 200
    assert "纠错审核队列" in await page.text()


async def test_unanswered_handoff_times_out(site: ConsoleSite, make_client) -> None:  # type: ignore[no-untyped-def]
    """With the only rep away, a handoff ends with TimedOut and leaves the rep's queue."""
    client = await make_client()
    await login(client, "rep1")
    ws = await client.ws_connect("/console/ws")
    await next_text(ws, "hello")
    await client.post("/console/api/presence", json={"status": "away"})
    handoff_id = await site.call_queue.request(fraud_request("call-t", wait_timeout_s=0.5))
    events = site.call_queue.events(handoff_id)
    timed_out = await asyncio.wait_for(anext(events), timeout=10)
    assert isinstance(timed_out, TimedOut)
    queue = await (await client.get("/console/api/queue")).json()
    assert queue["handoffs"] == []
    await ws.close()
