"""Streaming chat client for any OpenAI-compatible server, with the timeouts a phone call needs.

A caller hears silence while the model thinks, so `LlmClient.stream_chat` bounds two waits:

- first-token timeout: from sending the request to the first non-empty piece of content.
  It covers connecting, queueing and prompt processing on the server.
- idle timeout: the longest gap between two chunks once content has started.

A failure before any content was yielded (connect error, HTTP 429 or 5xx, first-token timeout,
a stream that ends with nothing) is retried once by default. A failure after content was yielded
is raised, because the caller has already used the text. The openai client's own retries are
off, so these are the only retries.

A stream is complete when a chunk carries `finish_reason`. One that ends without it, whether
or not the server sent `data: [DONE]`, is truncated and raises LlmResponseError. The openai
package stops at `[DONE]` and does not report whether it came, so `finish_reason` is the signal.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import openai
import pydantic

from voicebot.errors import ConfigError, UpstreamError

logger = logging.getLogger(__name__)

ChatMessage = dict[str, str]


class LlmError(UpstreamError):
    """An LLM server request failed. `retryable` is True when the same request may succeed later."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class LlmTimeoutError(LlmError):
    """No first token, or no next chunk, arrived within the configured time."""

    def __init__(self, message: str, *, stage: str, retryable: bool = True) -> None:
        super().__init__(message, retryable=retryable)
        self.stage = stage  # "first_token" or "idle"


class LlmUnavailableError(LlmError):
    """The server could not be reached or returned an HTTP error status."""

    def __init__(self, message: str, *, retryable: bool, status_code: int | None = None) -> None:
        super().__init__(message, retryable=retryable)
        self.status_code = status_code


class LlmResponseError(LlmError):
    """The server sent a malformed chunk or ended the stream before the answer was finished."""


@dataclass(frozen=True)
class ModelRouter:
    """Picks the small model for short single questions and the large one for everything else.

    A turn is simple when it has at most `max_simple_chars` characters (spaces and punctuation
    excluded) and at most `max_simple_questions` questions. Both models may be the same name.
    """

    small_model: str
    large_model: str
    max_simple_chars: int = 30
    max_simple_questions: int = 1

    def choose(self, turn_text: str) -> str:
        """Return the model name for `turn_text`."""
        return choose_model(
            turn_text,
            small_model=self.small_model,
            large_model=self.large_model,
            max_simple_chars=self.max_simple_chars,
            max_simple_questions=self.max_simple_questions,
        )


# Question words of Mandarin and Cantonese. Transcripts usually come without punctuation, so
# each occurrence counts as one question.
_QUESTION_WORDS = re.compile(
    r"怎么|怎样|如何|为什么|为何|多少|几多|几时|什么|啥|哪|能不能|可不可以|可以吗|有没有|是不是|"
    r"吗|呢|点样|点解|乜嘢|咩|边度|边个|有冇|系咪|得唔得|可唔可以"
)
_QUESTION_MARKS = re.compile(r"[？?]")
_NOT_COUNTED = re.compile(r"[\s，。！？；、,.!?;:：\"'“”‘’（）()]")


def count_questions(text: str) -> int:
    """Estimate the number of questions in `text`: question marks or question words, whichever is more."""
    return max(len(_QUESTION_MARKS.findall(text)), len(_QUESTION_WORDS.findall(text)))


def choose_model(
    turn_text: str,
    *,
    small_model: str,
    large_model: str,
    max_simple_chars: int = 30,
    max_simple_questions: int = 1,
) -> str:
    """Return `small_model` for a short turn with at most one question, else `large_model`."""
    length = len(_NOT_COUNTED.sub("", turn_text))
    if length > max_simple_chars or count_questions(turn_text) > max_simple_questions:
        return large_model
    return small_model


