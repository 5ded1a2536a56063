"""Tests of CallRecordStore against real Redis servers on 127.0.0.1."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as redis_asyncio

from voicebot.callrecord import SCHEMA_VERSION, CallRecordStore, TurnRecord
from voicebot.errors import UpstreamError

pytestmark = pytest.mark.timeout(60)

MAIN_URL = "redis://127.0.0.1:6379/0"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_redis(port: int) -> subprocess.Popen[bytes]:
    """Start a throwaway redis-server on a port and wait until it accepts connections."""
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                return process
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"redis-server on port {port} exited with code {process.returncode}")
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"redis-server on port {port} did not accept connections")


def _stop_redis(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def key_prefix() -> str:
    return f"voicebot-test:{uuid.uuid4().hex}:"


@pytest.fixture
async def store(key_prefix: str) -> AsyncIterator[CallRecordStore]:
    store = CallRecordStore(url=MAIN_URL, key_prefix=key_prefix, ttl_s=3600)
    try:
        await store.connect()
    except UpstreamError as error:
        pytest.skip(f"Redis at {MAIN_URL} is not running: {error}")
    yield store
    await store.close()
    cleaner = redis_asyncio.from_url(MAIN_URL)
    keys = [key async for key in cleaner.scan_iter(match=f"{key_prefix}*")]
    if keys:
        await cleaner.delete(*keys)
    await cleaner.aclose()


@pytest.fixture
def spare_redis() -> Iterator[tuple[int, list[subprocess.Popen[bytes]]]]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not on PATH")
    port = _free_port()
    processes = [_start_redis(port)]
    yield port, processes
    for process in processes:
        if process.poll() is None:
            _stop_redis(process)


async def _start_sample_call(store: CallRecordStore, call_id: str) -> None:
    await store.start_call(
        call_id,
        stream_sid="MZ0001",
        call_sid="CA0001",
        caller="+8613812345678",
        language="zh-CN",
        centre="shanghai",
        started_at=1733300000.25,
        custom_parameters={"channel": "hotline", "note": "回拨13912345678"},
    )


def _caller_turn(index: int = 0) -> TurnRecord:
    return TurnRecord(
        index=index,
        role="caller",
        text="我的卡号是6222021381234567，年费多少？",
        started_at=1733300001.5,
        ended_at=1733300003.0,
        confidence=0.92,
        language="zh",
        topic="annual_fee",
        kind="faq",
        latency_ms={"turn_detect": 180.0, "asr": 420.0},
    )


def _bot_turn(index: int = 1) -> TurnRecord:
    return TurnRecord(
        index=index,
        role="bot",
        text="尾号4567的卡年费是200元。",
        started_at=1733300003.5,
        language="zh",
        topic="annual_fee",
        kind="answer",
        latency_ms={"respond": 35.0, "tts_first_audio": 210.0, "end_to_end": 850.0},
    )


async def test_round_trip(store):
    """A call with metadata, turns, an update and an end reads back as written."""
    await _start_sample_call(store, "call-1")
    await store.append_turn("call-1", _caller_turn())
    await store.append_turn("call-1", _bot_turn())
    await store.update_turn("call-1", 1, interrupted=True, heard_text="尾号4567的卡")
    await store.end_call("call-1", ended_at=1733300010.75, reason="caller_hangup")

    record = await store.get_call("call-1")

    assert record is not None
    assert record.schema_version == SCHEMA_VERSION
    assert record.stream_sid == "MZ0001"
    assert record.call_sid == "CA0001"
    assert record.language == "zh-CN"
    assert record.centre == "shanghai"
    assert record.started_at == 1733300000.25
    assert record.ended_at == 1733300010.75
    assert record.end_reason == "caller_hangup"
    assert record.custom_parameters["channel"] == "hotline"
    assert [turn.index for turn in record.turns] == [0, 1]
    assert record.turns[0].latency_ms == {"turn_detect": 180.0, "asr": 420.0}
    assert record.turns[0].confidence == 0.92
    assert record.turns[1].interrupted is True
    assert record.turns[1].heard_text == "尾号[CARD]的卡"
    assert record.turns[1].latency_ms["end_to_end"] == 850.0
    assert await store.list_turns("call-1") == record.turns


async def test_missing_call_returns_none(store):
    """Reading a call that was never written returns None and no turns."""
    assert await store.get_call("no-such-call") is None
    assert await store.list_turns("no-such-call") == []


async def test_personal_data_masked(store, key_prefix):
    """Caller number, parameters, turn text and heard_text are stored masked."""
    await _start_sample_call(store, "call-2")
    await store.append_turn("call-2", _caller_turn())
    await store.update_turn("call-2", 0, heard_text="手机13812345678")

    raw = redis_asyncio.from_url(MAIN_URL, decode_responses=True)
    metadata = await raw.hgetall(f"{key_prefix}call:call-2")
    turns = await raw.hgetall(f"{key_prefix}call:call-2:turns")
    await raw.aclose()

    stored_text = " ".join(metadata.values()) + " ".join(turns.values())
    assert "13812345678" not in stored_text
    assert "13912345678" not in stored_text
    assert "6222021381234567" not in stored_text
    assert metadata["caller"] == "[PHONE]"
    record = await store.get_call("call-2")
    assert record.turns[0].text == "我的卡号是[CARD]，年费多少？"
    assert record.turns[0].heard_text == "手机[PHONE]"


async def test_ttl_set_on_both_keys(store, key_prefix):
    """Both keys get the configured TTL, and a later write sets it again."""
    await _start_sample_call(store, "call-3")
    await store.append_turn("call-3", _caller_turn())
    raw = redis_asyncio.from_url(MAIN_URL)
    call_key = f"{key_prefix}call:call-3"
    turns_key = f"{key_prefix}call:call-3:turns"

    assert 3500 < await raw.ttl(call_key) <= 3600
    assert 3500 < await raw.ttl(turns_key) <= 3600

    await raw.expire(call_key, 100)
    await raw.expire(turns_key, 100)
    await store.update_turn("call-3", 0, topic="fee_waiver")

    assert await raw.ttl(call_key) > 100
    assert await raw.ttl(turns_key) > 100
    await raw.aclose()


async def test_second_client_reads_record(store, key_prefix):
    """An independent store with its own connection reads what the first one wrote."""
    await _start_sample_call(store, "call-4")
    await store.append_turn("call-4", _caller_turn())

    reader = CallRecordStore(url=MAIN_URL, key_prefix=key_prefix)
    await reader.connect()
    record = await reader.get_call("call-4")
    await reader.close()

    assert record is not None
    assert record.caller == "[PHONE]"
    assert len(record.turns) == 1
    assert record.turns[0].topic == "annual_fee"


async def test_update_turn_rejects_unknown_field(store):
    """update_turn with a field TurnRecord lacks raises ValueError naming it."""
    with pytest.raises(ValueError, match="colour"):
        await store.update_turn("call-5", 0, colour="red")


async def test_writes_spool_while_redis_down(spare_redis, key_prefix):
    """Writes during a Redis outage are spooled and written by flush after a restart."""
    port, processes = spare_redis
    url = f"redis://127.0.0.1:{port}/0"
    store = CallRecordStore(url=url, key_prefix=key_prefix, retry_attempts=2, retry_backoff_s=0.01)
    await store.connect()
    _stop_redis(processes[0])

    await _start_sample_call(store, "call-6")
    await store.append_turn("call-6", _caller_turn())
    await store.append_turn("call-6", _bot_turn())
    await store.update_turn("call-6", 1, interrupted=True, heard_text="尾号")
    await store.end_call("call-6", ended_at=1733300020.0, reason="bot_hangup")

    assert store.spooled_count == 5
    assert await store.flush() == 5
    with pytest.raises(UpstreamError, match=str(port)):
        await store.get_call("call-6")

    processes.append(_start_redis(port))
    assert await store.flush() == 0

    record = await store.get_call("call-6")
    await store.close()
    assert record is not None
    assert record.end_reason == "bot_hangup"
    assert [turn.role for turn in record.turns] == ["caller", "bot"]
    assert record.turns[1].interrupted is True


async def test_spooled_writes_flush_on_next_write(spare_redis, key_prefix):
    """The first write after Redis returns also writes the spooled records before it."""
    port, processes = spare_redis
    store = CallRecordStore(url=f"redis://127.0.0.1:{port}/0", key_prefix=key_prefix, retry_attempts=1)
    await store.connect()
    _stop_redis(processes[0])
    await _start_sample_call(store, "call-7")
    assert store.spooled_count == 1

    processes.append(_start_redis(port))
    await store.append_turn("call-7", _caller_turn())

    assert store.spooled_count == 0
    record = await store.get_call("call-7")
    await store.close()
    assert record is not None
    assert len(record.turns) == 1


async def test_full_spool_drops_and_logs(spare_redis, key_prefix, caplog):
    """When the spool is full, further writes are dropped, counted and logged without text."""
    port, processes = spare_redis
    store = CallRecordStore(
        url=f"redis://127.0.0.1:{port}/0", key_prefix=key_prefix, retry_attempts=1, spool_max_records=2
    )
    await store.connect()
    _stop_redis(processes[0])

    for index in range(4):
        await store.append_turn("call-8", _caller_turn(index))

    assert store.spooled_count == 2
    assert store.dropped_count == 2
    errors = [record.getMessage() for record in caplog.records if record.levelname == "ERROR"]
    assert any("2 dropped in total" in message for message in errors)
    assert all("6222021381234567" not in record.getMessage() for record in caplog.records)
    assert all("年费" not in record.getMessage() for record in caplog.records)
    await store.close()


async def test_connect_to_closed_port_raises():
    """connect() to a port with no Redis raises UpstreamError naming the URL."""
    url = f"redis://127.0.0.1:{_free_port()}/0"
    store = CallRecordStore(url=url)

    with pytest.raises(UpstreamError, match=url) as caught:
        await store.connect()

    assert caught.value.retryable is True
