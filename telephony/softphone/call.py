"""Call driver of the test softphone: connects to the media stream, streams the caller's
turns, plays the bot's audio and follows the voicebot sideband to know when a reply is over.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from telephony.mediastream import (
    Clear,
    PlayMark,
    PlayMedia,
    connected_message,
    decode_message,
    dtmf_message,
    inbound_media_message,
    mark_message,
    parse_outbound,
    start_message,
    stop_message,
)
from telephony.softphone.audio import (
    FRAME_MS,
    MULAW_SILENCE,
    CallerClip,
    PlayoutBuffer,
    check_out_path,
    load_caller_clip,
    write_played_audio,
)
from telephony.softphone.steps import KEY_PRESS_INTERVAL_S, CallerStep, KeyPresses
from telephony.softphone.summary import CallSummary, EventCallback, TurnResult
from voicebot.errors import ConfigError, ProtocolError, UpstreamError, VoicebotError

logger = logging.getLogger(__name__)

# Bound of the playout buffer. A service that paces its audio in real time keeps it below a
# few seconds, so this much buffered audio means the service does not pace its output.
MAX_BUFFERED_AUDIO_S = 600.0

# The service sends a mark right after `reply_done`. The softphone waits this long for it,
# so that it can echo the mark before hanging up.
REPLY_MARK_GRACE_S = 1.0


class ServiceUnreachableError(UpstreamError):
    """The media-stream URL cannot be reached or does not accept a WebSocket."""


class _Call:
    """State of one call: the line (caller frames), the receiver and the turn script."""

    def __init__(
        self,
        ws: ClientConnection,
        summary: CallSummary,
        *,
        speed: float,
        turn_timeout_s: float,
        on_event: EventCallback | None,
    ) -> None:
        self.ws = ws
        self.summary = summary
        self.speed = speed
        self.turn_timeout_s = turn_timeout_s
        self.on_event = on_event
        self.loop = asyncio.get_running_loop()
        self.playout = PlayoutBuffer()
        self.changed = asyncio.Event()  # set on every received message, on close and when a caller turn is sent
        self.sequence_number = 0
        self.chunk = 0
        self.speaking: tuple[CallerClip, TurnResult] | None = None
        self.clip_position = 0  # index of the next frame of the clip being spoken
        self.current_turn: TurnResult | None = None
        self.playing_turn: TurnResult | None = None  # the turn whose reply audio arrived last
        self.max_bot_turn = -1
        self.max_done_turn = -1
        self.reply_done_s = -math.inf
        self.mark_after_reply_done = False
        self.echo_queue: deque[str] = deque()  # marks reached by playout, in playout order
        self.echo_lock = asyncio.Lock()
        self.last_message_s = -math.inf
        self.final_reply_threshold: int | None = None  # set while waiting for the reply to the last WAV
        self.hanging_up = False
        self.closed_by_service = False

    def next_sequence_number(self) -> int:
        self.sequence_number += 1
        return self.sequence_number

    def emit(self, event: dict[str, Any]) -> None:
        if self.on_event is not None:
            self.on_event(event)

    async def echo_marks(self, names: list[str]) -> None:
        # Both the line and the receiver echo marks. The queue and the lock keep the echoes
        # in playout order even when a send waits for the socket.
        if self.hanging_up:
            return  # nothing may follow `stop`
        self.echo_queue.extend(names)
        async with self.echo_lock:
            while self.echo_queue:
                name = self.echo_queue.popleft()
                try:
                    await self.ws.send(mark_message(self.summary.stream_sid, name))
                except ConnectionClosed:
                    return  # the receiver gets the same close and decides whether it was expected
                self.summary.marks_echoed.append(name)

    async def tick_playout(self) -> None:
        await self.echo_marks(self.playout.advance(self.loop.time()))

    # The line: one frame per 20 ms of the caller-side clock, for the whole call.

    async def run_line(self) -> None:
        interval_s = FRAME_MS / 1000 / self.speed
        next_send_s = self.loop.time()
        try:
            while True:
                await self.send_frame()
                await self.tick_playout()
                next_send_s += interval_s
                delay_s = next_send_s - self.loop.time()
                if delay_s < -0.2:
                    # The event loop stalled, so resume the pace from now instead of sending a burst.
                    next_send_s = self.loop.time()
                await asyncio.sleep(max(0.0, delay_s))
        except ConnectionClosed:
            # The receiver gets the same close and decides whether it was expected.
            return

    async def send_frame(self) -> None:
        frame = MULAW_SILENCE
        speaking = self.speaking
        index = self.clip_position
        if speaking is not None:
            frame = speaking[0].frames[index]
            self.clip_position += 1

        message = inbound_media_message(
            self.summary.stream_sid,
            frame,
            sequence_number=self.next_sequence_number(),
            chunk=self.chunk + 1,
            timestamp_ms=self.chunk * FRAME_MS,
        )
        self.chunk += 1
        await self.ws.send(message)

        if speaking is not None:
            clip, turn = speaking
            if index == clip.last_voiced_frame:
                turn.speech_end_s = self.loop.time()
            if index == len(clip.frames) - 1:
                self.speaking = None
                self.changed.set()

    # The receiver: media, marks, clear and the voicebot sideband.

    async def receive(self) -> None:
        try:
            async for raw in self.ws:
                self.last_message_s = self.loop.time()
                await self.on_message(raw)
                self.changed.set()
        except ConnectionClosed as e:
            self.on_close(e)
            return
        self.on_close(None)

    def on_close(self, error: ConnectionClosed | None) -> None:
        self.changed.set()
        if self.hanging_up:
            return
        code = self.ws.close_code
        reason = self.ws.close_reason or ""
        extra = {"call_sid": self.summary.call_sid, "stream_sid": self.summary.stream_sid}
        if self.summary.handoff_reason is not None:
            logger.info("service closed the call after a handoff (close code %s)", code, extra=extra)
            self.closed_by_service = True
            return
        if self.final_reply_threshold is not None and self.max_done_turn > self.final_reply_threshold:
            # The reply to the last caller turn is complete, so the call was over anyway.
            logger.info("service closed the call after the last reply (close code %s)", code, extra=extra)
            self.closed_by_service = True
            return
        raise ProtocolError(
            f"service at {self.summary.url} closed the media stream mid-call "
            f"(close code {code}, reason {reason!r}); check the service log for the error"
        ) from error

    async def on_message(self, raw: str | bytes) -> None:
        message = decode_message(raw)
        if message["event"] == "voicebot":
            self.on_sideband(message)
            return
        now_s = self.loop.time()
        event = parse_outbound(raw)
        if isinstance(event, PlayMedia):
            turn = self.current_turn
            if turn is not None and turn.speech_end_s is not None and turn.first_audio_s is None:
                turn.first_audio_s = now_s
                turn.latency_ms = (now_s - turn.speech_end_s) * 1000
                self.playing_turn = turn
            await self.echo_marks(self.playout.push_media(event.payload, now_s))
            if self.playout.remaining_s() > MAX_BUFFERED_AUDIO_S:
                raise ProtocolError(
                    f"service at {self.summary.url} sent more than {MAX_BUFFERED_AUDIO_S:.0f} s of audio ahead "
                    "of playout; the service must pace its audio in real time"
                )
        elif isinstance(event, PlayMark):
            self.mark_after_reply_done = True
            await self.echo_marks(self.playout.push_mark(event.name, now_s))
        elif isinstance(event, Clear):
            self.summary.clears += 1
            if self.playing_turn is not None:
                self.playing_turn.cleared = True
            await self.echo_marks(self.playout.clear(now_s))

    def on_sideband(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "call":
            self.summary.call_id = str(message.get("call_id", ""))
        elif kind == "user":
            text = str(message.get("text", ""))
            if self.current_turn is not None:
                self.current_turn.user_text = text
            self.emit({"event": "user", "text": text})
        elif kind == "bot":
            self.max_bot_turn = max(self.max_bot_turn, _int_field(message, "turn"))
            text = str(message.get("text", ""))
            if self.current_turn is None:
                self.summary.greeting_texts.append(text)
            else:
                self.current_turn.bot_texts.append(text)
            self.emit(
                {
                    "event": "bot",
                    "text": text,
                    "confidence": message.get("confidence"),
                    "kind": message.get("kind"),
                    "topic": message.get("topic"),
                }
            )
        elif kind == "handoff":
            reason = str(message.get("reason", ""))
            self.summary.handoff_reason = reason
            self.emit({"event": "handoff", "reason": reason})
        elif kind == "reply_done":
            turn_number = _int_field(message, "turn")
            self.max_done_turn = max(self.max_done_turn, turn_number)
            self.max_bot_turn = max(self.max_bot_turn, turn_number)
            self.reply_done_s = self.loop.time()
            self.mark_after_reply_done = False
        elif kind == "error":
            raise ProtocolError(
                f"service at {self.summary.url} reported an error: {str(message.get('message', ''))[:200]}"
            )
        else:
            # Newer services may send more types, so unknown types are ignored.
            logger.debug("ignoring voicebot sideband event of type %r", kind)

    # The turn script.

    async def press_keys(self, keys: str, turn: TurnResult) -> None:
        """Send one `dtmf` event per key, KEY_PRESS_INTERVAL_S apart on the caller-side clock."""
        self.current_turn = turn
        # Emitted before the first press, so it always comes before the service's reply to the keys.
        self.emit({"event": "keys", "digits": keys})
        interval_s = KEY_PRESS_INTERVAL_S / self.speed
        for index, key in enumerate(keys):
            if index > 0:
                await asyncio.sleep(interval_s)
            if self.closed_by_service:
                return
            message = dtmf_message(self.summary.stream_sid, key, sequence_number=self.next_sequence_number())
            try:
                await self.ws.send(message)
            except ConnectionClosed:
                return  # the receiver gets the same close and decides whether it was expected
        turn.speech_end_s = self.loop.time()

    async def speak(self, clip: CallerClip, turn: TurnResult) -> None:
        self.clip_position = 0
        self.current_turn = turn
        self.speaking = (clip, turn)
        # The line stops when the service hangs up, so a close also ends the turn.
        while self.speaking is not None and not self.closed_by_service:
            self.changed.clear()
            await self.changed.wait()

    def reply_finished(self, threshold_turn: int, now_s: float) -> bool:
        if self.max_done_turn <= threshold_turn:
            return False
        if not self.mark_after_reply_done and now_s < self.reply_done_s + REPLY_MARK_GRACE_S:
            return False
        return self.playout.idle

    async def await_reply(
        self, threshold_turn: int, *, turn: TurnResult | None, barge_in_after_s: float | None, since_s: float
    ) -> bool:
        """Wait until a reply newer than threshold_turn has been sent and played.

        Returns False when the turn timeout passed without progress. The timeout bounds the
        wait for the reply to begin and the gap between two messages of the service.
        """
        while True:
            self.changed.clear()
            await self.tick_playout()
            now_s = self.loop.time()
            if self.closed_by_service or self.reply_finished(threshold_turn, now_s):
                return True

            wake_s = now_s + 1.0
            if barge_in_after_s is not None and turn is not None and turn.first_audio_s is not None:
                barge_in_s = turn.first_audio_s + barge_in_after_s
                if now_s >= barge_in_s:
                    turn.barged_in = True
                    return True
                wake_s = min(wake_s, barge_in_s)
            if self.max_done_turn > threshold_turn:
                # The reply is complete, so wait for its playout and its final mark.
                wake_s = min(wake_s, now_s + max(self.playout.remaining_s(), FRAME_MS / 1000))
            else:
                deadline_s = max(since_s, self.last_message_s) + self.turn_timeout_s
                if now_s >= deadline_s:
                    return False
                wake_s = min(wake_s, deadline_s)

            try:
                await asyncio.wait_for(self.changed.wait(), timeout=max(0.0, wake_s - now_s))
            except TimeoutError:
                pass

    async def conduct(self, steps: Sequence[CallerClip | KeyPresses], *, barge_in_after_s: float | None) -> None:
        extra = {"call_sid": self.summary.call_sid, "stream_sid": self.summary.stream_sid}
        if not await self.await_reply(-1, turn=None, barge_in_after_s=None, since_s=self.loop.time()):
            logger.warning("no greeting within %s s; hanging up", self.turn_timeout_s, extra=extra)
            self.summary.timed_out = True
            return

        for index, step in enumerate(steps):
            if self.summary.handoff_reason is not None or self.closed_by_service:
                logger.info(
                    "call handed off or closed by the service; %d caller turn(s) not sent",
                    len(steps) - index,
                    extra=extra,
                )
                return
            threshold_turn = self.max_bot_turn
            is_last = index == len(steps) - 1
            if is_last:
                self.final_reply_threshold = threshold_turn
            if isinstance(step, KeyPresses):
                # Keys can be card or ID digits, so the log contains only their count.
                logger.info("caller turn %d: pressing %d key(s)", index + 1, len(step.keys), extra=extra)
                turn = TurnResult(keys=step.keys)
                self.summary.turns.append(turn)
                await self.press_keys(step.keys, turn)
            else:
                turn = TurnResult(wav=step.path)
                self.summary.turns.append(turn)
                await self.speak(step, turn)

            replied = await self.await_reply(
                threshold_turn,
                turn=turn,
                barge_in_after_s=None if is_last else barge_in_after_s,
                since_s=self.loop.time(),
            )
            if not replied:
                logger.warning(
                    "no reply to caller turn %d within %s s; hanging up",
                    index + 1,
                    self.turn_timeout_s,
                    extra=extra,
                )
                self.summary.timed_out = True
                return

    async def hang_up(self) -> None:
        self.hanging_up = True
        if self.closed_by_service:
            return
        stop = stop_message(self.summary.stream_sid, self.summary.call_sid, sequence_number=self.next_sequence_number())
        try:
            await self.ws.send(stop)
        except ConnectionClosed:
            return  # the receiver gets the same close and decides whether it was expected
        await self.ws.close()


def _int_field(message: dict[str, Any], key: str) -> int:
    value = message.get(key)
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ProtocolError(
            f"voicebot {message.get('type')!r} event: field {key!r} must be an integer, got {str(value)[:40]!r}"
        ) from None


def _error_to_report(group: BaseExceptionGroup, *, url: str) -> BaseException:
    """Pick the error to raise from a failed call: the first VoicebotError, else a close as ProtocolError."""
    for kind in (VoicebotError, ConnectionClosed):
        matched: BaseException | None = group.subgroup(kind)
        while isinstance(matched, BaseExceptionGroup):
            matched = matched.exceptions[0]
        if isinstance(matched, ConnectionClosed):
            return ProtocolError(f"service at {url} closed the media stream mid-call ({matched})")
        if matched is not None:
            return matched
    return group


async def _open(url: str, *, open_timeout_s: float) -> ClientConnection:
    fix = "is `voicebot serve` running, and on this host and port?"
    try:
        # proxy=None connects directly, whatever proxy the environment sets.
        return await connect(url, open_timeout=open_timeout_s, proxy=None, max_size=2**20)
    except InvalidURI as e:
        raise ServiceUnreachableError(f"invalid media-stream URL {url!r} ({e}); use ws://HOST:PORT/media") from e
    except InvalidStatus as e:
        raise ServiceUnreachableError(
            f"{url} returned HTTP status {e.response.status_code} instead of accepting the WebSocket "
            "upgrade; check the path (the service serves /media)"
        ) from e
    except InvalidHandshake as e:
        raise ServiceUnreachableError(f"{url} did not complete the WebSocket handshake ({e}); {fix}") from e
    except TimeoutError as e:
        raise ServiceUnreachableError(f"connecting to {url} timed out after {open_timeout_s} s; {fix}") from e
    except OSError as e:
        raise ServiceUnreachableError(f"cannot connect to {url} ({e.strerror or e}); {fix}") from e



async def place_call(
    url: str,
    steps: Sequence[CallerStep],
    *,
    out: str | Path | None = None,
    speed: float = 1.0,
    params: dict[str, str] | None = None,
    turn_timeout_s: float = 30.0,
    on_event: EventCallback | None = None,
    barge_in_after_s: float | None = None,
    open_timeout_s: float = 10.0,
) -> CallSummary:
    """Place one call to a media-stream URL, run the caller steps in order, and return the outcome.

    Each step is one caller turn after the bot's previous reply: a WAV path is spoken, and
    `KeyPresses` sends its keys as `dtmf` events. `speed` makes the caller-side clock (the
    speech and the gaps between key presses) that many times faster; the bot's audio always
    plays in real time. `barge_in_after_s` starts the next step that many seconds after the
    first bot audio of a reply to a caller turn, instead of waiting for the reply to end (the
    greeting is always heard to the end). `on_event` receives the `keys`, `user`, `bot` and
    `handoff` events as the dicts that `--json` prints. `out` receives the bot audio as
    played, concatenated without the silence between replies; audio dropped by `clear` is
    not in it.

    Raises AudioError for an unreadable WAV (before connecting), ServiceUnreachableError,
    and ProtocolError for a protocol error or an unexpected close. A reply that does not
    come within `turn_timeout_s` ends the call with `timed_out` set in the summary.
    """
    if not speed > 0:
        raise ConfigError(f"speed must be a positive number, got {speed}")
    if not turn_timeout_s > 0:
        raise ConfigError(f"turn timeout must be a positive number of seconds, got {turn_timeout_s}")
    if barge_in_after_s is not None and barge_in_after_s < 0:
        raise ConfigError(f"barge_in_after_s must be 0 or more seconds, got {barge_in_after_s}")
    out_path = check_out_path(out)
    loaded: list[CallerClip | KeyPresses] = [
        step if isinstance(step, KeyPresses) else load_caller_clip(step) for step in steps
    ]

    custom_parameters = dict(params or {})
    custom_parameters["voicebot_events"] = "1"
    summary = CallSummary(
        url=url,
        stream_sid="MZ" + secrets.token_hex(16),
        call_sid="CA" + secrets.token_hex(16),
    )
    extra = {"call_sid": summary.call_sid, "stream_sid": summary.stream_sid}

    ws = await _open(url, open_timeout_s=open_timeout_s)
    logger.info("connected to %s", url, extra=extra)
    call = _Call(ws, summary, speed=speed, turn_timeout_s=turn_timeout_s, on_event=on_event)
    try:
        await ws.send(connected_message())
        await ws.send(
            start_message(
                summary.stream_sid,
                summary.call_sid,
                custom_parameters=custom_parameters,
                sequence_number=call.next_sequence_number(),
            )
        )
        async with asyncio.TaskGroup() as group:
            receiver = group.create_task(call.receive(), name=f"softphone-receive-{summary.call_sid}")
            line = group.create_task(call.run_line(), name=f"softphone-line-{summary.call_sid}")
            await call.conduct(loaded, barge_in_after_s=barge_in_after_s)
            line.cancel()
            await asyncio.wait([line])  # no media frame may follow `stop`
            await call.hang_up()
            await receiver
    except BaseExceptionGroup as group_error:
        raise _error_to_report(group_error, url=url) from None
    except ConnectionClosed as e:
        raise ProtocolError(f"service at {url} closed the media stream mid-call ({e})") from e
    finally:
        await ws.close()
        summary.played_mulaw = bytes(call.playout.played)

    logger.info("call ended after %d caller turn(s)", len(summary.turns), extra=extra)
    if out_path is not None:
        write_played_audio(out_path, summary.played_mulaw)
    return summary

