"""Tests of the test softphone against a scripted fake media-stream service on 127.0.0.1."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path

import numpy as np
import pytest
import soundfile
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response
from websockets.exceptions import ConnectionClosed

from telephony.g711 import mulaw_to_pcm, pcm_to_mulaw
from telephony.mediastream import (
    Dtmf,
    Mark,
    Media,
    MediaStreamParser,
    Start,
    Stop,
    clear_message,
    mark_message,
    media_message,
)
from telephony.softphone import (
    FRAME_SAMPLES,
    KEY_PRESS_INTERVAL_S,
    KeyPresses,
    PlayoutBuffer,
    add_call_arguments,
    last_voiced_frame_index,
    load_caller_clip,
    place_call,
    run_call_command,
)
from voicebot.errors import AudioError, ConfigError, ProtocolError

pytestmark = pytest.mark.timeout(30)

REPO = Path(__file__).resolve().parents[1]
SHARED_SPEECH = Path(os.environ.get("VOICEBOT_SHARED_SPEECH", REPO.parent / "shared" / "speech"))
SAMPLE_RATE = 8000
FRAME_S = 0.02
# Frames whose decoded RMS is above this count as caller speech in the fake service.
SPEECH_RMS = 500.0
# Silent frames after speech that end a caller turn in the fake service (200 ms).
END_OF_TURN_FRAMES = 10


def tone_mulaw(duration_s: float, *, frequency_hz: float = 440.0, amplitude: float = 0.3) -> bytes:
    t = np.arange(int(duration_s * SAMPLE_RATE)) / SAMPLE_RATE
    pcm = np.round(amplitude * 32767 * np.sin(2 * np.pi * frequency_hz * t)).astype("<i2")
    return pcm_to_mulaw(pcm.tobytes())


def write_caller_wav(
    path: Path,
    *,
    voiced_s: float = 0.5,
    trailing_s: float = 0.4,
    sample_rate: int = 24000,
    channels: int = 1,
    subtype: str = "PCM_16",
) -> Path:
    t = np.arange(int(voiced_s * sample_rate)) / sample_rate
    voiced = 0.3 * np.sin(2 * np.pi * 300.0 * t)
    samples = np.concatenate([voiced, np.zeros(int(trailing_s * sample_rate))])
    if channels > 1:
        samples = np.repeat(samples[:, None], channels, axis=1)
    soundfile.write(str(path), samples, sample_rate, subtype=subtype)
    return path


@dataclass
class Script:
    """What the fake service does on a call."""

    greeting_s: float = 0.3
    reply_s: float = 0.3
    reply_burst: bool = False  # send each reply at once instead of one frame per 20 ms
    answer_turns: bool = True
    close_after_turn: int | None = None  # close with code 1011 when this caller turn ends
    error_after_turn: int | None = None  # send a sideband error and close when this caller turn ends
    handoff_on_turn: int | None = None  # send a handoff event with this reply
    hang_up_after_reply: int | None = None  # close with code 1000 in place of this reply's final mark
    clear_after_s: float | None = None  # send `clear` this long after each reply's audio
    clear_on_barge_in: bool = False  # send `clear` and stop the reply when the caller speaks over it


@dataclass
class FakeService:
    """Scripted media-stream service that records what the softphone sent."""

    script: Script
    url: str = ""
    connections: int = 0
    start: Start | None = None
    frames: int = 0
    caller_turns: int = 0
    stopped: bool = False
    marks_sent: dict[str, float] = field(default_factory=dict)
    mark_echoes: list[tuple[str, float]] = field(default_factory=list)
    clear_sent_s: list[float] = field(default_factory=list)
    # Keypad keys received, each with the number of media frames received before it.
    keys: list[tuple[str, int]] = field(default_factory=list)
    turn_kinds: list[str] = field(default_factory=list)  # "speech" or "keys", in the order the turns ended

    async def handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        parser = MediaStreamParser()
        replying: asyncio.Task[None] | None = None
        voiced_frames = 0
        silent_frames = 0
        try:
            parser.feed(await ws.recv())
            start = parser.feed(await ws.recv())
            assert isinstance(start, Start)
            self.start = start
            await self.send_event(ws, {"type": "call", "call_id": "call-test"})
            await self.send_event(ws, {"type": "future_event", "detail": "ignored by old softphones"})
            replying = asyncio.create_task(self.reply(ws, 0))

            async for raw in ws:
                event = parser.feed(raw)
                if isinstance(event, Mark):
                    self.mark_echoes.append((event.name, asyncio.get_running_loop().time()))
                elif isinstance(event, Stop):
                    self.stopped = True
                    break
                elif isinstance(event, Dtmf):
                    # Like the real service, `#` ends a keypad entry.
                    self.keys.append((event.digit, self.frames))
                    if event.digit == "#":
                        self.caller_turns += 1
                        self.turn_kinds.append("keys")
                        if self.script.answer_turns:
                            replying = asyncio.create_task(self.reply(ws, self.caller_turns))
                elif isinstance(event, Media):
                    self.frames += 1
                    pcm = np.frombuffer(mulaw_to_pcm(event.payload), dtype="<i2").astype(np.float64)
                    if np.sqrt(np.mean(pcm**2)) > SPEECH_RMS:
                        voiced_frames += 1
                        silent_frames = 0
                        if self.script.clear_on_barge_in and voiced_frames == 3 and replying and not replying.done():
                            replying.cancel()
                            self.clear_sent_s.append(asyncio.get_running_loop().time())
                            await ws.send(clear_message(self.stream_sid))
                        continue
                    if voiced_frames < 3:
                        continue
                    silent_frames += 1
                    if silent_frames < END_OF_TURN_FRAMES:
                        continue
                    voiced_frames = 0
                    self.caller_turns += 1
                    self.turn_kinds.append("speech")
                    if self.script.close_after_turn == self.caller_turns:
                        await ws.close(1011, "fake service failure")
                        return
                    if self.script.error_after_turn == self.caller_turns:
                        await self.send_event(ws, {"type": "error", "message": "fake protocol violation"})
                        await ws.close(1008, "protocol error")
                        return
                    if self.script.answer_turns:
                        replying = asyncio.create_task(self.reply(ws, self.caller_turns))
        except ConnectionClosed:
            pass
        finally:
            if replying is not None:
                replying.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await replying

    @property
    def stream_sid(self) -> str:
        assert self.start is not None
        return self.start.stream_sid

    async def send_event(self, ws: ServerConnection, body: dict[str, object]) -> None:
        await ws.send(json.dumps({"event": "voicebot", **body}, ensure_ascii=False))

    async def reply(self, ws: ServerConnection, turn: int) -> None:
        if turn > 0:
            await self.send_event(ws, {"type": "user", "turn": turn, "text": f"来电第{turn}句"})
        await self.send_event(
            ws, {"type": "bot", "turn": turn, "text": f"回答{turn}", "confidence": 0.93, "kind": "answer"}
        )
        if self.script.handoff_on_turn == turn:
            await self.send_event(ws, {"type": "handoff", "reason": "caller asked for an agent"})

        audio = tone_mulaw(self.script.greeting_s if turn == 0 else self.script.reply_s)
        for offset in range(0, len(audio), FRAME_SAMPLES):
            await ws.send(media_message(self.stream_sid, audio[offset : offset + FRAME_SAMPLES]))
            if not self.script.reply_burst:
                await asyncio.sleep(FRAME_S)
        if self.script.clear_after_s is not None and turn > 0:
            await self.send_mark(ws, f"before-clear-{turn}")
            await asyncio.sleep(self.script.clear_after_s)
            self.clear_sent_s.append(asyncio.get_running_loop().time())
            await ws.send(clear_message(self.stream_sid))

        await self.send_event(ws, {"type": "reply_done", "turn": turn})
        if self.script.hang_up_after_reply == turn:
            # Closing in place of the final mark makes the close reach the softphone before its stop.
            await ws.close(1000, "call ended")
            return
        await self.send_mark(ws, f"reply-{turn}")

    async def send_mark(self, ws: ServerConnection, name: str) -> None:
        self.marks_sent[name] = asyncio.get_running_loop().time()
        await ws.send(mark_message(self.stream_sid, name))


@contextlib.asynccontextmanager
async def fake_service(script: Script | None = None) -> AsyncIterator[FakeService]:
    service = FakeService(script or Script())
    async with serve(service.handle, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        service.url = f"ws://127.0.0.1:{port}/media"
        yield service


def call_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_call_arguments(parser)
    return parser.parse_args(list(argv))


async def run_cli(*argv: str) -> int:
    # run_call_command starts its own event loop, so it runs in a thread while the fake
    # service keeps serving on this test's loop.
    return await asyncio.to_thread(run_call_command, call_args(*argv))


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# Pure parts: clip loading, end of speech, playout.


def test_last_voiced_frame_ignores_trailing_silence() -> None:
    """The last voiced frame is where the tone ends, not where the clip ends."""
    pcm = np.concatenate([0.3 * np.ones(SAMPLE_RATE // 2), 0.0005 * np.ones(SAMPLE_RATE // 2)])

    assert last_voiced_frame_index(pcm) == 24
    assert last_voiced_frame_index(np.zeros(1000)) == 6


@pytest.mark.parametrize(
    ("sample_rate", "channels", "subtype"),
    [(24000, 1, "PCM_16"), (48000, 2, "FLOAT"), (16000, 1, "PCM_24"), (8000, 2, "PCM_32")],
)
def test_load_clip_converts_formats(tmp_path: Path, sample_rate: int, channels: int, subtype: str) -> None:
    """Any rate, channel count and sample format becomes 20 ms frames of 8 kHz mu-law."""
    path = write_caller_wav(
        tmp_path / "caller.wav",
        voiced_s=0.5,
        trailing_s=0.5,
        sample_rate=sample_rate,
        channels=channels,
        subtype=subtype,
    )

    clip = load_caller_clip(path)

    assert len(clip.frames) == 50
    assert all(len(frame) == FRAME_SAMPLES for frame in clip.frames)
    assert 23 <= clip.last_voiced_frame <= 25
    assert clip.frames[-1] == b"\xff" * FRAME_SAMPLES


def test_load_clip_of_shared_caller_audio() -> None:
    """A 24 kHz caller sentence loads with its trailing silence excluded from speech."""
    path = SHARED_SPEECH / "callers" / "faq_annual_fee.wav"
    if not path.exists():
        pytest.skip(f"{path} not found; set VOICEBOT_SHARED_SPEECH to the shared speech folder")

    clip = load_caller_clip(path)

    assert len(clip.frames) == 177
    assert clip.last_voiced_frame < len(clip.frames) - 5


def test_load_clip_rejects_missing_and_invalid(tmp_path: Path) -> None:
    """A missing file, a directory and a non-audio file raise AudioError naming the path."""
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("not audio")

    for path in (tmp_path / "missing.wav", tmp_path, not_audio):
        with pytest.raises(AudioError, match=str(path)):
            load_caller_clip(path)


def test_playout_reaches_mark_after_audio() -> None:
    """A mark is reached only after the audio queued before it has played."""
    playout = PlayoutBuffer()

    assert playout.push_media(b"\x00" * 800, 10.0) == []
    assert playout.push_mark("m1", 10.0) == []
    assert playout.advance(10.05) == []
    assert playout.advance(10.1) == ["m1"]
    assert len(playout.played) == 800
    assert playout.idle


def test_playout_mark_on_idle_line() -> None:
    """A mark with nothing buffered is reached at once, and idle time is not credited to later audio."""
    playout = PlayoutBuffer()
    playout.advance(0.0)

    assert playout.push_mark("m0", 5.0) == ["m0"]
    playout.push_media(b"\x00" * 160, 9.0)
    playout.push_mark("m1", 9.0)
    assert playout.advance(9.01) == []
    assert playout.advance(9.02) == ["m1"]


def test_playout_clear_drops_audio_and_returns_marks() -> None:
    """Clear drops unplayed audio and returns every pending mark in order."""
    playout = PlayoutBuffer()
    playout.push_media(b"\x00" * 8000, 0.0)
    playout.push_mark("a", 0.0)
    playout.push_media(b"\x00" * 8000, 0.0)
    playout.push_mark("b", 0.0)

    assert playout.clear(0.25) == ["a", "b"]
    assert len(playout.played) == 2000
    assert playout.idle
    assert playout.remaining_s() == 0.0


# Command line: --wav and --keys.


def test_wav_and_keys_keep_command_line_order() -> None:
    """--wav and --keys append to one list of caller turns in command-line order."""
    args = call_args(
        "ws://127.0.0.1:1/media", "--wav", "flow_lost_card.wav", "--keys", "6288#", "--wav", "confirm_yes.wav",
        "--keys", "*0", "--keys", "ABCD",
    )  # fmt: skip

    assert args.steps == [
        "flow_lost_card.wav",
        KeyPresses("6288#"),
        "confirm_yes.wav",
        KeyPresses("*0"),
        KeyPresses("ABCD"),
    ]


def test_keys_may_come_first() -> None:
    """--keys before any --wav is the first caller turn after the greeting."""
    args = call_args("ws://127.0.0.1:1/media", "--keys", "1#", "--wav", "a.wav")

    assert args.steps == [KeyPresses("1#"), "a.wav"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("62x8#", "invalid keys '62x8#': 'x' is not a keypad key;"),
        ("6288e", "'e' is not a keypad key;"),
        ("12 3", "' ' is not a keypad key;"),
        ("a", "'a' is not a keypad key (upper case);"),
        ("", "no keys given;"),
    ],
    ids=["letter", "trailing-letter", "space", "lower-case", "empty"],
)
def test_invalid_keys_exit_2_with_fix(value: str, expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    """An invalid --keys value is a usage error that names the value and the keys allowed."""
    with pytest.raises(SystemExit) as exit_info:
        call_args("ws://127.0.0.1:1/media", "--keys", value)

    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "argument --keys:" in err
    assert expected in err
    assert "write only the keypad keys 0-9, *, # and A-D, e.g. --keys 6288#" in err


def test_key_presses_reject_invalid_keys() -> None:
    """KeyPresses, the place_call form of --keys, raises ConfigError on a key outside 0-9, *, #, A-D."""
    with pytest.raises(ConfigError, match="'7x'.*'x' is not a keypad key"):
        KeyPresses("7x")

    assert KeyPresses("0123456789*#ABCD").keys == "0123456789*#ABCD"


