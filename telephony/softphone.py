"""Test softphone for voicebot's media-stream endpoint (`voicebot call`).

The softphone plays the telephony side of a Twilio Media Stream. It sends `connected` and
`start`, then one 20 ms G.711 mu-law frame per 20 ms for the whole call, and finally `stop`.
The frames carry caller audio from WAV files, or mu-law silence between them. It plays the
bot's audio on a simulated playout clock that drains 8000 samples per second in real time,
and echoes each `mark` once the playout reaches it, as Twilio does.

It opts into voicebot's sideband with the custom parameter `voicebot_events=1`. The service
then also sends JSON text messages with `"event": "voicebot"` (call id, transcripts, bot
replies, handoff, end of reply, errors), which the softphone prints and uses to know when a
reply is over.

Exit codes of `voicebot call`: 0 call completed, 2 invalid input (WAV file or --out path),
3 service unreachable, 4 protocol error or unexpected close, 5 no reply within
--turn-timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import secrets
import sys
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import soxr
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from telephony.g711 import mulaw_to_pcm, pcm_to_mulaw
from telephony.mediastream import (
    TELEPHONE_SAMPLE_RATE,
    Clear,
    PlayMark,
    PlayMedia,
    connected_message,
    decode_message,
    inbound_media_message,
    mark_message,
    parse_outbound,
    start_message,
    stop_message,
)
from voicebot.errors import AudioError, ConfigError, ProtocolError, UpstreamError, VoicebotError

logger = logging.getLogger(__name__)

FRAME_MS = 20
FRAME_SAMPLES = TELEPHONE_SAMPLE_RATE * FRAME_MS // 1000  # 160 samples, one byte each in mu-law
MULAW_SILENCE = b"\xff" * FRAME_SAMPLES  # mu-law code of PCM 0

# A frame counts as voiced when its RMS is within this many dB of the clip's loudest frame.
# In the recorded caller sentences of the test set, the last syllable measures -21 to -39 dB
# and the trailing pause below -40 dB (mostly digital silence, below -100 dB).
VOICED_THRESHOLD_DB = 40.0
# A clip whose loudest frame is below this RMS (-80 dBFS, full scale 1.0) has no speech.
MIN_SPEECH_RMS = 1e-4

# Bound of the playout buffer. A service that paces its audio in real time keeps it below a
# few seconds, so this much buffered audio means the service does not pace its output.
MAX_BUFFERED_AUDIO_S = 600.0

# The service sends a mark right after `reply_done`. The softphone waits this long for it,
# so that it can echo the mark before hanging up.
REPLY_MARK_GRACE_S = 1.0

EXIT_OK = 0
EXIT_INVALID_INPUT = 2
EXIT_UNREACHABLE = 3
EXIT_PROTOCOL = 4
EXIT_TURN_TIMEOUT = 5


class ServiceUnreachableError(UpstreamError):
    """The media-stream URL cannot be reached or does not accept a WebSocket."""


@dataclass(frozen=True)
class CallerClip:
    """One caller turn as 8 kHz mu-law frames."""

    path: Path
    frames: tuple[bytes, ...]
    last_voiced_frame: int  # index of the last frame that counts as speech


def last_voiced_frame_index(pcm: np.ndarray, *, threshold_db: float = VOICED_THRESHOLD_DB) -> int:
    """Return the index of the last 20 ms frame whose RMS is within threshold_db of the peak frame.

    `pcm` contains float samples at 8 kHz. A clip without speech returns its last frame index,
    so the whole clip counts as the caller's turn.
    """
    frame_count = max(1, math.ceil(len(pcm) / FRAME_SAMPLES))
    padded = np.zeros(frame_count * FRAME_SAMPLES, dtype=np.float64)
    padded[: len(pcm)] = pcm
    rms = np.sqrt(np.mean(padded.reshape(frame_count, FRAME_SAMPLES) ** 2, axis=1))
    peak = float(rms.max())
    if peak < MIN_SPEECH_RMS:
        return frame_count - 1
    voiced = np.flatnonzero(rms >= peak * 10 ** (-threshold_db / 20))
    return int(voiced[-1])


def load_caller_clip(path: str | Path) -> CallerClip:
    """Read a WAV file of any rate and sample format and convert it to 8 kHz mu-law frames.

    Raises AudioError naming the file and the reason when it is missing or unreadable.
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(f"caller audio {path} not found; pass an existing WAV file with --wav")
    if path.is_dir():
        raise AudioError(f"caller audio {path} is a directory; pass a WAV file with --wav")
    try:
        samples, sample_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as e:
        raise AudioError(f"caller audio {path} cannot be read as a sound file ({e}); pass a WAV file") from e
    if samples.shape[0] == 0:
        raise AudioError(f"caller audio {path} contains no samples; pass a WAV file with speech")

    mono = samples.mean(axis=1)
    if sample_rate != TELEPHONE_SAMPLE_RATE:
        mono = soxr.resample(mono, sample_rate, TELEPHONE_SAMPLE_RATE, quality="HQ")
    mono = np.clip(mono, -1.0, 1.0)
    pcm = np.round(mono * 32767).astype("<i2").tobytes()
    payload = pcm_to_mulaw(pcm)

    frame_count = max(1, math.ceil(len(payload) / FRAME_SAMPLES))
    payload = payload.ljust(frame_count * FRAME_SAMPLES, MULAW_SILENCE[:1])
    frames = tuple(payload[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES] for i in range(frame_count))
    return CallerClip(path=path, frames=frames, last_voiced_frame=last_voiced_frame_index(mono))


