"""One inbound SIP call: its RTP session, its `CallPipeline` and the tasks between them.

The SIP side (`telephony.gateway.gateway.SipGateway`) hands this object the call's events.
Caller audio flows RTP jitter buffer → `push_audio`, one 20 ms frame every 20 ms. Bot audio
flows `PacedAudioOutput` → `RtpSink` → the RTP send queue. A mark is queued behind the audio
in the RTP send queue, and `on_mark` runs once that audio has been sent. After a warm
transfer the pump forwards caller audio to the rep's leg instead of the pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from telephony import g711
from telephony.rtp.session import RtpSession, RtpSessionClosedError
from telephony.sip.events import IncomingCall
from telephony.sip.sdp import MediaSelection
from voicebot.callcore import CallPipeline
from voicebot.errors import OverloadedError
from voicebot.pipeline.frames import BotReplyFrame
from voicebot.responder.base import Reply, ReplyKind

if TYPE_CHECKING:
    from telephony.sip.events import ReferResult
    from voicebot.pipeline.dialog import HandoffRequestInfo
    from voicebot.services import Services

logger = logging.getLogger(__name__)

MARK_QUEUE_SIZE = 256
DIGIT_QUEUE_SIZE = 32
REFER_RESULT_QUEUE_SIZE = 16
# Turn indexes of messages the gateway speaks itself start here, far above the dialog's own
# turn numbers, so the output never mixes them with a reply of the dialog.
GATEWAY_TURN_BASE = 100_000
TASK_STOP_TIMEOUT_S = 1.0


class RtpSink:
    """AudioSink that sends the bot's 20 ms mu-law frames as RTP and reports marks once sent."""

    def __init__(self, rtp: RtpSession) -> None:
        self._rtp = rtp

    async def send_audio(self, mulaw: bytes) -> bool:
        try:
            await self._rtp.send_audio(g711.mulaw_to_pcm(mulaw))
        except RtpSessionClosedError:
            return False
        return True

    async def send_mark(self, name: str) -> bool:
        try:
            await self._rtp.send_mark(name)
        except RtpSessionClosedError:
            return False
        return True

    async def send_clear(self) -> bool:
        self._rtp.clear()
        return True

    async def send_event(self, payload: dict[str, Any]) -> bool:
        return True  # SIP has no sideband for transcripts


