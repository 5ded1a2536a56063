"""LlmClient against a faulty OpenAI-compatible server: timeouts, retries and broken streams."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from tests.llm.faulty_server import REPLY_TEXT, FaultyServerState, build_app
from voicebot.errors import UpstreamError
from voicebot.llm.client import (
    LlmClient,
    LlmResponseError,
    LlmTimeoutError,
    LlmUnavailableError,
    ModelRouter,
    choose_model,
    count_questions,
    sentences,
)

pytestmark = pytest.mark.timeout(30)

MESSAGES = [{"role": "user", "content": "年费多少钱"}]


@pytest.fixture
async def faulty_server() -> AsyncIterator[tuple[str, FaultyServerState]]:
    state = FaultyServerState()
    runner = web.AppRunner(build_app(state), shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/v1", state
    finally:
        state.release.set()
        await runner.cleanup()


@pytest.fixture
async def client(faulty_server: tuple[str, FaultyServerState]) -> AsyncIterator[LlmClient]:
    base_url, _ = faulty_server
    llm = LlmClient(base_url=base_url, first_token_timeout_s=0.5, idle_timeout_s=0.5, retry_delay_s=0.0)
    try:
        yield llm
    finally:
        await llm.aclose()


async def collect(llm: LlmClient, model: str, pieces: list[str]) -> None:
    async for piece in llm.stream_chat(MESSAGES, model=model, max_tokens=50, temperature=0.0):
        pieces.append(piece)


async def test_stream_ok(client: LlmClient, faulty_server: tuple[str, FaultyServerState]) -> None:
    """A complete stream yields the reply in pieces with one request."""
    pieces: list[str] = []
    await collect(client, "ok", pieces)
    assert "".join(pieces) == REPLY_TEXT
    assert len(pieces) == 3
    assert faulty_server[1].requests["ok"] == 1


async def test_stall_before_first_token(client: LlmClient, faulty_server: tuple[str, FaultyServerState]) -> None:
    """A server that stalls before the first token times out, is retried once, then raises."""
    pieces: list[str] = []
    with pytest.raises(LlmTimeoutError) as caught:
        await collect(client, "stall_first", pieces)
    assert caught.value.stage == "first_token"
    assert caught.value.retryable
    assert isinstance(caught.value, UpstreamError)
    assert faulty_server[1].requests["stall_first"] == 2
    assert pieces == []


async def test_stall_mid_stream(client: LlmClient, faulty_server: tuple[str, FaultyServerState]) -> None:
    """A stall after content raises the idle timeout without a retry."""
    pieces: list[str] = []
    with pytest.raises(LlmTimeoutError) as caught:
        await collect(client, "stall_mid", pieces)
    assert caught.value.stage == "idle"
    assert "".join(pieces) == REPLY_TEXT[: len(pieces[0]) + len(pieces[1])]
    assert faulty_server[1].requests["stall_mid"] == 1


async def test_truncated_stream(client: LlmClient, faulty_server: tuple[str, FaultyServerState]) -> None:
    """A stream closed without finish_reason or [DONE] raises LlmResponseError."""
    pieces: list[str] = []
    with pytest.raises(LlmResponseError) as caught:
        await collect(client, "truncate", pieces)
    assert "ended without a finish_reason" in str(caught.value)
    assert len(pieces) == 2
    assert faulty_server[1].requests["truncate"] == 1


async def test_finish_without_done(client: LlmClient) -> None:
    """A stream with finish_reason but no [DONE] is complete."""
    pieces: list[str] = []
    await collect(client, "no_done", pieces)
    assert "".join(pieces) == REPLY_TEXT


async def test_malformed_chunk(client: LlmClient, faulty_server: tuple[str, FaultyServerState]) -> None:
    """A data line that is not JSON raises a non-retryable LlmResponseError."""
    pieces: list[str] = []
    with pytest.raises(LlmResponseError) as caught:
        await collect(client, "malformed", pieces)
    assert "malformed stream chunk" in str(caught.value)
    assert not caught.value.retryable
    assert pieces == [REPLY_TEXT[: len(pieces[0])]]
    assert faulty_server[1].requests["malformed"] == 1


async def test_chunk_without_choices(client: LlmClient, faulty_server: tuple[str, FaultyServerState]) -> None:
    """A JSON chunk without `choices` raises LlmResponseError and is not retried."""
    with pytest.raises(LlmResponseError) as caught:
        await collect(client, "no_choices", [])
    assert "choices" in str(caught.value)
    assert faulty_server[1].requests["no_choices"] == 1


async def test_server_error_then_success(client: LlmClient, faulty_server: tuple[str, FaultyServerState]) -> None:
    """HTTP 500 on the first request is retried once and the retry streams the reply."""
    pieces: list[str] = []
    await collect(client, "fail_once", pieces)
    assert "".join(pieces) == REPLY_TEXT
    assert faulty_server[1].requests["fail_once"] == 2


async def test_client_error_not_retried(client: LlmClient, faulty_server: tuple[str, FaultyServerState]) -> None:
    """HTTP 401 raises a non-retryable LlmUnavailableError after one request."""
    with pytest.raises(LlmUnavailableError) as caught:
        await collect(client, "unauthorized", [])
    assert caught.value.status_code == 401
    assert not caught.value.retryable
    assert faulty_server[1].requests["unauthorized"] == 1


async def test_connection_refused() -> None:
    """A closed port raises a retryable LlmUnavailableError after the retry."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        # The socket is bound but not listening, so connections to it are refused.
        llm = LlmClient(base_url=f"http://127.0.0.1:{port}/v1", retry_delay_s=0.0)
        try:
            with pytest.raises(LlmUnavailableError) as caught:
                await collect(llm, "ok", [])
        finally:
            await llm.aclose()
    assert caught.value.retryable
    assert caught.value.status_code is None


