"""Media-stream protocol tests: message order, validation errors and outbound messages, with no socket."""

import base64
import json

import pytest

from telephony import mediastream as ms
from voicebot.errors import ProtocolError


def started_parser(**params: str) -> ms.MediaStreamParser:
    parser = ms.MediaStreamParser()
    parser.feed(ms.connected_message())
    parser.feed(ms.start_message("MZ1", "CA1", custom_parameters=params))
    return parser


def test_full_stream_events():
    """connected, start, media, dtmf, mark and stop parse into typed events."""
    parser = ms.MediaStreamParser()
    assert isinstance(parser.feed(ms.connected_message()), ms.Connected)
    start = parser.feed(ms.start_message("MZ1", "CA1", custom_parameters={"language": "yue"}))
    assert isinstance(start, ms.Start)
    assert start.stream_sid == "MZ1"
    assert start.call_sid == "CA1"
    assert start.custom_parameters == {"language": "yue"}
    assert start.media_format == ms.MediaFormat("audio/x-mulaw", 8000, 1)
    media = parser.feed(ms.inbound_media_message("MZ1", b"\xff" * 160, sequence_number=3, chunk=1, timestamp_ms=20))
    assert isinstance(media, ms.Media)
    assert media.payload == b"\xff" * 160
    assert media.chunk == 1
    assert media.timestamp_ms == 20
    assert parser.feed(ms.dtmf_message("MZ1", "7", sequence_number=4)) == ms.Dtmf("MZ1", "7")
    assert parser.feed(ms.mark_message("MZ1", "t1s0")) == ms.Mark("MZ1", "t1s0")
    assert isinstance(parser.feed(ms.stop_message("MZ1", "CA1", sequence_number=5)), ms.Stop)
    assert parser.state is ms.StreamState.STOPPED


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"foo": 1}', "no string 'event' field"),
        ('{"event": "dance"}', "unknown event 'dance'"),
        (b"\x00\x01", "binary WebSocket message"),
        ("x" * (ms.MAX_MESSAGE_BYTES + 1), "exceeds"),
    ],
)
def test_malformed_messages_raise_clear_errors(message, expected):
    """Each malformed message raises ProtocolError naming what was wrong."""
    parser = started_parser()
    with pytest.raises(ProtocolError, match=expected):
        parser.feed(message)


def test_media_before_start_rejected():
    """Media before start is a protocol error that says to send start first."""
    parser = ms.MediaStreamParser()
    with pytest.raises(ProtocolError, match="before 'start'"):
        parser.feed(ms.inbound_media_message("MZ1", b"\xff", sequence_number=1, chunk=1, timestamp_ms=0))


def test_bad_base64_payload_rejected():
    """A media payload that is not base64 is rejected with the start of the payload in the message."""
    parser = started_parser()
    message = json.dumps({"event": "media", "streamSid": "MZ1", "media": {"payload": "@@@not-base64"}})
    with pytest.raises(ProtocolError, match="not valid base64"):
        parser.feed(message)


def test_oversized_media_payload_rejected():
    """A media message with more than one second of audio is rejected."""
    parser = started_parser()
    payload = base64.b64encode(b"\xff" * (ms.MAX_MEDIA_PAYLOAD_BYTES + 1)).decode()
    message = json.dumps({"event": "media", "streamSid": "MZ1", "media": {"payload": payload}})
    with pytest.raises(ProtocolError, match="exceeds"):
        parser.feed(message)


def test_wrong_stream_sid_rejected():
    """A message for another stream is rejected, naming both stream ids."""
    parser = started_parser()
    with pytest.raises(ProtocolError, match="does not match"):
        parser.feed(ms.mark_message("MZ2", "x"))


def test_unsupported_media_format_rejected():
    """A start with a format other than 8 kHz mu-law mono says which format to send."""
    message = json.loads(ms.start_message("MZ1", "CA1"))
    message["start"]["mediaFormat"]["sampleRate"] = 16000
    with pytest.raises(ProtocolError, match="send audio/x-mulaw at 8000 Hz"):
        ms.MediaStreamParser().feed(json.dumps(message))


def test_second_start_rejected():
    """A second start on the same stream is rejected."""
    parser = started_parser()
    with pytest.raises(ProtocolError, match="second 'start'"):
        parser.feed(ms.start_message("MZ1", "CA1"))


def test_message_after_stop_rejected():
    """Nothing is accepted after stop."""
    parser = started_parser()
    parser.feed(ms.stop_message("MZ1", "CA1", sequence_number=9))
    with pytest.raises(ProtocolError, match="after 'stop'"):
        parser.feed(ms.mark_message("MZ1", "x"))


def test_invalid_dtmf_digit_rejected():
    """A DTMF digit outside the keypad is rejected."""
    parser = started_parser()
    with pytest.raises(ProtocolError, match="not one of"):
        parser.feed(ms.dtmf_message("MZ1", "X", sequence_number=2))


def test_outbound_messages_round_trip():
    """media, mark and clear built by the service parse back on the softphone side."""
    assert ms.parse_outbound(ms.media_message("MZ1", b"\x01\x02")) == ms.PlayMedia(b"\x01\x02")
    assert ms.parse_outbound(ms.mark_message("MZ1", "t0s1")) == ms.PlayMark("t0s1")
    assert ms.parse_outbound(ms.clear_message("MZ1")) == ms.Clear()


def test_sideband_event_keeps_chinese_text():
    """Sideband events carry the stream id and unescaped Chinese text."""
    message = json.loads(ms.voicebot_event_message("MZ1", {"type": "user", "text": "年费"}))
    assert message == {"event": "voicebot", "streamSid": "MZ1", "type": "user", "text": "年费"}