class PlayoutBuffer:
    """Simulated playout of the bot's audio: a queue of mu-law audio and marks that drains in real time.

    Pure state machine: every method takes the current time in seconds (any monotonic clock)
    and returns the names of the marks that playout has reached, in order, for the caller
    to echo. Audio played is appended to `played` (mu-law bytes).
    """

    def __init__(self, *, sample_rate_hz: int = TELEPHONE_SAMPLE_RATE) -> None:
        self.sample_rate_hz = sample_rate_hz
        self.played = bytearray()
        self._queue: deque[bytes | PlayMark] = deque()
        self._buffered_samples = 0
        # Start of the current busy period (audio or marks queued) and the samples played since.
        # Counting from a fixed origin keeps float rounding from accumulating.
        self._origin_s = 0.0
        self._played_since_origin = 0

    @property
    def buffered_samples(self) -> int:
        return self._buffered_samples

    @property
    def idle(self) -> bool:
        """True when no audio or mark is waiting to be played."""
        return not self._queue

    def remaining_s(self) -> float:
        """Seconds of audio buffered and not yet played."""
        return self._buffered_samples / self.sample_rate_hz

    def advance(self, now_s: float) -> list[str]:
        """Play the audio due by now_s and return the marks reached."""
        if not self._queue:
            # The line is idle, so time spent idle is not credited to audio that arrives later.
            self._origin_s = now_s
            self._played_since_origin = 0
            return []
        # The 1e-6 keeps a time that is an exact number of samples from rounding one sample short.
        due_samples = int(max(0.0, now_s - self._origin_s) * self.sample_rate_hz + 1e-6)
        budget = max(0, due_samples - self._played_since_origin)

        reached: list[str] = []
        while self._queue:
            head = self._queue[0]
            if isinstance(head, PlayMark):
                reached.append(head.name)
                self._queue.popleft()
                continue
            if budget == 0:
                break
            take = min(budget, len(head))
            self.played += head[:take]
            self._buffered_samples -= take
            self._played_since_origin += take
            budget -= take
            if take == len(head):
                self._queue.popleft()
            else:
                self._queue[0] = head[take:]
        return reached

    def push_media(self, payload: bytes, now_s: float) -> list[str]:
        """Queue received audio behind the buffered audio and return the marks reached before it arrived."""
        reached = self.advance(now_s)
        if payload:
            self._queue.append(payload)
            self._buffered_samples += len(payload)
        return reached

    def push_mark(self, name: str, now_s: float) -> list[str]:
        """Queue a mark behind the buffered audio. With nothing buffered, the mark is reached at once."""
        reached = self.advance(now_s)
        self._queue.append(PlayMark(name))
        return reached + self.advance(now_s)

    def clear(self, now_s: float) -> list[str]:
        """Drop the unplayed audio and return every pending mark, as Twilio does on `clear`."""
        reached = self.advance(now_s)
        reached += [item.name for item in self._queue if isinstance(item, PlayMark)]
        self._queue.clear()
        self._buffered_samples = 0
        return reached


@dataclass
class TurnResult:
    """One caller turn and the bot's reply to it."""

    wav: Path
    user_text: str | None = None
    bot_texts: list[str] = field(default_factory=list)
    latency_ms: float | None = None  # end of caller speech to the first bot audio received
    barged_in: bool = False  # the next WAV started before this reply was done
    cleared: bool = False  # the service sent `clear` while this reply was playing
    speech_end_s: float | None = None
    first_audio_s: float | None = None


