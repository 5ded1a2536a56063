"""Per-call record in Redis: call metadata and turns that other processes can read.

The layout is described in docs/call-record.md. In short, for call id ``C`` and the
default prefix:

- ``voicebot:call:C`` is a hash of call metadata with a ``schema_version`` field.
- ``voicebot:call:C:turns`` is a hash from the turn index (decimal string) to the turn
  as a JSON object.

Every write sets the TTL of both keys again. Text is masked with `mask_pii` before it
is stored. Writes that fail after the retries are kept in a bounded in-memory spool and
written, in order, before the next write or by `flush()`. Reads do not see spooled
writes and raise `UpstreamError` when Redis is unreachable.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

import redis.asyncio as redis_asyncio
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from voicebot.errors import ConfigError, UpstreamError
from voicebot.privacy import mask_pii

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1

_TRANSIENT_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)

# Merges a JSON object of fields into the JSON turn stored at one hash field, in one
# atomic step. KEYS[1] is the turns hash, ARGV[1] the index, ARGV[2] the fields as JSON
# and ARGV[3] the TTL in seconds. Returns 0 when the turn does not exist.
# NOTE: cjson re-encodes every number of the turn with 14 significant digits, so epoch
# times in an updated turn keep 0.1 ms.
_UPDATE_TURN_SCRIPT = """
local stored = redis.call('HGET', KEYS[1], ARGV[1])
if not stored then
  return 0
end
local turn = cjson.decode(stored)
for key, value in pairs(cjson.decode(ARGV[2])) do
  turn[key] = value
end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(turn))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""


@dataclass
class TurnRecord:
    """One caller or bot turn of a call. Times are epoch seconds."""

    index: int
    role: Literal["caller", "bot"]
    text: str
    started_at: float
    ended_at: float | None = None
    confidence: float | None = None
    language: str | None = None
    topic: str | None = None
    kind: str | None = None
    interrupted: bool = False
    heard_text: str | None = None
    # Milliseconds per pipeline stage, for example turn_detect, asr, respond,
    # tts_first_audio and end_to_end.
    latency_ms: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: str) -> TurnRecord:
        """Build a turn from its stored JSON, ignoring fields this version does not know."""
        values = json.loads(data)
        known = {item.name for item in fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})


@dataclass
class CallRecord:
    """Metadata of one call and its turns in index order. Times are epoch seconds."""

    call_id: str
    stream_sid: str
    call_sid: str
    caller: str
    language: str
    centre: str
    started_at: float
    ended_at: float | None = None
    end_reason: str | None = None
    custom_parameters: dict[str, str] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    turns: list[TurnRecord] = field(default_factory=list)
    prompt_version: str = ""  # the prompt and dialog set version the call ran on, "" before it is known


_MASKED_TURN_FIELDS = ("text", "heard_text")


def _masked_turn_fields(values: dict[str, Any]) -> dict[str, Any]:
    masked = dict(values)
    for name in _MASKED_TURN_FIELDS:
        if isinstance(masked.get(name), str):
            masked[name] = mask_pii(masked[name])
    return masked


@dataclass
class _Write:
    """A write waiting in the spool: the operation name and its arguments."""

    name: str
    call_id: str
    payload: dict[str, Any]