def test_call_without_turns_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """Neither --wav nor --keys is an error that names both options, before any connection."""
    code = run_call_command(call_args("ws://127.0.0.1:1/media"))

    err = capsys.readouterr().err
    assert code == 2
    assert "no caller turn given" in err
    assert "--wav FILE or --keys DIGITS" in err


# Calls against the fake service.


async def test_call_json_lines_contract(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints bot, user and summary lines in call order, and nothing on stderr."""
    first = write_caller_wav(tmp_path / "first.wav")
    second = write_caller_wav(tmp_path / "second.wav", sample_rate=44100, channels=2)

    async with fake_service() as service:
        code = await run_cli(
            service.url, "--wav", str(first), "--wav", str(second), "--json", "--speed", "4",
            "--param", "channel=test", "--language", "yue",
        )  # fmt: skip

    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.err == ""
    lines = json_lines(captured.out)
    assert [line["event"] for line in lines] == ["bot", "user", "bot", "user", "bot", "summary"]
    assert lines[0] == {"event": "bot", "text": "回答0", "confidence": 0.93, "kind": "answer", "topic": None}
    assert lines[1] == {"event": "user", "text": "来电第1句"}
    summary = lines[-1]
    assert summary["call_id"] == "call-test"
    assert summary["turns"] == 2
    latency = summary["latency_ms"]
    assert isinstance(latency, dict)
    assert set(latency) == {"p50", "p95", "max"}
    assert all(isinstance(value, float) and value > 0 for value in latency.values())
    assert "来电" in captured.out  # ensure_ascii=False keeps Chinese readable
    assert service.start is not None
    assert service.start.stream_sid.startswith("MZ")
    assert service.start.call_sid.startswith("CA")
    assert service.start.custom_parameters == {"voicebot_events": "1", "channel": "test", "language": "yue"}
    assert service.stopped


async def test_call_prints_human_readable_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without --json the call prints caller, bot and summary lines."""
    wav = write_caller_wav(tmp_path / "caller.wav")

    async with fake_service() as service:
        code = await run_cli(service.url, "--wav", str(wav), "--speed", "4")

    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0] == "bot (0.93): 回答0"
    assert out[1] == "caller: 来电第1句"
    assert out[2] == "bot (0.93): 回答1"
    assert out[3].startswith("call call-test: 1 caller turn(s), latency p50 ")


