"""Twilio Media Streams protocol as a pure state machine (no sockets).

A media stream is a WebSocket carrying JSON text messages. The telephony side sends
`connected`, `start`, then `media` (base64 G.711 mu-law, 8 kHz, normally 20 ms per message),
`dtmf` and `mark` (echoing a mark the application sent, once the audio before it has been
played), and finally `stop`. The application sends `media`, `mark` and `clear` (drop all
audio not yet played).

`MediaStreamParser` validates the inbound side and turns each message into an event;
the `*_message` helpers build outbound messages. Both sides (the service and the test
softphone) use this module, so the wire format is written in one place.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
from dataclasses import dataclass, field
from typing import Any, Union

from voicebot.errors import ProtocolError

# The only media format Twilio sends on a media stream.
MULAW_ENCODING = "audio/x-mulaw"
TELEPHONE_SAMPLE_RATE = 8000
# Upper bound for one inbound message. A 20 ms mu-law frame is about 250 bytes of JSON;
# anything this large is a broken or hostile peer.
MAX_MESSAGE_BYTES = 64 * 1024
# Upper bound for the audio in one media message: one second of 8 kHz mu-law.
MAX_MEDIA_PAYLOAD_BYTES = TELEPHONE_SAMPLE_RATE
DTMF_DIGITS = frozenset("0123456789*#ABCD")


@dataclass(frozen=True)
class MediaFormat:
    """Encoding of the inbound audio as announced in `start`."""

    encoding: str
    sample_rate: int
    channels: int


@dataclass(frozen=True)
class Connected:
    protocol: str
    version: str


@dataclass(frozen=True)
class Start:
    stream_sid: str
    call_sid: str
    account_sid: str
    tracks: tuple[str, ...]
    media_format: MediaFormat
    custom_parameters: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Media:
    stream_sid: str
    payload: bytes  # mu-law bytes, one per sample
    track: str = "inbound"
    chunk: int | None = None
    timestamp_ms: int | None = None


@dataclass(frozen=True)
class Dtmf:
    stream_sid: str
    digit: str


@dataclass(frozen=True)
class Mark:
    stream_sid: str
    name: str


@dataclass(frozen=True)
class Stop:
    stream_sid: str
    call_sid: str


InboundEvent = Union[Connected, Start, Media, Dtmf, Mark, Stop]


class StreamState(enum.Enum):
    AWAITING_START = "awaiting_start"
    STREAMING = "streaming"
    STOPPED = "stopped"


def _require(container: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in container:
        raise ProtocolError(f"{where}: missing field {key!r}; a Twilio media stream message always has it")
    value = container[key]
    if not isinstance(value, kind):
        raise ProtocolError(
            f"{where}: field {key!r} must be {kind.__name__}, got {type(value).__name__} {str(value)[:40]!r}"
        )
    return value


def _optional_int(container: dict[str, Any], key: str, where: str) -> int | None:
    value = container.get(key)
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ProtocolError(f"{where}: field {key!r} must be an integer string, got {str(value)[:40]!r}") from None


def decode_message(data: str | bytes) -> dict[str, Any]:
    """Parse one WebSocket message into a JSON object with an `event` field."""
    if isinstance(data, bytes):
        raise ProtocolError(
            f"received a binary WebSocket message of {len(data)} bytes; media streams carry JSON text messages"
        )
    if len(data) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {len(data)} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit")
    try:
        message = json.loads(data)
    except json.JSONDecodeError as e:
        raise ProtocolError(f"message is not valid JSON ({e.msg} at character {e.pos}): {data[:60]!r}") from None
    if not isinstance(message, dict):
        raise ProtocolError(f"message must be a JSON object, got {type(message).__name__}")
    event = message.get("event")
    if not isinstance(event, str):
        raise ProtocolError(f"message has no string 'event' field: {data[:60]!r}")
    return message


class MediaStreamParser:
    """Inbound half of a media stream: validates message order and content.

    `feed()` returns one event per message and raises ProtocolError on anything that breaks
    the protocol. After a ProtocolError the stream should be closed with code 1008 or 1003.
    """

    def __init__(self) -> None:
        self.state = StreamState.AWAITING_START
        self.stream_sid: str | None = None
        self.media_format: MediaFormat | None = None

    def feed(self, data: str | bytes) -> InboundEvent:
        message = decode_message(data)
        event = message["event"]
        if self.state is StreamState.STOPPED:
            raise ProtocolError(f"received {event!r} after 'stop'; the stream is over")
        if event == "connected":
            return Connected(protocol=str(message.get("protocol", "")), version=str(message.get("version", "")))
        if event == "start":
            return self._on_start(message)
        if self.state is StreamState.AWAITING_START:
            raise ProtocolError(f"received {event!r} before 'start'; send 'start' with the streamSid first")
        self._check_stream_sid(message, event)
        if event == "media":
            return self._on_media(message)
        if event == "dtmf":
            body = _require(message, "dtmf", dict, "dtmf")
            digit = _require(body, "digit", str, "dtmf")
            if digit not in DTMF_DIGITS:
                raise ProtocolError(f"dtmf: digit {digit!r} is not one of 0-9, *, #, A-D")
            return Dtmf(stream_sid=self.stream_sid or "", digit=digit)
        if event == "mark":
            body = _require(message, "mark", dict, "mark")
            return Mark(stream_sid=self.stream_sid or "", name=_require(body, "name", str, "mark"))
        if event == "stop":
            self.state = StreamState.STOPPED
            body = message.get("stop") if isinstance(message.get("stop"), dict) else {}
            return Stop(stream_sid=self.stream_sid or "", call_sid=str(body.get("callSid", "")))
        raise ProtocolError(
            f"unknown event {event!r}; expected connected, start, media, dtmf, mark or stop"
        )

    def _check_stream_sid(self, message: dict[str, Any], event: str) -> None:
        sid = message.get("streamSid")
        if sid is not None and sid != self.stream_sid:
            raise ProtocolError(f"{event}: streamSid {str(sid)[:40]!r} does not match the stream's {self.stream_sid!r}")

    def _on_start(self, message: dict[str, Any]) -> Start:
        if self.state is not StreamState.AWAITING_START:
            raise ProtocolError("received a second 'start' on the same stream")
        body = _require(message, "start", dict, "start")
        stream_sid = body.get("streamSid", message.get("streamSid"))
        if not isinstance(stream_sid, str) or not stream_sid:
            raise ProtocolError("start: missing 'streamSid'; it names the stream in every later message")
        fmt = _require(body, "mediaFormat", dict, "start")
        encoding = _require(fmt, "encoding", str, "start.mediaFormat")
        sample_rate = _optional_int(fmt, "sampleRate", "start.mediaFormat")
        channels = _optional_int(fmt, "channels", "start.mediaFormat") or 1
        if encoding != MULAW_ENCODING or sample_rate != TELEPHONE_SAMPLE_RATE or channels != 1:
            raise ProtocolError(
                f"start.mediaFormat: {encoding} {sample_rate} Hz {channels} channel(s) is not supported; "
                f"send {MULAW_ENCODING} at {TELEPHONE_SAMPLE_RATE} Hz, 1 channel"
            )
        params = body.get("customParameters") or {}
        if not isinstance(params, dict):
            raise ProtocolError("start.customParameters must be a JSON object of strings")
        tracks = body.get("tracks") or ["inbound"]
        self.state = StreamState.STREAMING
        self.stream_sid = stream_sid
        self.media_format = MediaFormat(encoding, sample_rate, channels)
        return Start(
            stream_sid=stream_sid,
            call_sid=str(body.get("callSid", "")),
            account_sid=str(body.get("accountSid", "")),
            tracks=tuple(str(t) for t in tracks),
            media_format=self.media_format,
            custom_parameters={str(k): str(v) for k, v in params.items()},
        )

    def _on_media(self, message: dict[str, Any]) -> Media:
        body = _require(message, "media", dict, "media")
        encoded = _require(body, "payload", str, "media")
        try:
            payload = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise ProtocolError(f"media: payload is not valid base64: {encoded[:24]!r}") from None
        if len(payload) > MAX_MEDIA_PAYLOAD_BYTES:
            raise ProtocolError(
                f"media: payload of {len(payload)} bytes exceeds {MAX_MEDIA_PAYLOAD_BYTES} (1 s of 8 kHz mu-law); "
                "send 20 ms frames"
            )
        return Media(
            stream_sid=self.stream_sid or "",
            payload=payload,
            track=str(body.get("track", "inbound")),
            chunk=_optional_int(body, "chunk", "media"),
            timestamp_ms=_optional_int(body, "timestamp", "media"),
        )


# Outbound messages (service to telephony side).


def media_message(stream_sid: str, payload: bytes) -> str:
    return json.dumps(
        {"event": "media", "streamSid": stream_sid, "media": {"payload": base64.b64encode(payload).decode("ascii")}}
    )


def mark_message(stream_sid: str, name: str) -> str:
    return json.dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


def clear_message(stream_sid: str) -> str:
    return json.dumps({"event": "clear", "streamSid": stream_sid})


def voicebot_event_message(stream_sid: str, payload: dict[str, Any]) -> str:
    """Build a sideband event (transcripts, replies) for clients that opted in with the
    `voicebot_events` custom parameter. Twilio itself never asks for them."""
    return json.dumps({"event": "voicebot", "streamSid": stream_sid, **payload}, ensure_ascii=False)


# Messages the telephony side sends; used by the test softphone and by tests.


def connected_message() -> str:
    return json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})


def start_message(
    stream_sid: str,
    call_sid: str,
    *,
    account_sid: str = "AC00000000000000000000000000000000",
    custom_parameters: dict[str, str] | None = None,
    sequence_number: int = 1,
) -> str:
    return json.dumps(
        {
            "event": "start",
            "sequenceNumber": str(sequence_number),
            "streamSid": stream_sid,
            "start": {
                "streamSid": stream_sid,
                "accountSid": account_sid,
                "callSid": call_sid,
                "tracks": ["inbound"],
                "customParameters": custom_parameters or {},
                "mediaFormat": {"encoding": MULAW_ENCODING, "sampleRate": TELEPHONE_SAMPLE_RATE, "channels": 1},
            },
        }
    )


def inbound_media_message(
    stream_sid: str, payload: bytes, *, sequence_number: int, chunk: int, timestamp_ms: int
) -> str:
    return json.dumps(
        {
            "event": "media",
            "sequenceNumber": str(sequence_number),
            "streamSid": stream_sid,
            "media": {
                "track": "inbound",
                "chunk": str(chunk),
                "timestamp": str(timestamp_ms),
                "payload": base64.b64encode(payload).decode("ascii"),
            },
        }
    )


def dtmf_message(stream_sid: str, digit: str, *, sequence_number: int) -> str:
    return json.dumps(
        {
            "event": "dtmf",
            "sequenceNumber": str(sequence_number),
            "streamSid": stream_sid,
            "dtmf": {"track": "inbound_track", "digit": digit},
        }
    )


def stop_message(stream_sid: str, call_sid: str, *, sequence_number: int) -> str:
    return json.dumps(
        {
            "event": "stop",
            "sequenceNumber": str(sequence_number),
            "streamSid": stream_sid,
            "stop": {"accountSid": "", "callSid": call_sid},
        }
    )


# Outbound events as the telephony side (the softphone) sees them.


@dataclass(frozen=True)
class PlayMedia:
    payload: bytes


@dataclass(frozen=True)
class PlayMark:
    name: str


@dataclass(frozen=True)
class Clear:
    pass


OutboundEvent = Union[PlayMedia, PlayMark, Clear]


def parse_outbound(data: str | bytes) -> OutboundEvent:
    """Parse a message that the service sends (media, mark or clear)."""
    message = decode_message(data)
    event = message["event"]
    if event == "media":
        body = _require(message, "media", dict, "media")
        try:
            return PlayMedia(base64.b64decode(_require(body, "payload", str, "media"), validate=True))
        except (binascii.Error, ValueError):
            raise ProtocolError("media: payload is not valid base64") from None
    if event == "mark":
        return PlayMark(_require(_require(message, "mark", dict, "mark"), "name", str, "mark"))
    if event == "clear":
        return Clear()
    raise ProtocolError(f"unknown outbound event {event!r}; expected media, mark or clear")