class LlmClient:
    """Stream chat completions from one OpenAI-compatible base URL.

    `base_url` ends in `/v1` for llama.cpp, vLLM, Ollama and OpenAI itself. Local servers
    ignore `api_key`, but the openai package requires a non-empty one.
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str = "not-needed",
        first_token_timeout_s: float = 5.0,
        idle_timeout_s: float = 3.0,
        connect_timeout_s: float = 2.0,
        retries: int = 1,
        retry_delay_s: float = 0.1,
    ) -> None:
        # The defaults bound the silence a caller hears: after about 5 s without speech a caller
        # assumes the line is dead. Slow local servers (CPU only) need larger values.
        for name, value in (
            ("first_token_timeout_s", first_token_timeout_s),
            ("idle_timeout_s", idle_timeout_s),
            ("connect_timeout_s", connect_timeout_s),
        ):
            if value <= 0:
                raise ConfigError(f"LlmClient {name} must be positive seconds, got {value}")
        if retries < 0:
            raise ConfigError(f"LlmClient retries must be 0 or more, got {retries}")
        self.base_url = base_url
        self.first_token_timeout_s = first_token_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.retries = retries
        self.retry_delay_s = retry_delay_s
        # The read timeout is a backstop only: the asyncio timeouts in stream_chat are shorter.
        read_timeout_s = max(first_token_timeout_s, idle_timeout_s) + 5.0
        self._client = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=api_key or "not-needed",
            max_retries=0,
            timeout=openai.Timeout(read_timeout_s, connect=connect_timeout_s),
        )

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.close()

    async def __aenter__(self) -> LlmClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str,
        max_tokens: int = 200,
        temperature: float = 0.2,
    ) -> AsyncIterator[str]:
        """Yield pieces of the assistant's reply as the server streams them.

        Raises LlmTimeoutError, LlmUnavailableError or LlmResponseError after the retries are
        used up, or at once when content was already yielded.
        """
        attempt = 0
        while True:
            attempt += 1
            yielded = False
            try:
                async for piece in self._stream_once(messages, model=model, max_tokens=max_tokens, temperature=temperature):
                    yielded = True
                    yield piece
                return
            except LlmError as e:
                if yielded or not e.retryable or attempt > self.retries:
                    logger.warning(
                        "LLM request to %s (model %s) failed on attempt %d: %s: %s",
                        self.base_url, model, attempt, type(e).__name__, e,
                    )
                    raise
                logger.warning(
                    "LLM request to %s (model %s) failed on attempt %d, retrying: %s: %s",
                    self.base_url, model, attempt, type(e).__name__, e,
                )
            await asyncio.sleep(self.retry_delay_s)

    async def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str,
        max_tokens: int = 200,
        temperature: float = 0.2,
    ) -> str:
        """Return the whole reply of `stream_chat` as one string."""
        pieces = [
            piece
            async for piece in self.stream_chat(messages, model=model, max_tokens=max_tokens, temperature=temperature)
        ]
        return "".join(pieces)

    async def _stream_once(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str,
        max_tokens: int,
        temperature: float,
    ) -> AsyncIterator[str]:
        first_token_deadline = time.monotonic() + self.first_token_timeout_s
        try:
            async with asyncio.timeout_at(_loop_time(first_token_deadline)):
                stream = await self._client.chat.completions.create(
                    model=model,
                    messages=list(messages),  # type: ignore[arg-type]
                    max_tokens=max_tokens,
                    temperature=temperature,
                    stream=True,
                )
        except TimeoutError as e:
            raise self._first_token_timeout() from e
        except openai.APIError as e:
            raise _wrap_api_error(e, self.base_url) from e

        try:
            started = False
            finished = False
            while True:
                if started:
                    timeout_s = self.idle_timeout_s
                else:
                    timeout_s = max(0.0, first_token_deadline - time.monotonic())
                try:
                    chunk = await asyncio.wait_for(anext(stream), timeout=timeout_s)
                except StopAsyncIteration:
                    break
                except TimeoutError as e:
                    if started:
                        raise LlmTimeoutError(
                            f"LLM server at {self.base_url} sent no chunk for {self.idle_timeout_s} s in the middle "
                            "of a reply. Check the server load or raise idle_timeout_s.",
                            stage="idle",
                        ) from e
                    raise self._first_token_timeout() from e
                except openai.APIError as e:
                    raise _wrap_api_error(e, self.base_url) from e
                except (ValueError, TypeError, pydantic.ValidationError) as e:
                    # json.JSONDecodeError is a ValueError: the SSE data line was not JSON.
                    raise LlmResponseError(
                        f"LLM server at {self.base_url} sent a malformed stream chunk ({type(e).__name__}: {e}). "
                        "Check that the base URL points at an OpenAI-compatible chat completions API.",
                        retryable=False,
                    ) from e

                content, finish_reason = _read_chunk(chunk, self.base_url)
                if content:
                    started = True
                    yield content
                if finish_reason is not None:
                    finished = True
            if not finished:
                raise LlmResponseError(
                    f"LLM stream from {self.base_url} ended without a finish_reason: the connection was closed "
                    "before the reply was complete.",
                    retryable=not started,
                )
        finally:
            await stream.close()

    def _first_token_timeout(self) -> LlmTimeoutError:
        return LlmTimeoutError(
            f"LLM server at {self.base_url} sent no first token within {self.first_token_timeout_s} s. "
            "Check the server load or raise first_token_timeout_s.",
            stage="first_token",
        )


def _loop_time(monotonic_deadline: float) -> float:
    """Convert a time.monotonic() deadline to the event loop's clock."""
    return asyncio.get_running_loop().time() + (monotonic_deadline - time.monotonic())