async def test_marks_echoed_after_their_audio(tmp_path: Path) -> None:
    """Marks come back in order, and only after the audio sent before them has played."""
    wav = write_caller_wav(tmp_path / "caller.wav")
    script = Script(reply_s=0.6, reply_burst=True)

    async with fake_service(script) as service:
        summary = await place_call(service.url, [wav], speed=4)

    assert summary.marks_echoed == ["reply-0", "reply-1"]
    assert [name for name, _ in service.mark_echoes] == ["reply-0", "reply-1"]
    echoes = dict(service.mark_echoes)
    # The whole 0.6 s reply arrived at once, so its mark is due 0.6 s later.
    assert echoes["reply-1"] - service.marks_sent["reply-1"] >= 0.5


async def test_clear_drops_audio_and_echoes_marks(tmp_path: Path) -> None:
    """On clear the softphone drops unplayed audio and echoes the pending mark at once."""
    wav = write_caller_wav(tmp_path / "caller.wav")
    out = tmp_path / "bot.wav"
    script = Script(reply_s=3.0, reply_burst=True, clear_after_s=0.3)

    async with fake_service(script) as service:
        summary = await place_call(service.url, [wav], speed=4, out=out)

    assert summary.clears == 1
    assert summary.turns[0].cleared
    echoes = dict(service.mark_echoes)
    assert echoes["before-clear-1"] >= service.clear_sent_s[0]
    assert echoes["before-clear-1"] - service.marks_sent["before-clear-1"] < 2.0
    played_s = soundfile.info(str(out)).duration
    assert played_s < 2.0  # 0.3 s greeting and about 0.3 s of the 3 s reply