class CallRecordStore:
    """Writes and reads call records in Redis with retries and an in-memory spool."""

    def __init__(
        self,
        *,
        url: str = "redis://127.0.0.1:6379/0",
        ttl_s: int = 7 * 24 * 3600,
        key_prefix: str = "voicebot:",
        retry_attempts: int = 3,
        retry_backoff_s: float = 0.05,
        spool_max_records: int = 10000,
        socket_timeout_s: float = 2.0,
    ) -> None:
        """Create the store. No connection is made until `connect()`.

        Args:
            url: Redis URL.
            ttl_s: Time to live of each call's keys in seconds, set again on every write.
            key_prefix: Prefix of every key.
            retry_attempts: Attempts per write before it goes to the spool.
            retry_backoff_s: Wait before the second attempt in seconds, doubled after
                each further failure.
            spool_max_records: Maximum number of writes kept while Redis is unreachable.
                Further writes are dropped and logged.
            socket_timeout_s: Timeout of each Redis connect and command in seconds.

        Raises:
            ConfigError: If a number is out of range.
        """
        if ttl_s <= 0:
            raise ConfigError(f"Invalid call record ttl_s {ttl_s}: use a positive number of seconds.")
        if retry_attempts < 1:
            raise ConfigError(f"Invalid call record retry_attempts {retry_attempts}: use 1 or more.")
        if spool_max_records < 0:
            raise ConfigError(
                f"Invalid call record spool_max_records {spool_max_records}: use 0 or more."
            )
        self._url = url
        self._ttl_s = ttl_s
        self._key_prefix = key_prefix
        self._retry_attempts = retry_attempts
        self._retry_backoff_s = retry_backoff_s
        self._spool_max_records = spool_max_records
        self._socket_timeout_s = socket_timeout_s
        self._spool: collections.deque[_Write] = collections.deque()
        self._dropped_count = 0
        self._lock = asyncio.Lock()
        self._client: redis_asyncio.Redis | None = None

    @property
    def spooled_count(self) -> int:
        """Number of writes waiting in the spool."""
        return len(self._spool)

    @property
    def dropped_count(self) -> int:
        """Number of writes dropped because the spool was full."""
        return self._dropped_count

    def call_key(self, call_id: str) -> str:
        """Return the key of the call metadata hash."""
        return f"{self._key_prefix}call:{call_id}"

    def turns_key(self, call_id: str) -> str:
        """Return the key of the turns hash."""
        return f"{self._key_prefix}call:{call_id}:turns"

    async def connect(self) -> None:
        """Open the client and check that Redis replies to PING.

        Raises:
            UpstreamError: If Redis cannot be reached at the URL.
        """
        self._client = redis_asyncio.from_url(
            self._url,
            decode_responses=True,
            socket_connect_timeout=self._socket_timeout_s,
            socket_timeout=self._socket_timeout_s,
        )
        try:
            await self._client.ping()
        except _TRANSIENT_ERRORS as error:
            await self._client.aclose()
            self._client = None
            raise UpstreamError(
                f"Redis is unreachable at {self._url}: start redis-server there or set "
                "the call record URL to a running Redis."
            ) from error
        logger.info("Call record store connected to %s", self._url)

    async def close(self) -> None:
        """Try to write spooled records once, then close the client."""
        if self._client is None:
            return
        if self._spool:
            await self.flush()
        if self._spool:
            logger.error("Closing call record store with %s writes still spooled", len(self._spool))
        await self._client.aclose()
        self._client = None

    async def start_call(
        self,
        call_id: str,
        *,
        stream_sid: str,
        call_sid: str,
        caller: str,
        language: str,
        centre: str,
        started_at: float,
        custom_parameters: dict[str, str] | None = None,
    ) -> None:
        """Store the metadata of a new call. The caller number and parameter values are masked."""
        metadata = {
            "schema_version": str(SCHEMA_VERSION),
            "call_id": call_id,
            "stream_sid": stream_sid,
            "call_sid": call_sid,
            "caller": mask_pii(caller),
            "language": language,
            "centre": centre,
            "started_at": repr(float(started_at)),
            "custom_parameters": json.dumps(
                {key: mask_pii(str(value)) for key, value in (custom_parameters or {}).items()},
                ensure_ascii=False,
            ),
        }
        await self._write(_Write("hset_call", call_id, metadata))

    async def append_turn(self, call_id: str, turn: TurnRecord) -> None:
        """Store a turn under its index, with text and heard_text masked."""
        values = _masked_turn_fields(asdict(turn))
        await self._write(_Write("set_turn", call_id, {"index": turn.index, "turn": values}))

    async def update_turn(self, call_id: str, index: int, **fields_to_set: Any) -> None:
        """Change fields of a stored turn atomically, for example interrupted and heard_text.

        Raises:
            ValueError: If a field name is not a TurnRecord field or is `index`.
        """
        known = {item.name for item in fields(TurnRecord)} - {"index"}
        unknown = sorted(set(fields_to_set) - known)
        if unknown:
            raise ValueError(
                f"Invalid turn fields {unknown}: use fields of TurnRecord except index "
                f"({', '.join(sorted(known))})."
            )
        values = _masked_turn_fields(fields_to_set)
        await self._write(_Write("update_turn", call_id, {"index": index, "fields": values}))

    async def set_prompt_version(self, call_id: str, version: str) -> None:
        """Store the prompt and dialog set version (a label such as v3-1a2b3c4d5e6f) that the call runs on."""
        await self._write(_Write("hset_call", call_id, {"prompt_version": version}))

    async def end_call(self, call_id: str, *, ended_at: float, reason: str) -> None:
        """Store the end time and the reason the call ended."""
        await self._write(
            _Write("hset_call", call_id, {"ended_at": repr(float(ended_at)), "end_reason": reason})
        )

    async def get_call(self, call_id: str) -> CallRecord | None:
        """Read a call with its turns, or return None if no record exists.

        Raises:
            UpstreamError: If Redis cannot be reached.
        """
        client = self._require_client()
        try:
            metadata = await client.hgetall(self.call_key(call_id))
        except _TRANSIENT_ERRORS as error:
            raise self._read_error(error) from error
        if not metadata:
            return None
        turns = await self.list_turns(call_id)
        ended_at = metadata.get("ended_at")
        return CallRecord(
            call_id=metadata.get("call_id", call_id),
            stream_sid=metadata.get("stream_sid", ""),
            call_sid=metadata.get("call_sid", ""),
            caller=metadata.get("caller", ""),
            language=metadata.get("language", ""),
            centre=metadata.get("centre", ""),
            started_at=float(metadata.get("started_at", "0")),
            ended_at=float(ended_at) if ended_at is not None else None,
            end_reason=metadata.get("end_reason"),
            custom_parameters=json.loads(metadata.get("custom_parameters", "{}")),
            schema_version=int(metadata.get("schema_version", "0")),
            turns=turns,
            prompt_version=metadata.get("prompt_version", ""),
        )

    async def list_turns(self, call_id: str) -> list[TurnRecord]:
        """Read the turns of a call in index order.

        Raises:
            UpstreamError: If Redis cannot be reached.
        """
        client = self._require_client()
        try:
            stored = await client.hgetall(self.turns_key(call_id))
        except _TRANSIENT_ERRORS as error:
            raise self._read_error(error) from error
        turns = [TurnRecord.from_json(data) for data in stored.values()]
        return sorted(turns, key=lambda turn: turn.index)

    async def flush(self) -> int:
        """Write spooled records in order and return how many are still spooled."""
        async with self._lock:
            await self._flush_spool()
            return len(self._spool)

    def _require_client(self) -> redis_asyncio.Redis:
        if self._client is None:
            raise UpstreamError("Call record store is not connected: call connect() first.")
        return self._client

    def _read_error(self, error: Exception) -> UpstreamError:
        return UpstreamError(
            f"Reading the call record from Redis at {self._url} failed ({type(error).__name__}): "
            "check that Redis is running and retry."
        )

    async def _write(self, write: _Write) -> None:
        self._require_client()
        async with self._lock:
            if self._spool:
                await self._flush_spool()
            if not self._spool and await self._try_write(write):
                return
            self._add_to_spool(write)

    async def _flush_spool(self) -> None:
        flushed = 0
        while self._spool:
            if not await self._try_write(self._spool[0]):
                break
            self._spool.popleft()
            flushed += 1
        if flushed:
            logger.info(
                "Flushed %s spooled call record writes, %s still spooled", flushed, len(self._spool)
            )

    def _add_to_spool(self, write: _Write) -> None:
        if len(self._spool) >= self._spool_max_records:
            self._dropped_count += 1
            logger.error(
                "Call record spool is full (%s writes): dropped a %s write for call %s, "
                "%s dropped in total",
                self._spool_max_records,
                write.name,
                write.call_id,
                self._dropped_count,
            )
            return
        self._spool.append(write)
        logger.warning(
            "Spooled a %s write for call %s, %s writes spooled", write.name, write.call_id, len(self._spool)
        )

    async def _try_write(self, write: _Write) -> bool:
        """Run one write with retries and return whether it reached Redis."""
        delay_s = self._retry_backoff_s
        for attempt in range(1, self._retry_attempts + 1):
            try:
                await self._execute(write)
                return True
            except _TRANSIENT_ERRORS as error:
                logger.warning(
                    "Call record %s write for call %s failed (attempt %s of %s): %s",
                    write.name,
                    write.call_id,
                    attempt,
                    self._retry_attempts,
                    type(error).__name__,
                )
            if attempt < self._retry_attempts:
                await asyncio.sleep(delay_s)
                delay_s *= 2
        return False

    async def _execute(self, write: _Write) -> None:
        client = self._require_client()
        call_key = self.call_key(write.call_id)
        turns_key = self.turns_key(write.call_id)
        if write.name == "hset_call":
            async with client.pipeline(transaction=True) as pipe:
                pipe.hset(call_key, mapping=write.payload)
                pipe.expire(call_key, self._ttl_s)
                pipe.expire(turns_key, self._ttl_s)
                await pipe.execute()
        elif write.name == "set_turn":
            turn_json = json.dumps(write.payload["turn"], ensure_ascii=False)
            async with client.pipeline(transaction=True) as pipe:
                pipe.hset(turns_key, str(write.payload["index"]), turn_json)
                pipe.expire(turns_key, self._ttl_s)
                pipe.expire(call_key, self._ttl_s)
                await pipe.execute()
        elif write.name == "update_turn":
            fields_json = json.dumps(write.payload["fields"], ensure_ascii=False)
            updated = await client.eval(
                _UPDATE_TURN_SCRIPT, 1, turns_key, str(write.payload["index"]), fields_json, str(self._ttl_s)
            )
            await client.expire(call_key, self._ttl_s)
            if not updated:
                logger.error(
                    "Turn %s of call %s not found: update ignored", write.payload["index"], write.call_id
                )
        else:
            raise AssertionError(f"unknown call record write {write.name}")