async def test_chat_joins_pieces(client: LlmClient) -> None:
    """chat() returns the whole streamed reply."""
    assert await client.chat(MESSAGES, model="ok") == REPLY_TEXT


async def pieces_of(*pieces: str) -> AsyncIterator[str]:
    for piece in pieces:
        yield piece


async def test_sentences_split_as_tokens_arrive() -> None:
    """Sentences end at Chinese and ASCII end marks and at line breaks."""
    stream = pieces_of("普卡年费", "每年一百元。金卡", "三百元！要", "免年费吗？", "可以\n", "好的;", "再见")
    result = [s async for s in sentences(stream)]
    assert result == ["普卡年费每年一百元。", "金卡三百元！", "要免年费吗？", "可以", "好的;", "再见"]


async def test_sentences_keep_closing_quote() -> None:
    """A closing quote after an end mark stays with its sentence, even in the next piece."""
    stream = pieces_of("他说「好。", "」然后走了。")
    result = [s async for s in sentences(stream)]
    assert result == ["他说「好。」", "然后走了。"]


async def test_sentences_keep_decimal_point() -> None:
    """An ASCII full stop inside a number does not end a sentence."""
    stream = pieces_of("费率1.", "5%，请注意。")
    result = [s async for s in sentences(stream)]
    assert result == ["费率1.5%，请注意。"]


async def test_sentences_yield_before_stream_ends() -> None:
    """The first sentence is yielded before the stream produces its last piece."""
    produced: list[str] = []

    async def stream() -> AsyncIterator[str]:
        for piece in ("第一句。", "第二", "句。", "尾巴"):
            produced.append(piece)
            yield piece

    iterator = sentences(stream())
    first = await anext(iterator)
    assert first == "第一句。"
    assert len(produced) < 4
    rest = [s async for s in iterator]
    assert rest == ["第二句。", "尾巴"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("年费多少", "small"),
        ("年费多少钱？", "small"),
        ("我想问一下年费多少钱，还有怎么免年费？", "large"),
        ("我上个月去香港旅游的时候用信用卡刷了好几笔外币消费现在账单上面的金额跟我算的不一样", "large"),
        ("怎么激活", "small"),
        ("点样激活张卡", "small"),
        ("年费几多钱，点样免？", "large"),
    ],
)
def test_choose_model(text: str, expected: str) -> None:
    """Short single questions go to the small model, long or multi-question turns to the large one."""
    assert choose_model(text, small_model="small", large_model="large") == expected


def test_model_router_settings() -> None:
    """ModelRouter applies its own limits."""
    router = ModelRouter(small_model="s", large_model="l", max_simple_chars=4)
    assert router.choose("年费多少") == "s"
    assert router.choose("年费多少钱") == "l"
    assert count_questions("年费多少？怎么免？") == 2