async def test_out_wav_contains_bot_audio(tmp_path: Path) -> None:
    """--out writes the played bot audio as an 8 kHz 16-bit mono WAV with the tone's energy."""
    wavs = [write_caller_wav(tmp_path / "a.wav"), write_caller_wav(tmp_path / "b.wav")]
    out = tmp_path / "bot.wav"

    async with fake_service(Script(greeting_s=0.4, reply_s=0.3)) as service:
        code = await run_cli(
            service.url, "--wav", str(wavs[0]), "--wav", str(wavs[1]), "--out", str(out), "--speed", "4"
        )

    assert code == 0
    info = soundfile.info(str(out))
    assert info.samplerate == 8000
    assert info.channels == 1
    assert info.subtype == "PCM_16"
    assert info.frames == int(0.4 * 8000) + 2 * int(0.3 * 8000)
    audio, _ = soundfile.read(str(out), dtype="float64")
    assert np.sqrt(np.mean(audio**2)) > 0.15  # a 0.3 amplitude tone has RMS 0.21


async def test_speed_runs_caller_clock_faster(tmp_path: Path) -> None:
    """--speed 10 streams a 3 s caller turn in much less than 3 s of wall time."""
    wav = write_caller_wav(tmp_path / "long.wav", voiced_s=2.6, trailing_s=0.4)
    loop = asyncio.get_running_loop()

    async with fake_service() as service:
        started_s = loop.time()
        summary = await place_call(service.url, [wav], speed=10)
        elapsed_s = loop.time() - started_s

    assert len(summary.turns) == 1
    assert service.frames >= 150
    assert elapsed_s < 3.0


