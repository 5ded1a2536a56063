"""Frames that voicebot adds to pipecat's set.

pipecat moves data between processors as frames. System frames skip the processor queues
and are never cancelled by an interruption, data frames are queued and dropped on
interruption, and control frames keep their order with the data around them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipecat.frames.frames import DataFrame, SystemFrame

from voicebot.responder.base import Reply


@dataclass
class CallerTurnAudioFrame(DataFrame):
    """The audio of one finished caller turn at 16 kHz, from first speech to end of turn."""

    audio: bytes = b""
    sample_rate: int = 16000
    turn_index: int = 0
    speech_started_at: float = 0.0  # epoch seconds
    speech_ended_at: float = 0.0  # epoch seconds: the last voiced audio of the turn
    end_of_turn_at: float = 0.0  # epoch seconds: when the turn model closed the turn


@dataclass
class TentativeTurnAudioFrame(DataFrame):
    """The audio of a caller turn that may be over: the caller paused, but Smart Turn judged the
    turn unfinished. Recognition starts on it at once; if the turn then ends without more
    speech, its CallerTurnAudioFrame carries the same audio and the transcript is ready.
    """

    audio: bytes = b""
    turn_index: int = 0


@dataclass
class TurnCompleteByTextFrame(SystemFrame):
    """Sent upstream by recognition: the tentative turn's transcript reads as finished, so the
    turn can end without waiting out the incomplete-turn timeout.

    A complete answer to what the dialog expects (four digits, a yes or no) ends the turn at
    once. A question (`question=True`) ends it after the shorter question timeout of silence,
    because callers often ask a second question after a short pause.
    """

    turn_index: int = 0
    audio_length: int = 0  # bytes of the tentative audio the transcript is of
    question: bool = False


@dataclass
class TentativeTurnLikelyOverFrame(SystemFrame):
    """Sent downstream by the turn detector when the caller has stayed silent for the question
    timeout after a tentative turn was cut. The turn is probably over, so a decode of it that
    still waits for a Whisper worker moves ahead as if the turn had ended.
    """

    turn_index: int = 0
    audio_length: int = 0  # bytes of the tentative audio


@dataclass
class CallerTranscriptFrame(DataFrame):
    """The transcript of one caller turn, with the timing needed for per-stage latency."""

    text: str = ""
    language: str = "zh"
    confidence: float = 0.0
    turn_index: int = 0
    speech_started_at: float = 0.0
    speech_ended_at: float = 0.0
    end_of_turn_at: float = 0.0
    transcribed_at: float = 0.0
    audio: bytes = b""  # the turn's 16 kHz PCM, for acoustic escalation cues


@dataclass
class BotReplyFrame(DataFrame):
    """A reply to speak. `speech_ended_at` is 0 for replies no caller turn triggered (the greeting)."""

    reply: Reply | None = None
    turn_index: int = 0
    language: str = "zh"
    speech_ended_at: float = 0.0


@dataclass
class SentenceAudioFrame(DataFrame):
    """Synthesised audio of one sentence of a reply (16-bit mono PCM)."""

    audio: bytes = b""
    sample_rate: int = 16000
    turn_index: int = 0
    sentence_index: int = 0
    text: str = ""
    last: bool = False  # the last sentence of the reply
    speech_ended_at: float = 0.0


@dataclass
class ReplyHeardFrame(SystemFrame):
    """Upstream: what the caller heard of a reply, once playback finished or was cut off."""

    turn_index: int = 0
    heard_text: str = ""
    interrupted: bool = False
    first_audio_at: float = 0.0


@dataclass
class PlaybackStateFrame(SystemFrame):
    """Upstream: whether bot audio is queued or playing at the caller's side."""

    playing: bool = False


@dataclass
class SidebandEventFrame(SystemFrame):
    """An event for a test client that asked for the voicebot sideband (transcripts, replies)."""

    payload: dict[str, Any] = field(default_factory=dict)


@dataclass
class SystemMessageFrame(DataFrame):
    """A message the call speaks outside the dialog (queue position, no rep); the dialog records it as a bot turn."""

    reply: Reply | None = None
    turn_index: int = 0