@dataclass
class CallSummary:
    """Outcome of one call placed by `place_call`."""

    url: str
    stream_sid: str
    call_sid: str
    call_id: str | None = None
    greeting_texts: list[str] = field(default_factory=list)
    turns: list[TurnResult] = field(default_factory=list)
    handoff_reason: str | None = None
    timed_out: bool = False  # True when no reply came within the turn timeout and the softphone hung up
    clears: int = 0
    marks_echoed: list[str] = field(default_factory=list)
    played_mulaw: bytes = b""  # bot audio as played, concatenated without the gaps between replies

    @property
    def latencies_ms(self) -> list[float]:
        return [turn.latency_ms for turn in self.turns if turn.latency_ms is not None]

    def latency_stats_ms(self) -> dict[str, float | None]:
        """p50, p95 and max of the per-turn latency in ms (None without a measured turn)."""
        values = self.latencies_ms
        if not values:
            return {"p50": None, "p95": None, "max": None}
        return {
            "p50": round(float(np.percentile(values, 50)), 1),
            "p95": round(float(np.percentile(values, 95)), 1),
            "max": round(max(values), 1),
        }

    def summary_event(self) -> dict[str, Any]:
        """Build the `summary` JSON line of `voicebot call --json`."""
        return {
            "event": "summary",
            "call_id": self.call_id,
            "turns": len(self.turns),
            "latency_ms": self.latency_stats_ms(),
        }


EventCallback = Callable[[dict[str, Any]], None]


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

    async def conduct(self, clips: Sequence[CallerClip], *, barge_in_after_s: float | None) -> None:
        extra = {"call_sid": self.summary.call_sid, "stream_sid": self.summary.stream_sid}
        if not await self.await_reply(-1, turn=None, barge_in_after_s=None, since_s=self.loop.time()):
            logger.warning("no greeting within %s s; hanging up", self.turn_timeout_s, extra=extra)
            self.summary.timed_out = True
            return

        for index, clip in enumerate(clips):
            if self.summary.handoff_reason is not None or self.closed_by_service:
                logger.info(
                    "call handed off or closed by the service; %d caller turn(s) not sent",
                    len(clips) - index,
                    extra=extra,
                )
                return
            turn = TurnResult(wav=clip.path)
            self.summary.turns.append(turn)
            threshold_turn = self.max_bot_turn
            is_last = index == len(clips) - 1
            if is_last:
                self.final_reply_threshold = threshold_turn
            await self.speak(clip, turn)

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


def _check_out_path(out: str | Path | None) -> Path | None:
    if out is None:
        return None
    out = Path(out)
    if out.is_dir():
        raise AudioError(f"--out {out} is a directory; pass a WAV file path")
    if not out.parent.is_dir():
        raise AudioError(f"--out {out}: directory {out.parent} not found; create it or choose another path")
    return out


def write_played_audio(path: str | Path, mulaw: bytes) -> None:
    """Write mu-law bot audio as an 8 kHz 16-bit mono WAV file."""
    pcm = np.frombuffer(mulaw_to_pcm(mulaw), dtype="<i2")
    soundfile.write(str(path), pcm, TELEPHONE_SAMPLE_RATE, subtype="PCM_16")