async def test_barge_in_records_clear(tmp_path: Path) -> None:
    """With barge_in_after_s the next WAV interrupts the reply and the clear is recorded."""
    wavs = [write_caller_wav(tmp_path / "a.wav"), write_caller_wav(tmp_path / "b.wav")]
    script = Script(reply_s=3.0, clear_on_barge_in=True)

    async with fake_service(script) as service:
        summary = await place_call(service.url, wavs, speed=4, barge_in_after_s=0.3)

    assert len(summary.turns) == 2
    assert summary.turns[0].barged_in
    assert summary.turns[0].cleared
    assert not summary.turns[1].barged_in
    assert summary.clears == 1
    assert service.caller_turns == 2
    assert summary.marks_echoed[-1] == "reply-2"


async def test_handoff_ends_call_early(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """After a handoff and the service's close, no more caller turns are sent and the exit code is 0."""
    wavs = [write_caller_wav(tmp_path / "a.wav"), write_caller_wav(tmp_path / "b.wav")]

    async with fake_service(Script(handoff_on_turn=1, hang_up_after_reply=1)) as service:
        code = await run_cli(service.url, "--wav", str(wavs[0]), "--wav", str(wavs[1]), "--json", "--speed", "4")

    lines = json_lines(capsys.readouterr().out)
    assert code == 0
    assert {"event": "handoff", "reason": "caller asked for an agent"} in lines
    assert lines[-1]["turns"] == 1
    assert service.caller_turns == 1


async def test_service_hang_up_after_last_reply(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A normal close by the service after the reply to the last WAV ends the call with exit code 0."""
    wavs = [write_caller_wav(tmp_path / "a.wav"), write_caller_wav(tmp_path / "b.wav")]

    async with fake_service(Script(hang_up_after_reply=2)) as service:
        code = await run_cli(service.url, "--wav", str(wavs[0]), "--wav", str(wavs[1]), "--json", "--speed", "4")

    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert json_lines(captured.out)[-1]["turns"] == 2
    assert service.caller_turns == 2
    assert not service.stopped


async def test_no_reply_times_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A service that never replies to the caller ends the call with exit code 5 and a stop."""
    wav = write_caller_wav(tmp_path / "caller.wav")

    async with fake_service(Script(answer_turns=False)) as service:
        code = await run_cli(service.url, "--wav", str(wav), "--json", "--speed", "4", "--turn-timeout", "1")

    captured = capsys.readouterr()
    assert code == 5
    assert "no reply to caller turn 1" in captured.err
    assert "within 1.0 s" in captured.err
    assert json_lines(captured.out)[-1]["event"] == "summary"
    assert service.stopped


async def test_bad_wav_exits_2_before_connecting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing WAV exits with code 2 and names the file, without connecting."""
    missing = tmp_path / "missing.wav"

    async with fake_service() as service:
        code = await run_cli(service.url, "--wav", str(missing))

    captured = capsys.readouterr()
    assert code == 2
    assert str(missing) in captured.err
    assert "not found" in captured.err
    assert captured.out == ""
    assert service.connections == 0


async def test_closed_port_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A port with no listener exits with code 3, naming the URL and `voicebot serve`."""
    wav = write_caller_wav(tmp_path / "caller.wav")
    # A bound socket that does not listen refuses connections, and no other process can take the port.
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        url = f"ws://127.0.0.1:{bound.getsockname()[1]}/media"
        code = await run_cli(url, "--wav", str(wav))

    err = capsys.readouterr().err
    assert code == 3
    assert url in err
    assert "voicebot serve" in err


async def test_wrong_path_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An HTTP 404 in place of the WebSocket upgrade exits with code 3 and points at the path."""
    wav = write_caller_wav(tmp_path / "caller.wav")

    def reject(connection: ServerConnection, request: Request) -> Response:
        return connection.respond(HTTPStatus.NOT_FOUND, "no such path\n")

    async with serve(FakeService(Script()).handle, "127.0.0.1", 0, process_request=reject) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/wrong"
        code = await run_cli(url, "--wav", str(wav))

    err = capsys.readouterr().err
    assert code == 3
    assert url in err
    assert "HTTP status 404" in err
    assert "/media" in err


@pytest.mark.parametrize(
    ("script", "expected"),
    [(Script(close_after_turn=1), "closed the media stream"), (Script(error_after_turn=1), "fake protocol violation")],
    ids=["close", "sideband-error"],
)
async def test_mid_call_failure_exits_4(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], script: Script, expected: str
) -> None:
    """A close or a sideband error in the middle of a call exits with code 4 and the reason."""
    wav = write_caller_wav(tmp_path / "caller.wav")

    async with fake_service(script) as service:
        code = await run_cli(service.url, "--wav", str(wav), "--wav", str(wav), "--speed", "4")

    err = capsys.readouterr().err
    assert code == 4
    assert expected in err
    assert service.url in err


async def test_place_call_close_leaks_no_task(tmp_path: Path) -> None:
    """place_call raises ProtocolError on a mid-call close and leaves no softphone task running."""
    wav = write_caller_wav(tmp_path / "caller.wav")

    async with fake_service(Script(close_after_turn=1)) as service:
        with pytest.raises(ProtocolError, match="1011"):
            await place_call(service.url, [wav], speed=4)

    leaked = [task.get_name() for task in asyncio.all_tasks() if task.get_name().startswith("softphone-")]
    assert leaked == []


async def test_module_runs_as_script(tmp_path: Path) -> None:
    """`python -m telephony.softphone` places a call and prints JSON lines."""
    wav = write_caller_wav(tmp_path / "caller.wav")

    async with fake_service() as service:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "telephony.softphone", service.url, "--wav", str(wav), "--json", "--speed", "4",
            cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=20)

    assert process.returncode == 0, stderr.decode()
    lines = json_lines(stdout.decode())
    assert lines[-1]["event"] == "summary"
    assert lines[-1]["turns"] == 1


# Keypad presses against the fake service.


async def test_keys_between_wavs_json_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--wav, --keys, --wav is three caller turns in that order, and --json shows the keys as a caller step."""
    first = write_caller_wav(tmp_path / "first.wav")
    last = write_caller_wav(tmp_path / "last.wav")

    async with fake_service() as service:
        code = await run_cli(
            service.url, "--wav", str(first), "--keys", "6288#", "--wav", str(last), "--json", "--speed", "4"
        )

    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.err == ""
    lines = json_lines(captured.out)
    events = [line["event"] for line in lines]
    assert events == ["bot", "user", "bot", "keys", "user", "bot", "user", "bot", "summary"]
    assert lines[3] == {"event": "keys", "digits": "6288#"}
    assert lines[5]["text"] == "回答2"
    assert lines[-1]["turns"] == 3
    assert service.turn_kinds == ["speech", "keys", "speech"]
    assert "".join(key for key, _ in service.keys) == "6288#"
    assert service.stopped


async def test_keys_first_after_greeting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--keys as the first turn is pressed after the greeting, and the text transcript shows it."""
    wav = write_caller_wav(tmp_path / "caller.wav")

    async with fake_service() as service:
        code = await run_cli(service.url, "--keys", "1#", "--wav", str(wav), "--speed", "4")

    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0] == "bot (0.93): 回答0"
    assert out[1] == "caller keys: 1#"
    assert out[2] == "caller: 来电第1句"
    assert out[3] == "bot (0.93): 回答1"
    assert out[-1].startswith("call call-test: 2 caller turn(s), latency p50 ")
    assert service.turn_kinds == ["keys", "speech"]
    assert service.mark_echoes[0][0] == "reply-0"


async def test_key_presses_spaced_on_caller_clock() -> None:
    """Presses are KEY_PRESS_INTERVAL_S apart on the caller clock: the line keeps sending frames between them."""
    async with fake_service() as service:
        summary = await place_call(service.url, [KeyPresses("6288#")], speed=4)

    turn = summary.turns[0]
    assert turn.keys == "6288#"
    assert turn.wav is None
    assert turn.user_text == "来电第1句"
    assert turn.bot_texts == ["回答1"]
    assert turn.latency_ms is not None
    keys = [key for key, _ in service.keys]
    assert keys == ["6", "2", "8", "8", "#"]
    frames_between = [later - earlier for (_, earlier), (_, later) in zip(service.keys, service.keys[1:])]
    expected_frames = KEY_PRESS_INTERVAL_S / FRAME_S  # 17.5 frames of 20 ms per gap
    # A stalled event loop skips frames instead of sending a burst, so the bound is loose.
    assert all(count >= 1 for count in frames_between), frames_between
    assert sum(frames_between) >= 2 * expected_frames, frames_between


async def test_no_reply_to_keys_names_them(capsys: pytest.CaptureFixture[str]) -> None:
    """A key turn without a reply exits with code 5 and names the keys in the message."""
    async with fake_service(Script(answer_turns=False)) as service:
        code = await run_cli(service.url, "--keys", "12#", "--speed", "4", "--turn-timeout", "1")

    captured = capsys.readouterr()
    assert code == 5
    assert "no reply to caller turn 1 (keys 12#) within 1.0 s" in captured.err
    assert service.keys[-1][0] == "#"
    assert service.stopped
