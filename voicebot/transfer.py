"""Warm transfer of a media-stream call to a rep in the web console.

After the caller has heard the transfer message, the call is queued for a rep with the
skill the escalation chose, with a screen-pop: a summary, the masked transcript, the
reasons and the collected details. While the caller waits, hold music plays and the queue
position is announced, so the line is never silent. When a rep accepts, the rep first
hears a short spoken summary (the whisper, which the caller does not hear), then caller
and rep talk through the service. If no rep accepts in time, the bot tells the caller a
specialist will call back and carries on; a rep who drops mid-call puts the caller back
in the queue.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import TYPE_CHECKING

import numpy as np

from telephony import g711
from voicebot.errors import VoicebotError
from voicebot.handoff import (
    Accepted,
    Cancelled,
    Ended,
    HandoffRequest,
    Reason,
    RepDisconnected,
    ScreenPop,
    TimedOut,
    new_handoff_id,
)
from voicebot.pipeline.dialog import HandoffRequestInfo

if TYPE_CHECKING:
    from voicebot.callcore import CallPipeline
    from voicebot.handoff import CallBridgeEndpoint
    from voicebot.pipeline.output import AudioSink
    from voicebot.services import Services

logger = logging.getLogger(__name__)

BRIDGE_RATE = 8000
# Escalation cue → (rep skill, queue priority 0-9, higher first).
CUE_ROUTING: dict[str, tuple[str, int]] = {
    "fraud": ("fraud", 9),
    "location_mismatch": ("fraud", 9),
    "money_movement": ("fraud", 8),
    "emotion": ("complaints", 6),
    "arousal": ("complaints", 6),
    "human_request": ("card_services", 5),
    "asr_failure": ("card_services", 4),
}
DEFAULT_ROUTING = ("card_services", 5)
# Seconds between two queue-position announcements.
POSITION_INTERVAL_S = 20.0
# How long a call that ends waits for its handoff request to reach Redis before withdrawing it.
# It fits in the call's hang-up timeout (2 s by default).
REQUEST_SETTLE_S = 1.0


def hold_music(seconds: float, *, sample_rate: int = 16000) -> bytes:
    """Return a soft repeating chime (16-bit PCM): four notes of a major chord, then a rest."""
    notes_hz = (523.25, 659.25, 783.99, 659.25)
    note_s, rest_s = 0.45, 1.2
    pattern: list[np.ndarray] = []
    for frequency in notes_hz:
        t = np.arange(int(note_s * sample_rate)) / sample_rate
        envelope = np.exp(-3.0 * t)
        pattern.append(0.12 * envelope * np.sin(2 * math.pi * frequency * t))
    pattern.append(np.zeros(int(rest_s * sample_rate)))
    one = np.concatenate(pattern)
    repeats = max(1, int(math.ceil(seconds * sample_rate / one.size)))
    samples = np.tile(one, repeats)[: int(seconds * sample_rate)]
    return (samples * 32767).astype("<i2").tobytes()


def whisper_text(reasons: list[Reason]) -> str:
    """Build the short line the rep hears before taking the call: the reasons only, no personal data."""
    return "转接来电，原因：" + "、".join(reason.label for reason in reasons) + "。"


def structured_summary(info: HandoffRequestInfo, reasons: list[Reason]) -> str:
    """Build the rep's summary from the reasons, the collected details and the caller's last words."""
    caller_lines = [text for role, text in info.history if role == "caller" and text]
    parts = ["转人工原因：" + "、".join(reason.label for reason in reasons)]
    if info.slots:
        parts.append("已收集：" + "，".join(f"{key}={value}" for key, value in info.slots.items()))
    if caller_lines:
        parts.append("客户最后说：" + caller_lines[-1])
    return "。".join(parts) + "。"


class WarmTransfer:
    """Runs one call's handoff from the queue request to the end of the rep conversation."""

    def __init__(self, *, services: Services, call: CallPipeline, sink: AudioSink, started_at: float) -> None:
        self._services = services
        self._call = call
        self._sink = sink
        self._started_at = started_at
        self._extra = {"call_id": call.call_id}
        self.handoff_id: str | None = None
        self._endpoint: CallBridgeEndpoint | None = None
        self._hold_task: asyncio.Task[None] | None = None
        self._rep_audio_task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    async def run(self, info: HandoffRequestInfo) -> None:
        queue = self._services.handoff_queue
        cues = [cue for cue in info.reason.split(",") if cue]
        reasons = [Reason.from_code(cue) for cue in cues] or [Reason.from_code("human_request")]
        skill, priority = CUE_ROUTING.get(cues[0] if cues else "", DEFAULT_ROUTING)
        decision = self._services.responder.last_decisions.get(info.call_id)
        if decision is not None and decision.skill and decision.priority is not None:
            # The policy file routes the call. Its priorities run from 1 (most urgent)
            # upwards, while the queue serves 9 first, so policy priority p becomes 10 - p.
            skill, priority = decision.skill, max(0, min(9, 10 - decision.priority))
        summary = structured_summary(info, reasons)
        if self._services.llm is not None:
            try:
                llm_summary = await asyncio.wait_for(self._services.llm.summarise_call(list(info.history)), 8.0)
                if llm_summary:
                    summary = llm_summary + "\n" + summary
            except (asyncio.TimeoutError, VoicebotError) as e:
                # The structured summary is enough; the rep must not wait for the LLM.
                logger.warning("LLM call summary failed (%s); using the structured one", type(e).__name__, extra=self._extra)
        screen_pop = ScreenPop(
            summary=summary,
            transcript=list(info.history),
            reasons=reasons,
            slots=dict(info.slots),
            verification="verified" if info.slots.get("verified") == "true" else "unverified",
            language=info.language,
            centre=info.centre,
            call_started_at=self._started_at,
        )
        # The id is known before the request is sent, so a call that ends while the request is on
        # its way can still withdraw it. Otherwise the queue would offer a rep a caller who is gone.
        self.handoff_id = new_handoff_id()
        request = asyncio.ensure_future(
            queue.request(
                HandoffRequest(call_id=info.call_id, skill=skill, priority=priority, reasons=cues, screen_pop=screen_pop),
                handoff_id=self.handoff_id,
            )
        )
        try:
            await asyncio.shield(request)
            logger.info("call queued for a rep: skill %s priority %d", skill, priority, extra=self._extra)
            await self._call.send_event({"type": "handoff_queued", "handoff_id": self.handoff_id, "skill": skill})
            self._call.set_mode("hold")
            self._start_hold(info.language)
            async for event in queue.events(self.handoff_id):
                if isinstance(event, Accepted):
                    await self._connect(event.rep_id, whisper_text(reasons), info.language)
                elif isinstance(event, RepDisconnected):
                    logger.warning("rep disconnected mid-call; back to the queue", extra=self._extra)
                    await self._disconnect_rep()
                    self._call.set_mode("hold")
                    self._start_hold(info.language)
                elif isinstance(event, Ended):
                    logger.info("rep ended the call", extra=self._extra)
                    await self._disconnect_rep()
                    await self._call.hang_up("rep_hung_up")
                    return
                elif isinstance(event, (TimedOut, Cancelled)):
                    logger.info("no rep accepted in time (%s)", type(event).__name__, extra=self._extra)
                    await self._stop_hold()
                    await self._disconnect_rep()
                    self._call.set_mode("bot")
                    await self._call.speak(self._call.messages.render("no_agent", info.language))
                    return
        except asyncio.CancelledError:
            if not request.done():
                # Let the request land first, or the cancel would find nothing to cancel.
                await asyncio.wait({request}, timeout=REQUEST_SETTLE_S)
            if not self.connected.is_set():
                await self._cancel_quietly("caller_hung_up")
            raise
        finally:
            await self._stop_hold()

    async def close(self, reason: str) -> None:
        """Stop the transfer because the call ended, and cancel the handoff in the queue."""
        await self._stop_hold()
        await self._disconnect_rep()
        if self.handoff_id is not None:
            await self._cancel_quietly(reason)

    async def _cancel_quietly(self, reason: str) -> None:
        try:
            await self._services.handoff_queue.cancel(self.handoff_id or "", reason)
        except VoicebotError as e:
            logger.info("handoff already closed: %s", type(e).__name__, extra=self._extra)

    def _start_hold(self, language: str) -> None:
        if self._hold_task is None or self._hold_task.done():
            self._hold_task = asyncio.create_task(self._hold_loop(language), name=f"hold-{self._call.call_id}")

    async def _stop_hold(self) -> None:
        if self._hold_task is not None:
            self._hold_task.cancel()
            await asyncio.wait({self._hold_task}, timeout=1.0)
            self._hold_task = None
            await self._call.clear_output()

    async def _hold_loop(self, language: str) -> None:
        last_announcement = time.monotonic()
        while True:
            if self._call.queued_output_s() < 1.0:
                if time.monotonic() - last_announcement >= POSITION_INTERVAL_S:
                    position = await self._services.handoff_queue.position(self.handoff_id or "")
                    if position is not None:
                        text = self._call.messages.render("queue_position", language, position=str(position))
                        await self._call.speak(text)
                    last_announcement = time.monotonic()
                else:
                    await self._call.play(hold_music(4.0))
            await asyncio.sleep(0.5)

    async def _connect(self, rep_id: str, whisper: str, language: str) -> None:
        await self._stop_hold()
        assert self.handoff_id is not None
        endpoint = self._services.handoff_queue.call_endpoint(self.handoff_id, sample_rate_hz=BRIDGE_RATE)
        await endpoint.open()
        self._endpoint = endpoint
        if await endpoint.wait_rep_ready(5.0):
            audio = await self._services.synthesizer.synthesize(whisper, language)
            await endpoint.send_whisper(await self._call.resample(audio, 16000, BRIDGE_RATE))
        self._call.set_mode("bridged", bridge=endpoint)
        self._rep_audio_task = asyncio.create_task(self._forward_rep_audio(endpoint), name=f"rep-audio-{rep_id}")
        self.connected.set()
        await self._call.send_event({"type": "rep_connected", "handoff_id": self.handoff_id})
        logger.info("caller connected to a rep", extra=self._extra)

    async def _forward_rep_audio(self, endpoint: CallBridgeEndpoint) -> None:
        async for pcm in endpoint.rep_audio():
            for offset in range(0, len(pcm) - 1, 320):
                if not await self._sink.send_audio(g711.pcm_to_mulaw(pcm[offset : offset + 320])):
                    return

    async def _disconnect_rep(self) -> None:
        self.connected.clear()
        if self._rep_audio_task is not None:
            self._rep_audio_task.cancel()
            await asyncio.wait({self._rep_audio_task}, timeout=1.0)
            self._rep_audio_task = None
        if self._endpoint is not None:
            await self._endpoint.close()
            self._endpoint = None
