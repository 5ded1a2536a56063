"""Cross-process warm-transfer queue on Redis: handoffs, rep presence, offers and events.

A call process calls `request()` and follows the handoff with `events()`. Console processes
set rep presence, list the queue and answer offers. Each state change is one Lua script
(see `voicebot.handoff.scripts`), so any number of voicebot processes can share one Redis.

Routing: waiting handoffs sort by priority (higher first), then arrival. The best waiting
handoff goes to the rep with the right skill who has been available longest, and is offered
to that rep only. A rep who declines is not offered the same handoff again. Every instance
with `run_maintenance=True` runs a sweep that expires offers, times out handoffs and notices
reps whose presence key expired, then offers waiting handoffs again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

import redis.asyncio as redis_asyncio
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from voicebot.errors import ConfigError, UpstreamError
from voicebot.handoff import scripts
from voicebot.handoff.bridge import CallBridgeEndpoint, RepBridgeEndpoint
from voicebot.handoff.models import (
    MAX_PRIORITY,
    REP_STATUSES,
    SKILLS,
    HandoffError,
    HandoffEvent,
    HandoffInfo,
    HandoffNotFoundError,
    HandoffRequest,
    HandoffStateError,
    Reason,
    RepPresence,
    ScreenPop,
    event_from_fields,
)

logger = logging.getLogger(__name__)

_TRANSIENT_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)



def new_handoff_id() -> str:
    """Return a new random handoff id (32 hex digits)."""
    return uuid.uuid4().hex

class HandoffQueue:
    """Handoff queue and rep presence shared through Redis. Use `async with` or connect/close."""

    def __init__(
        self,
        *,
        redis_url: str = "redis://127.0.0.1:6379/0",
        key_prefix: str = "voicebot:handoff:",
        presence_ttl_s: float = 15.0,
        offer_timeout_s: float = 20.0,
        wait_timeout_s: float = 180.0,
        sweep_interval_s: float = 0.5,
        event_block_s: float = 1.0,
        record_ttl_s: int = 24 * 3600,
        max_stream_entries: int = 1000,
        socket_timeout_s: float = 5.0,
        run_maintenance: bool = True,
    ) -> None:
        """Create the queue. No connection is made until `connect()`.

        Args:
            redis_url: Redis URL shared by every voicebot process.
            key_prefix: Prefix of every key; tests use a unique one.
            presence_ttl_s: A rep's presence expires this many seconds after the last heartbeat.
            offer_timeout_s: Seconds a rep has to answer an offer before it goes to another rep.
            wait_timeout_s: Seconds a handoff may wait unaccepted before it times out.
            sweep_interval_s: Seconds between maintenance sweeps.
            event_block_s: Seconds one blocking stream read waits; bounds the delay of cancelling a reader.
            record_ttl_s: Time to live of handoff records and event streams in seconds.
            max_stream_entries: Approximate maximum entries of each event stream.
            socket_timeout_s: Timeout of Redis connects and commands in seconds, beyond event_block_s.
            run_maintenance: Run the sweep task in this instance.

        Raises:
            ConfigError: If a time is not positive or the prefix is empty.
        """
        for name, value in (
            ("presence_ttl_s", presence_ttl_s),
            ("offer_timeout_s", offer_timeout_s),
            ("wait_timeout_s", wait_timeout_s),
            ("sweep_interval_s", sweep_interval_s),
            ("event_block_s", event_block_s),
            ("record_ttl_s", record_ttl_s),
        ):
            if value <= 0:
                raise ConfigError(f"Invalid handoff queue {name} {value}: use a positive number of seconds.")
        if not key_prefix:
            raise ConfigError("Invalid handoff queue key_prefix '': use a prefix such as 'voicebot:handoff:'.")
        self.key_prefix = key_prefix
        self.presence_ttl_s = presence_ttl_s
        self.offer_timeout_s = offer_timeout_s
        self.wait_timeout_s = wait_timeout_s
        self.sweep_interval_s = sweep_interval_s
        self._redis_url = redis_url
        self._event_block_ms = int(event_block_s * 1000)
        self._record_ttl_s = int(record_ttl_s)
        self._max_stream_entries = max_stream_entries
        self._socket_timeout_s = socket_timeout_s + event_block_s
        self._run_maintenance = run_maintenance
        self._client: redis_asyncio.Redis | None = None
        self._binary_client: redis_asyncio.Redis | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._scripts: dict[str, Any] = {}

    # Lifecycle

    async def connect(self) -> None:
        """Open the Redis clients, check Redis replies and start the sweep task.

        Raises:
            UpstreamError: If Redis cannot be reached.
        """
        options = {
            "socket_connect_timeout": self._socket_timeout_s,
            "socket_timeout": self._socket_timeout_s,
        }
        self._client = redis_asyncio.from_url(self._redis_url, decode_responses=True, **options)
        self._binary_client = redis_asyncio.from_url(self._redis_url, decode_responses=False, **options)
        try:
            await self._client.ping()
        except _TRANSIENT_ERRORS as error:
            await self.close()
            raise UpstreamError(
                f"Redis is unreachable at {self._redis_url}: start redis-server there or set the handoff queue URL."
            ) from error
        for name in ("REQUEST", "DISPATCH", "ACCEPT", "DECLINE", "REP_DISCONNECTED", "HANGUP", "CANCEL", "SWEEP",
                     "SET_PRESENCE"):
            self._scripts[name] = self._client.register_script(getattr(scripts, name))
        if self._run_maintenance:
            self._sweeper = asyncio.create_task(self._sweep_loop(), name=f"handoff-sweep-{self.key_prefix}")
        logger.info("Handoff queue connected to %s with prefix %s", self._redis_url, self.key_prefix)

    async def close(self) -> None:
        """Stop the sweep task and close the clients."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            try:
                await asyncio.wait_for(self._sweeper, timeout=2.0)
            except (asyncio.CancelledError, asyncio.TimeoutError):
                pass
            self._sweeper = None
        for client in (self._client, self._binary_client):
            if client is not None:
                await client.aclose()
        self._client = None
        self._binary_client = None

    async def __aenter__(self) -> HandoffQueue:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def client(self) -> redis_asyncio.Redis:
        """The text-mode Redis client; raises UpstreamError before `connect()`."""
        if self._client is None:
            raise UpstreamError("Handoff queue is not connected: call connect() first.")
        return self._client

    @property
    def binary_client(self) -> redis_asyncio.Redis:
        """The bytes-mode Redis client used by the audio bridge."""
        if self._binary_client is None:
            raise UpstreamError("Handoff queue is not connected: call connect() first.")
        return self._binary_client

    # Keys

    def handoff_key(self, handoff_id: str) -> str:
        """Return the key of the handoff hash."""
        return f"{self.key_prefix}h:{handoff_id}"

    def events_key(self, handoff_id: str) -> str:
        """Return the key of the handoff's event stream."""
        return f"{self.key_prefix}h:{handoff_id}:events"

    def rep_key(self, rep_id: str) -> str:
        """Return the key of the rep's presence hash."""
        return f"{self.key_prefix}rep:{rep_id}"

    def waiting_key(self, skill: str) -> str:
        """Return the key of the sorted set of handoffs waiting for `skill`."""
        return f"{self.key_prefix}waiting:{skill}"

    @property
    def console_key(self) -> str:
        """The key of the stream of queue changes that console processes follow."""
        return f"{self.key_prefix}console"

    # Call side

    async def request(self, request: HandoffRequest, *, handoff_id: str | None = None) -> str:
        """Queue a handoff with its masked screen-pop, offer it if a rep is free, and return its id.

        A caller that passes `handoff_id` (from `new_handoff_id`) knows the id before the request
        lands, so it can cancel the handoff even if it is interrupted while waiting for the reply.

        Raises:
            HandoffError: If the request is invalid or the id is taken.
            UpstreamError: If Redis fails.
        """
        request.validate()
        handoff_id = handoff_id or new_handoff_id()
        wait_timeout_s = request.wait_timeout_s or self.wait_timeout_s
        screen_pop = request.screen_pop.masked()
        reasons = [reason.__dict__ for reason in _reasons(request.reasons, screen_pop)]
        result = await self._run(
            "REQUEST",
            handoff_id,
            request.call_id,
            request.skill,
            request.priority,
            json.dumps(reasons, ensure_ascii=False),
            screen_pop.to_json(),
            int(wait_timeout_s * 1000),
            self._record_ttl_s,
            request.bridge_sample_rate_hz,
            MAX_PRIORITY,
            self._max_stream_entries,
        )
        if result == "exists":
            raise HandoffError(f"Handoff id {handoff_id} is already taken: request the handoff with a new id.")
        logger.info(
            "Handoff %s requested for call %s: skill %s, priority %s",
            handoff_id,
            request.call_id,
            request.skill,
            request.priority,
            extra={"call_id": request.call_id},
        )
        await self.dispatch()
        return handoff_id

    async def cancel(self, handoff_id: str, reason: str) -> None:
        """Cancel an open handoff (waiting, offered or accepted), for example when the caller hung up.

        Raises:
            HandoffNotFoundError: If the handoff does not exist.
            HandoffStateError: If it already ended, was cancelled or timed out.
        """
        result = await self._run("CANCEL", handoff_id, reason, self._max_stream_entries, self._record_ttl_s)
        self._check(result, handoff_id, "cancel")
        logger.info("Handoff %s cancelled: %s", handoff_id, reason)

    async def position(self, handoff_id: str) -> int | None:
        """Return the 1-based place of the handoff among those waiting for its skill, or None once accepted or over.

        Raises:
            HandoffNotFoundError: If the handoff does not exist.
        """
        skill = await self._call(self.client.hget(self.handoff_key(handoff_id), "skill"))
        if skill is None:
            raise HandoffNotFoundError(f"Handoff {handoff_id} not found: it was never requested or has expired.")
        rank = await self._call(self.client.zrank(self.waiting_key(skill), handoff_id))
        return None if rank is None else int(rank) + 1

    async def events(self, handoff_id: str) -> AsyncIterator[HandoffEvent]:
        """Yield the events of a handoff from its first one; stop after Ended, Cancelled or TimedOut.

        Raises:
            HandoffNotFoundError: If the handoff does not exist.
        """
        if not await self._call(self.client.exists(self.handoff_key(handoff_id))):
            raise HandoffNotFoundError(f"Handoff {handoff_id} not found: it was never requested or has expired.")
        key = self.events_key(handoff_id)
        last_id = "0-0"
        while True:
            response = await self._call(self.client.xread({key: last_id}, count=100, block=self._event_block_ms))
            for _stream, entries in response or []:
                for entry_id, values in entries:
                    last_id = entry_id
                    event = event_from_fields(handoff_id, values)
                    yield event
                    if event.final:
                        return

    def call_endpoint(self, handoff_id: str, *, sample_rate_hz: int = 8000, max_queued_frames: int = 50) -> CallBridgeEndpoint:
        """Return a `CallBridgeEndpoint` for the handoff, sharing this queue's Redis client."""
        return CallBridgeEndpoint(
            client=self.binary_client,
            handoff_id=handoff_id,
            key_prefix=self.key_prefix,
            sample_rate_hz=sample_rate_hz,
            max_queued_frames=max_queued_frames,
        )

    def rep_endpoint(self, handoff_id: str, *, sample_rate_hz: int = 8000, max_queued_frames: int = 50) -> RepBridgeEndpoint:
        """Return a `RepBridgeEndpoint` for the handoff, sharing this queue's Redis client."""
        return RepBridgeEndpoint(
            client=self.binary_client,
            handoff_id=handoff_id,
            key_prefix=self.key_prefix,
            sample_rate_hz=sample_rate_hz,
            max_queued_frames=max_queued_frames,
        )

    # Rep side

    async def set_presence(self, rep_id: str, status: str, *, skills: list[str], name: str = "") -> None:
        """Set a rep's status and skills and start its presence TTL. Becoming available may bring an offer.

        A rep who leaves `available` while an offer is open declines it.

        Raises:
            HandoffError: If the status or a skill is unknown.
            HandoffStateError: If a rep in a call asks to become available.
        """
        if status not in REP_STATUSES:
            raise HandoffError(f"Invalid rep status {status!r}: use one of {', '.join(REP_STATUSES)}.")
        unknown = [skill for skill in skills if skill not in SKILLS]
        if unknown:
            raise HandoffError(f"Invalid rep skills {unknown}: use skills from {', '.join(SKILLS)}.")
        result = await self._run(
            "SET_PRESENCE",
            rep_id,
            status,
            ",".join(skills),
            name,
            int(self.presence_ttl_s * 1000),
            self._max_stream_entries,
            self._record_ttl_s,
        )
        if result == "in_call":
            raise HandoffStateError(
                f"Rep {rep_id} is in a call and cannot become available: hang up first."
            )
        logger.info("Rep %s is %s", rep_id, status)
        await self.dispatch()

    async def heartbeat(self, rep_id: str) -> bool:
        """Extend a rep's presence TTL; return False if the presence had already expired."""
        result = await self._call(self.client.pexpire(self.rep_key(rep_id), int(self.presence_ttl_s * 1000)))
        return bool(result)

    async def remove_rep(self, rep_id: str) -> None:
        """Delete a rep's presence (logout). An open offer goes back to the queue on the next sweep."""
        await self._call(self.client.delete(self.rep_key(rep_id)))
        await self._call(self.client.srem(f"{self.key_prefix}reps", rep_id))
        await self.sweep()

    async def presence(self, rep_id: str) -> RepPresence | None:
        """Return a rep's presence, or None when it expired or was never set."""
        values = await self._call(self.client.hgetall(self.rep_key(rep_id)))
        if not values:
            return None
        return RepPresence(
            rep_id=rep_id,
            status=values.get("status", "away"),
            skills=[skill for skill in values.get("skills", "").split(",") if skill],
            name=values.get("name", ""),
            since=int(values.get("since_ms", "0")) / 1000,
            offer=values.get("offer", ""),
            handoff=values.get("handoff", ""),
        )

    async def accept(self, handoff_id: str, rep_id: str) -> None:
        """Accept an offer as `rep_id`; the rep becomes busy.

        Raises:
            HandoffNotFoundError: If the handoff does not exist.
            HandoffStateError: If the handoff is not offered to this rep (taken, withdrawn or over).
        """
        result = await self._run("ACCEPT", handoff_id, rep_id, self._max_stream_entries, self._record_ttl_s)
        self._check(result, handoff_id, "accept")
        logger.info("Handoff %s accepted by rep %s", handoff_id, rep_id)

    async def decline(self, handoff_id: str, rep_id: str, *, reason: str = "declined") -> None:
        """Decline an offer; the handoff waits again and goes to another rep.

        Raises:
            HandoffNotFoundError: If the handoff does not exist.
            HandoffStateError: If the handoff is not offered to this rep.
        """
        result = await self._run(
            "DECLINE", handoff_id, rep_id, reason, self._max_stream_entries, self._record_ttl_s, "0"
        )
        self._check(result, handoff_id, "decline")
        logger.info("Handoff %s declined by rep %s", handoff_id, rep_id)
        await self.dispatch()

    async def hangup(self, handoff_id: str, rep_id: str) -> None:
        """End an accepted handoff from the rep's side.

        Raises:
            HandoffNotFoundError: If the handoff does not exist.
            HandoffStateError: If the handoff is not in a call with this rep.
        """
        result = await self._run("HANGUP", handoff_id, rep_id, self._max_stream_entries, self._record_ttl_s)
        self._check(result, handoff_id, "hang up")
        logger.info("Handoff %s ended by rep %s", handoff_id, rep_id)

    async def rep_disconnected(self, handoff_id: str, rep_id: str) -> None:
        """Put an accepted handoff back in the queue because the rep's console went away.

        Raises:
            HandoffNotFoundError: If the handoff does not exist.
            HandoffStateError: If the handoff is not in a call with this rep.
        """
        result = await self._run(
            "REP_DISCONNECTED", handoff_id, rep_id, self._max_stream_entries, self._record_ttl_s
        )
        self._check(result, handoff_id, "mark rep disconnected on")
        logger.warning("Rep %s disconnected during handoff %s; handoff queued again", rep_id, handoff_id)
        await self.dispatch()

    async def get(self, handoff_id: str) -> HandoffInfo:
        """Return the stored state and screen-pop of a handoff.

        Raises:
            HandoffNotFoundError: If the handoff does not exist.
        """
        values = await self._call(self.client.hgetall(self.handoff_key(handoff_id)))
        if not values:
            raise HandoffNotFoundError(f"Handoff {handoff_id} not found: it was never requested or has expired.")
        now_s = await self._server_time_s()
        position = await self.position(handoff_id)
        return _info(values, now_s, position, with_screen_pop=True)

    async def waiting(self, skills: list[str]) -> list[HandoffInfo]:
        """Return the waiting and offered handoffs of the given skills, best first, without screen-pops."""
        now_s = await self._server_time_s()
        scored: list[tuple[float, HandoffInfo]] = []
        for skill in skills:
            if skill not in SKILLS:
                continue
            items = await self._call(self.client.zrange(self.waiting_key(skill), 0, -1, withscores=True))
            for place, (handoff_id, score) in enumerate(items, start=1):
                values = await self._call(self.client.hgetall(self.handoff_key(handoff_id)))
                if values:
                    scored.append((score, _info(values, now_s, place, with_screen_pop=False)))
        scored.sort(key=lambda item: item[0])
        return [info for _score, info in scored]

    async def console_events(self) -> AsyncIterator[dict[str, str]]:
        """Yield queue changes written after the call, for console processes (types: queue_changed,
        offer, offer_withdrawn, accepted, call_ended, presence_changed)."""
        last_id = "$"
        while True:
            response = await self._call(
                self.client.xread({self.console_key: last_id}, count=100, block=self._event_block_ms)
            )
            for _stream, entries in response or []:
                for entry_id, values in entries:
                    last_id = entry_id
                    yield values

    # Maintenance

    async def dispatch(self) -> int:
        """Offer waiting handoffs to free reps and return how many offers were made."""
        offered = await self._run(
            "DISPATCH", int(self.offer_timeout_s * 1000), self._max_stream_entries, self._record_ttl_s, *SKILLS
        )
        return int(offered)

    async def sweep(self) -> list[str]:
        """Time out handoffs, expire unanswered offers, re-queue calls of vanished reps, then dispatch.

        Returns the changes as "kind:handoff_id" strings.
        """
        changes = await self._run("SWEEP", self._max_stream_entries, self._record_ttl_s)
        for change in changes:
            kind, _, handoff_id = change.partition(":")
            logger.info("Handoff %s: %s", handoff_id, kind)
        await self.dispatch()
        return list(changes)

    async def _sweep_loop(self) -> None:
        while True:
            try:
                await self.sweep()
            except UpstreamError as error:
                logger.warning("Handoff queue sweep failed, retrying in %.1f s: %s", self.sweep_interval_s, error)
            await asyncio.sleep(self.sweep_interval_s)

    # Helpers

    async def _run(self, name: str, *args: object) -> Any:
        script = self._scripts.get(name)
        if script is None:
            raise UpstreamError("Handoff queue is not connected: call connect() first.")
        return await self._call(script(args=[self.key_prefix, *args]))

    async def _call(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        except _TRANSIENT_ERRORS as error:
            raise UpstreamError(
                f"Redis at {self._redis_url} failed during a handoff queue operation ({type(error).__name__}): "
                "check that Redis is running and retry."
            ) from error

    async def _server_time_s(self) -> float:
        seconds, microseconds = await self._call(self.client.time())
        return float(seconds) + microseconds / 1e6

    @staticmethod
    def _check(result: str, handoff_id: str, action: str) -> None:
        if result == "ok":
            return
        if result == "not_found":
            raise HandoffNotFoundError(f"Handoff {handoff_id} not found: it was never requested or has expired.")
        state = result.removeprefix("state:")
        raise HandoffStateError(
            f"Cannot {action} handoff {handoff_id} in state {state}: refresh the queue and retry with an open handoff."
        )


def _reasons(codes: list[str], screen_pop: ScreenPop) -> list[Reason]:
    """Merge the request's reason codes with the labelled reasons of the screen-pop."""
    labelled = {reason.code: reason for reason in screen_pop.reasons}
    merged = [labelled.get(code) or Reason.from_code(code) for code in codes]
    merged.extend(reason for reason in screen_pop.reasons if reason.code not in codes)
    return merged


def _info(values: dict[str, str], now_s: float, position: int | None, *, with_screen_pop: bool) -> HandoffInfo:
    created_s = int(values.get("created_ms", "0")) / 1000
    state = values.get("state", "")
    screen_pop = None
    if with_screen_pop and values.get("screen_pop"):
        screen_pop = ScreenPop.from_dict(json.loads(values["screen_pop"]))
    return HandoffInfo(
        handoff_id=values.get("handoff_id", ""),
        call_id=values.get("call_id", ""),
        skill=values.get("skill", ""),
        priority=int(values.get("priority", "0")),
        reasons=[Reason(code=item["code"], label=item["label"]) for item in json.loads(values.get("reasons", "[]"))],
        state=state,
        created_at=created_s,
        waited_s=max(0.0, now_s - created_s),
        position=position if state in ("waiting", "offered") else None,
        offered_to=values.get("offered_to", ""),
        rep_id=values.get("rep_id", ""),
        bridge_sample_rate_hz=int(values.get("bridge_rate_hz", "8000")),
        screen_pop=screen_pop,
    )


__all__ = ["HandoffQueue", "HandoffError"]