def _read_chunk(chunk: Any, base_url: str) -> tuple[str, str | None]:
    """Return (content, finish_reason) of one chat.completion.chunk, checking its shape."""
    choices = getattr(chunk, "choices", None)
    if not isinstance(choices, list):
        raise LlmResponseError(
            f"LLM server at {base_url} sent a malformed stream chunk without a `choices` list. "
            "Check that the base URL points at an OpenAI-compatible chat completions API.",
            retryable=False,
        )
    if not choices:
        # Some servers send a last chunk with only `usage` and no choices.
        return "", None
    choice = choices[0]
    delta = getattr(choice, "delta", None)
    content = getattr(delta, "content", None) if delta is not None else None
    finish_reason = getattr(choice, "finish_reason", None)
    if content is not None and not isinstance(content, str):
        raise LlmResponseError(
            f"LLM server at {base_url} sent a stream chunk whose delta.content is {type(content).__name__}, "
            "expected a string.",
            retryable=False,
        )
    return content or "", finish_reason


def _wrap_api_error(error: openai.APIError, base_url: str) -> LlmError:
    if isinstance(error, openai.APITimeoutError):
        return LlmUnavailableError(
            f"LLM server at {base_url} timed out: {error}. Check that the server is running.", retryable=True
        )
    if isinstance(error, openai.APIConnectionError):
        return LlmUnavailableError(
            f"LLM server at {base_url} could not be reached: {error}. Check the base URL and that the server is running.",
            retryable=True,
        )
    if isinstance(error, openai.APIStatusError):
        status = error.status_code
        retryable = status == 429 or status >= 500
        fix = "The server is overloaded or failing, retry later." if retryable else (
            "Check the API key and the model name."
        )
        return LlmUnavailableError(
            f"LLM server at {base_url} returned HTTP {status}: {error.message}. {fix}",
            retryable=retryable,
            status_code=status,
        )
    # An `error` object inside the stream, which the openai package raises as a plain APIError.
    return LlmResponseError(f"LLM server at {base_url} reported an error in the stream: {error.message}", retryable=True)


# Sentence ends for speech: Chinese and ASCII full stops of questions, exclamations and
# semicolons, and line breaks. A closing quote or bracket stays with its sentence.
_SENTENCE_END = re.compile(r"[。！？；!?;\n]+[」』”’）)\]]*")


async def sentences(token_stream: AsyncIterator[str]) -> AsyncIterator[str]:
    """Yield complete sentences from a stream of text pieces as soon as each one ends.

    A sentence ends at 。！？；!?; or a line break. Whitespace around sentences is dropped, and
    sentences with no text are skipped. The text after the last sentence end is yielded when the
    stream ends. The ASCII full stop is not a sentence end because it is also a decimal point.
    """
    buffer = ""
    async for piece in token_stream:
        buffer += piece
        last_end = 0
        for match in _SENTENCE_END.finditer(buffer):
            # A run of ends at the very end of the buffer may continue with the next piece,
            # for example "！" followed by "」", so it waits for more text.
            if match.end() == len(buffer) and buffer[-1] not in "\n":
                continue
            sentence = buffer[last_end:match.end()].strip()
            last_end = match.end()
            if sentence:
                yield sentence
        buffer = buffer[last_end:]
    rest = buffer.strip()
    if rest:
        yield rest