async def place_call(
    url: str,
    wavs: Sequence[str | Path],
    *,
    out: str | Path | None = None,
    speed: float = 1.0,
    params: dict[str, str] | None = None,
    turn_timeout_s: float = 30.0,
    on_event: EventCallback | None = None,
    barge_in_after_s: float | None = None,
    open_timeout_s: float = 10.0,
) -> CallSummary:
    """Place one call to a media-stream URL, speak each WAV as a caller turn, and return the outcome.

    `speed` makes the caller-side clock that many times faster; the bot's audio always plays
    in real time. `barge_in_after_s` starts the next WAV that many seconds after the first
    bot audio of a reply to a caller turn, instead of waiting for the reply to end (the
    greeting is always heard to the end). `on_event` receives the `user`, `bot` and
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
    out_path = _check_out_path(out)
    clips = [load_caller_clip(path) for path in wavs]

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
            await call.conduct(clips, barge_in_after_s=barge_in_after_s)
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


# Command line.


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


def add_call_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of `voicebot call` to parser."""
    parser.add_argument("url", metavar="URL", help="media-stream URL of the service, e.g. ws://127.0.0.1:8080/media")
    parser.add_argument(
        "--wav",
        dest="wavs",
        metavar="FILE",
        action="append",
        required=True,
        help="WAV file spoken as one caller turn (any rate, mono or stereo); repeat for more turns",
    )
    parser.add_argument(
        "--out",
        metavar="BOT.wav",
        help="write the bot audio as played to an 8 kHz 16-bit mono WAV file: the replies back to back, "
        "without the silence between them, and without audio dropped by `clear`",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object per line instead of text")
    parser.add_argument(
        "--speed",
        type=_positive_float,
        default=1.0,
        metavar="N",
        help="run the caller-side clock N times faster than real time (default 1); bot audio plays in real time",
    )
    parser.add_argument(
        "--param",
        dest="params",
        metavar="KEY=VALUE",
        type=_key_value,
        action="append",
        default=[],
        help="custom parameter sent in `start`; repeatable",
    )
    parser.add_argument(
        "--turn-timeout",
        dest="turn_timeout",
        type=_positive_float,
        default=30.0,
        metavar="SECONDS",
        help="hang up when the service sends nothing for this many seconds while a reply is due (default 30)",
    )
    parser.add_argument(
        "--language",
        choices=("zh", "yue"),
        help="language of the call, sent as the custom parameter `language` (overrides --param language=)",
    )


def print_event(event: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(event, ensure_ascii=False), flush=True)
        return
    kind = event["event"]
    if kind == "user":
        print(f"caller: {event['text']}", flush=True)
    elif kind == "bot":
        confidence = event.get("confidence")
        label = f"bot ({float(confidence):.2f})" if isinstance(confidence, (int, float)) else "bot"
        print(f"{label}: {event['text']}", flush=True)
    elif kind == "handoff":
        print(f"handoff: {event['reason']}", flush=True)


def format_summary(summary: CallSummary) -> str:
    stats = summary.latency_stats_ms()
    if stats["max"] is None:
        latency = "latency not measured"
    else:
        latency = f"latency p50 {stats['p50']:.0f} ms, p95 {stats['p95']:.0f} ms, max {stats['max']:.0f} ms"
    text = f"call {summary.call_id or summary.call_sid}: {len(summary.turns)} caller turn(s), {latency}"
    if summary.handoff_reason is not None:
        text += ", handed off"
    if summary.clears:
        text += f", {summary.clears} clear(s)"
    return text


def run_call_command(args: argparse.Namespace) -> int:
    """Run `voicebot call` with parsed arguments and return the process exit code."""
    params = dict(args.params)
    if args.language:
        params["language"] = args.language

    def on_event(event: dict[str, Any]) -> None:
        print_event(event, as_json=args.json)

    try:
        summary = asyncio.run(
            place_call(
                args.url,
                args.wavs,
                out=args.out,
                speed=args.speed,
                params=params,
                turn_timeout_s=args.turn_timeout,
                on_event=on_event,
            )
        )
    except (AudioError, ConfigError, ServiceUnreachableError, ProtocolError) as e:
        print(f"voicebot call: {e}", file=sys.stderr)
        if isinstance(e, ServiceUnreachableError):
            return EXIT_UNREACHABLE
        return EXIT_PROTOCOL if isinstance(e, ProtocolError) else EXIT_INVALID_INPUT
    except KeyboardInterrupt:
        print("voicebot call: interrupted; the call was not completed", file=sys.stderr)
        return 130

    if args.json:
        print(json.dumps(summary.summary_event(), ensure_ascii=False), flush=True)
    else:
        print(format_summary(summary), flush=True)
    if summary.timed_out:
        if summary.turns:
            what = f"reply to caller turn {len(summary.turns)} ({summary.turns[-1].wav})"
        else:
            what = "greeting"
        print(
            f"voicebot call: no {what} within {args.turn_timeout} s; hung up. "
            "Check the service log, or raise --turn-timeout.",
            file=sys.stderr,
        )
        return EXIT_TURN_TIMEOUT
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m telephony.softphone`, the same as `voicebot call`."""
    parser = argparse.ArgumentParser(
        prog="voicebot call",
        description="Call a voicebot media-stream endpoint as a test softphone.",
        epilog="Exit codes: 0 done, 2 invalid input, 3 service unreachable, 4 protocol error, 5 no reply in time.",
    )
    add_call_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return run_call_command(args)


if __name__ == "__main__":
    sys.exit(main())