class SipCall:
    """Serves one inbound SIP call from the INVITE to BYE, CANCEL or a completed transfer."""

    def __init__(
        self,
        services: Services,
        *,
        incoming: IncomingCall,
        rtp_options: dict[str, Any],
        language: str,
        centre: str,
        hangup_timeout_s: float,
        send_bye: Callable[[], None],
        on_handoff: Callable[[SipCall, HandoffRequestInfo], Awaitable[None]],
        on_closed: Callable[[SipCall], None],
    ) -> None:
        self.services = services
        self.sip_call_id = incoming.call_id
        self.call_id = uuid.uuid4().hex
        self.incoming = incoming
        # The RTP session calls on_mark from its send task once the audio before a mark is sent.
        self.rtp = RtpSession(**rtp_options, on_mark=self.on_mark)
        self.language = language
        self.centre = centre
        self.pipeline: CallPipeline | None = None
        self.on_hold = False
        self.end_reason: str | None = None
        self.closed = asyncio.Event()
        # Filled by the gateway with REFER responses and NOTIFY sipfrag reports of this call.
        self.refer_results: asyncio.Queue[ReferResult] = asyncio.Queue(maxsize=REFER_RESULT_QUEUE_SIZE)
        self._hangup_timeout_s = hangup_timeout_s
        self._send_bye = send_bye
        self._on_handoff = on_handoff
        self._on_closed = on_closed
        self._extra = {"call_id": self.call_id}
        self._marks: asyncio.Queue[str] = asyncio.Queue(maxsize=MARK_QUEUE_SIZE)
        self._digits: asyncio.Queue[str] = asyncio.Queue(maxsize=DIGIT_QUEUE_SIZE)
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._bridge_to: RtpSession | None = None
        self._spoken_messages = 0
        self._ending = False

    # Tasks.

    def spawn(self, coroutine: Awaitable[Any], *, name: str) -> asyncio.Task[Any]:
        """Start a task owned by this call; `close()` cancels it."""
        task = asyncio.ensure_future(coroutine)
        task.set_name(f"{name}-{self.call_id[:8]}")
        self._tasks[name] = task
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            logger.error("task %s failed: %r", task.get_name(), error, exc_info=error, extra=self._extra)
            if not self._ending:
                self.hang_up("error")

    # Start of the call.

    async def start_pipeline(self, media: MediaSelection | None) -> None:
        """Start the call record, the pipeline and the audio, mark and DTMF tasks once the call is answered."""
        if media is not None:
            self.apply_media(media)
        caller = self.incoming.from_uri.partition(":")[2].partition("@")[0]
        await self.services.store.start_call(
            self.call_id,
            stream_sid="sip",
            call_sid=self.sip_call_id,
            caller=caller,
            language=self.language,
            centre=self.centre,
            started_at=time.time(),
            custom_parameters={"transport": self.incoming.transport.lower()},
        )
        self.pipeline = CallPipeline(
            self.services,
            call_id=self.call_id,
            sink=RtpSink(self.rtp),
            language=self.language,
            centre=self.centre,
            input_sample_rate=8000,
            on_handoff=self._handoff,
            on_hang_up=self._bot_hang_up,
        )
        await self.pipeline.start()
        self.spawn(self._pump(), name="sip-audio-in")
        self.spawn(self._forward_marks(self.pipeline), name="sip-marks")
        self.spawn(self._forward_rtp_digits(), name="sip-rtp-dtmf")
        self.spawn(self._push_digits(self.pipeline), name="sip-dtmf")
        logger.info("SIP call %s answered: pipeline started, language %s", self.sip_call_id, self.language,
                    extra=self._extra)

    def on_mark(self, name: str) -> None:
        """RTP send-task callback: the audio before mark `name` has been sent."""
        try:
            self._marks.put_nowait(name)
        except asyncio.QueueFull:
            # The output then counts the sentence as not heard, which only affects the record.
            logger.warning("mark queue full (%d marks); dropped a mark", MARK_QUEUE_SIZE, extra=self._extra)

    def apply_media(self, media: MediaSelection) -> None:
        """Follow a negotiated media change: remote address and the payload type we send."""
        if media.remote_address not in ("0.0.0.0", "::") and media.remote_port > 0:
            self.rtp.set_remote(media.remote_address, media.remote_port)
        if media.payload_type != self.rtp.packetizer.payload_type:
            self.rtp.packetizer = type(self.rtp.packetizer)(
                payload_type=media.payload_type,
                frame_ms=self.rtp.frame_ms,
                telephone_event_payload_type=media.telephone_event_pt or 101,
            )

    # Events from the SIP side.

    def set_hold(self, on_hold: bool) -> None:
        """Pause (True) or resume the bot: no caller audio reaches the pipeline and no RTP is sent."""
        self.on_hold = on_hold
        self.rtp.hold(on_hold)
        logger.info("SIP call %s %s", self.sip_call_id, "put on hold" if on_hold else "resumed", extra=self._extra)

    def push_digit(self, digit: str) -> None:
        """Queue a DTMF digit from SIP INFO."""
        try:
            self._digits.put_nowait(digit)
        except asyncio.QueueFull:
            logger.warning("DTMF queue full (%d digits); dropped a digit", DIGIT_QUEUE_SIZE, extra=self._extra)

    def hang_up(self, reason: str) -> None:
        """End the call from our side with BYE (or 480 before the answer); the CallEnded event closes it."""
        if self.end_reason is None:
            self.end_reason = reason
        self._send_bye()

    def close(self, reason: str) -> None:
        """Start tearing the call down once: pipeline, tasks and RTP stop within the hang-up timeout."""
        if self._ending:
            return
        self._ending = True
        if self.end_reason is None:
            self.end_reason = reason
        task = asyncio.ensure_future(self._teardown(self.end_reason))
        task.set_name(f"sip-call-end-{self.call_id[:8]}")
        self._tasks["sip-call-end"] = task

    async def _teardown(self, reason: str) -> None:
        own = asyncio.current_task()
        tasks = [t for t in self._tasks.values() if t is not own and not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=TASK_STOP_TIMEOUT_S)
        if self.pipeline is not None:
            await self.pipeline.finish(reason, timeout_s=self._hangup_timeout_s)
        await self.rtp.close()
        self._on_closed(self)
        self.closed.set()
        logger.info("SIP call %s closed: %s", self.sip_call_id, reason, extra=self._extra)

    # Pipeline callbacks.

    async def _handoff(self, info: HandoffRequestInfo) -> None:
        # Runs inside the dialog processor, so the transfer gets its own task.
        if self._ending:
            logger.info("handoff ignored: the call is ending", extra=self._extra)
            return
        if "sip-transfer" in self._tasks and not self._tasks["sip-transfer"].done():
            logger.info("handoff ignored: a transfer is in progress", extra=self._extra)
            return
        self.spawn(self._on_handoff(self, info), name="sip-transfer")

    async def _bot_hang_up(self, reason: str) -> None:
        self.hang_up(reason)

    # Audio and DTMF tasks.

    async def _pump(self) -> None:
        async for pcm in self.rtp.frames():
            bridge = self._bridge_to
            if bridge is not None:
                with contextlib.suppress(OverloadedError, RtpSessionClosedError):
                    # The rep's send queue is full only when the clocks drift apart; drop a frame.
                    bridge.send_audio_nowait(pcm)
            elif not self.on_hold and self.pipeline is not None:
                await self.pipeline.push_audio(pcm)

    async def _forward_marks(self, pipeline: CallPipeline) -> None:
        while True:
            name = await self._marks.get()
            await pipeline.on_mark(name)

    async def _forward_rtp_digits(self) -> None:
        while True:
            digit = await self.rtp.dtmf_digits.get()
            self.push_digit(digit.digit)

    async def _push_digits(self, pipeline: CallPipeline) -> None:
        while True:
            digit = await self._digits.get()
            if self._bridge_to is None:
                await pipeline.push_dtmf(digit)

    # Used by transfers.

    async def say(self, text: str) -> None:
        """Speak `text` to the caller through the pipeline (TTS, pacing, barge-in) as a gateway message."""
        if self.pipeline is None:
            return
        self._spoken_messages += 1
        reply = Reply(text=text, kind=ReplyKind.ANSWER, confidence=1.0, topic="transfer_failed")
        frame = BotReplyFrame(reply=reply, turn_index=GATEWAY_TURN_BASE + self._spoken_messages,
                              language=self.language)
        # The dialog processor pushes its own replies the same way, to the synthesis stage.
        await self.pipeline.dialog.push_frame(frame)

    async def bridge(self, other: RtpSession, *, reason: str) -> None:
        """Stop the bot and connect the caller's audio with `other` (the rep's leg) both ways."""
        self._bridge_to = other
        pipeline, self.pipeline = self.pipeline, None
        if pipeline is not None:
            for name in ("sip-marks", "sip-dtmf"):
                task = self._tasks.get(name)
                if task is not None and task is not asyncio.current_task():
                    task.cancel()
            await pipeline.finish(reason, timeout_s=self._hangup_timeout_s)
        self.rtp.clear()
        logger.info("SIP call %s bridged to the rep's leg", self.sip_call_id, extra=self._extra)
