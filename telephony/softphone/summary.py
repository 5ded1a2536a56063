"""Results of a test call: one `TurnResult` per caller turn and the `CallSummary`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class TurnResult:
    """One caller turn, spoken (`wav`) or keyed in (`keys`), and the bot's reply to it."""

    wav: Path | None = None
    keys: str | None = None  # keypad keys pressed in this turn, e.g. "6288#"
    user_text: str | None = None
    bot_texts: list[str] = field(default_factory=list)
    # End of the caller's turn (last voiced frame, or the last key press) to the first bot audio received.
    latency_ms: float | None = None
    barged_in: bool = False  # the next caller turn started before this reply was done
    cleared: bool = False  # the service sent `clear` while this reply was playing
    speech_end_s: float | None = None  # event-loop time of the end of the caller's turn
    first_audio_s: float | None = None

    def describe(self) -> str:
        """Name the turn for messages: the WAV path or the keys pressed."""
        if self.keys is not None:
            return f"keys {self.keys}"
        return str(self.wav)


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

