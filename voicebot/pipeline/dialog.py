"""Dialog step of the call pipeline: transcripts in, replies out, every turn recorded.

The responder decides what to say; this processor keeps the dialog history, speaks the
greeting, writes caller and bot turns to the call record, and corrects the history when a
barge-in cut a reply short, so the history holds only what the caller heard.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from pipecat.frames.frames import Frame, InputDTMFFrame, InterruptionFrame, StartFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voicebot.callrecord import CallRecordStore, TurnRecord
from voicebot.privacy import mask_address_answer
from voicebot.pipeline.frames import (
    BotReplyFrame,
    CallerTranscriptFrame,
    ReplyHeardFrame,
    SidebandEventFrame,
    SystemMessageFrame,
)
from voicebot.responder.base import CallerTurn, DialogContext, Reply, Responder, ReplyKind
from voicebot.responder.messages import Messages

logger = logging.getLogger(__name__)

# Keypad digits are gathered until this many seconds pass without a key, or # is pressed.
DTMF_INTERDIGIT_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class HandoffRequestInfo:
    """Details a transport needs to hand a call to a person, once the transfer message was heard."""

    call_id: str
    reason: str
    turn_index: int
    language: str
    centre: str
    slots: Mapping[str, str]
    history: tuple[tuple[str, str], ...]


HandoffCallback = Callable[[HandoffRequestInfo], Awaitable[None]]
HangUpCallback = Callable[[str], Awaitable[None]]


class DialogProcessor(FrameProcessor):
    """Runs the responder on each caller turn and keeps the call's dialog history."""

    def __init__(
        self,
        *,
        responder: Responder,
        messages: Messages,
        context: DialogContext,
        store: CallRecordStore,
        greet: bool = True,
        on_handoff: HandoffCallback | None = None,
        on_hang_up: HangUpCallback | None = None,
    ) -> None:
        super().__init__(name="DialogProcessor")
        self._responder = responder
        self._messages = messages
        self._context = context
        self._store = store
        self._greet = greet
        self._record_index = 0
        # turn index -> (record index of the bot turn, index into history, end of caller speech)
        self._bot_turns: dict[int, tuple[int, int, float]] = {}
        self._timings: dict[int, dict[str, float]] = {}
        self.dtmf_digits = 0
        self._settle_delay_s = 1.0
        self._on_handoff = on_handoff
        self._on_hang_up = on_hang_up
        # turn index -> the reply, for what to do once the caller has heard it
        self._replies: dict[int, Reply] = {}
        self._dtmf_buffer = ""
        self._dtmf_task: asyncio.Task[None] | None = None
        self._last_turn_index = 0
        self.paused = False
        self.record_while_paused = False

    @property
    def context(self) -> DialogContext:
        return self._context

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame):
            await self.push_frame(frame, direction)
            if self._greet:
                text = self._messages.render("greeting", self._context.language)
                reply = Reply(text=text, kind=ReplyKind.GREETING, confidence=1.0)
                await self._speak(reply, turn_index=0, speech_ended_at=0.0)
        elif isinstance(frame, CallerTranscriptFrame):
            if self.paused:
                # On hold or talking to a rep: the bot does not answer, but the transcript may go on.
                if self.record_while_paused:
                    await self._record_caller_turn(frame, dtmf="")
                return
            await self._on_transcript(frame)
        elif isinstance(frame, ReplyHeardFrame):
            await self._on_reply_heard(frame)
            await self.push_frame(frame, direction)
        elif isinstance(frame, InterruptionFrame):
            await self.push_frame(frame, direction)
            if self._bot_turns:
                self.create_task(self._settle_unplayed_replies(list(self._bot_turns)), name="settle-unplayed-replies")
        elif isinstance(frame, SystemMessageFrame) and frame.reply is not None:
            await self._speak(frame.reply, turn_index=frame.turn_index, speech_ended_at=0.0)
        elif isinstance(frame, InputDTMFFrame):
            await self._on_dtmf(str(frame.button.value))
        else:
            await self.push_frame(frame, direction)

    async def _on_dtmf(self, digit: str) -> None:
        # Keypad digits can be card or ID digits: count them, never log their values.
        self.dtmf_digits += 1
        logger.info("DTMF digit received (%d so far)", self.dtmf_digits, extra={"call_id": self._context.call_id})
        if self._dtmf_task is not None:
            self._dtmf_task.cancel()
            self._dtmf_task = None
        if digit == "#":
            await self._submit_dtmf()
            return
        self._dtmf_buffer += digit
        self._dtmf_task = self.create_task(self._dtmf_timeout(), name="dtmf-interdigit")

    async def _dtmf_timeout(self) -> None:
        await asyncio.sleep(DTMF_INTERDIGIT_TIMEOUT_S)
        self._dtmf_task = None
        await self._submit_dtmf()

    async def _submit_dtmf(self) -> None:
        digits, self._dtmf_buffer = self._dtmf_buffer, ""
        if not digits:
            return
        now = time.time()
        await self._on_transcript(
            CallerTranscriptFrame(
                text="",
                language=self._context.language,
                confidence=1.0,
                turn_index=0,
                speech_started_at=now,
                speech_ended_at=now,
                end_of_turn_at=now,
                transcribed_at=now,
            ),
            dtmf=digits,
        )

    async def _on_transcript(self, frame: CallerTranscriptFrame, *, dtmf: str = "") -> None:
        call_id = self._context.call_id
        # The dialog numbers caller turns itself: speech turns and keypad entries share one
        # sequence, and a turn the caller continued after a pause gets a new number.
        self._last_turn_index += 1
        turn_index = self._last_turn_index
        turn = CallerTurn(
            text=frame.text,
            language=frame.language,
            asr_confidence=frame.confidence,
            turn_index=turn_index,
            dtmf=dtmf,
            audio=frame.audio,
        )
        await self._record_caller_turn(frame, dtmf=dtmf, turn_index=turn_index)
        started = time.time()
        # The responder that handles the turn sets what it expects next. A reply from any other
        # responder (an FAQ answer, a handoff) expects nothing in particular.
        self._context.expected = None
        reply = await self._responder.respond(turn, self._context)
        self._timings[turn_index] = {
            "respond": _ms(time.time() - started),
            "turn_detect": _ms(frame.end_of_turn_at - frame.speech_ended_at),
            "asr": _ms(frame.transcribed_at - frame.end_of_turn_at),
        }
        logger.info(
            "turn %d reply: kind=%s topic=%s confidence=%.2f",
            turn_index,
            reply.kind.value,
            reply.topic,
            reply.confidence,
            extra={"call_id": call_id},
        )
        await self._speak(reply, turn_index=turn_index, speech_ended_at=frame.speech_ended_at)

    async def _record_caller_turn(self, frame: CallerTranscriptFrame, *, dtmf: str, turn_index: int | None = None) -> None:
        if turn_index is None:
            self._last_turn_index += 1
            turn_index = self._last_turn_index
        shown_text = frame.text if not dtmf else f"[DTMF {len(dtmf)} digits]"
        await self.push_frame(SidebandEventFrame(payload={"type": "user", "turn": turn_index, "text": shown_text}))
        expected = self._context.expected
        if not dtmf and expected is not None and expected.kind == "address":
            # The record and the history keep no address, even one the recognizer garbled.
            shown_text = mask_address_answer(shown_text)
        await self._record(
            TurnRecord(
                index=self._next_record_index(),
                role="caller",
                text=shown_text,
                started_at=frame.speech_started_at,
                ended_at=frame.speech_ended_at,
                confidence=frame.confidence,
                language=frame.language,
                latency_ms={
                    "turn_detect": _ms(frame.end_of_turn_at - frame.speech_ended_at),
                    "asr": _ms(frame.transcribed_at - frame.end_of_turn_at),
                },
            )
        )
        self._context.history.append(("caller", shown_text))

    async def _speak(self, reply: Reply, *, turn_index: int, speech_ended_at: float) -> None:
        event = {
            "type": "bot",
            "turn": turn_index,
            "text": reply.text,
            "confidence": round(reply.confidence, 3),
            "kind": reply.kind.value,
            "topic": reply.topic,
        }
        await self.push_frame(SidebandEventFrame(payload=event))
        if reply.kind is ReplyKind.HANDOFF:
            await self.push_frame(SidebandEventFrame(payload={"type": "handoff", "reason": reply.handoff_reason}))
        record_index = self._next_record_index()
        self._bot_turns[turn_index] = (record_index, len(self._context.history), speech_ended_at)
        self._replies[turn_index] = reply
        self._context.history.append(("bot", reply.text))
        now = time.time()
        await self._record(
            TurnRecord(
                index=record_index,
                role="bot",
                text=reply.text,
                started_at=now,
                ended_at=now,
                confidence=reply.confidence,
                language=self._context.language,
                topic=reply.topic,
                kind=reply.kind.value,
                latency_ms=dict(self._timings.get(turn_index, {})),
            )
        )
        await self.push_frame(
            BotReplyFrame(reply=reply, turn_index=turn_index, language=self._context.language, speech_ended_at=speech_ended_at)
        )

    async def _on_reply_heard(self, frame: ReplyHeardFrame) -> None:
        entry = self._bot_turns.pop(frame.turn_index, None)
        if entry is None:
            return
        record_index, history_index, speech_ended_at = entry
        if frame.interrupted:
            # Keep only what the caller heard; an empty string means nothing was heard.
            self._context.history[history_index] = ("bot", frame.heard_text)
        fields: dict[str, object] = {
            "interrupted": frame.interrupted,
            "heard_text": frame.heard_text,
            "ended_at": time.time(),
        }
        streamed = self._replies.get(frame.turn_index)
        if streamed is not None and streamed.sentences is not None and not frame.interrupted:
            # A streamed (LLM) reply was recorded with its first sentence; the whole answer
            # is known once it has played.
            fields["text"] = frame.heard_text
        latency = dict(self._timings.pop(frame.turn_index, {}))
        if frame.first_audio_at and speech_ended_at:
            # End of the caller's speech to the first bot audio sent on the stream.
            latency["end_to_end"] = _ms(frame.first_audio_at - speech_ended_at)
        fields["latency_ms"] = latency
        await self._store.update_turn(self._context.call_id, record_index, **fields)
        await self.push_frame(
            SidebandEventFrame(
                # `text` is what the caller heard: the whole answer of a streamed reply, whose
                # `bot` event carried only its first sentence.
                payload={
                    "type": "reply_done",
                    "turn": frame.turn_index,
                    "interrupted": frame.interrupted,
                    "text": frame.heard_text,
                }
            )
        )
        reply = self._replies.pop(frame.turn_index, None)
        if reply is None:
            return
        if reply.kind is ReplyKind.HANDOFF and self._on_handoff is not None:
            # The caller heard the transfer message (or cut it short): hand over now.
            await self._on_handoff(
                HandoffRequestInfo(
                    call_id=self._context.call_id,
                    reason=reply.handoff_reason or "human_request",
                    turn_index=frame.turn_index,
                    language=self._context.language,
                    centre=self._context.centre,
                    slots=dict(reply.slots),
                    history=tuple(self._context.history),
                )
            )
        elif reply.end_call and not frame.interrupted and self._on_hang_up is not None:
            await self._on_hang_up("bot_hung_up")

    async def _settle_unplayed_replies(self, turn_indexes: list[int]) -> None:
        # The output reports every reply it had queued (ReplyHeardFrame). A reply cancelled
        # before it reached the output gets no report, so it is recorded here as not heard.
        await asyncio.sleep(self._settle_delay_s)
        for turn_index in turn_indexes:
            if turn_index in self._bot_turns:
                await self._on_reply_heard(ReplyHeardFrame(turn_index=turn_index, heard_text="", interrupted=True))

    def _next_record_index(self) -> int:
        index = self._record_index
        self._record_index += 1
        return index

    async def _record(self, turn: TurnRecord) -> None:
        await self._store.append_turn(self._context.call_id, turn)


def _ms(seconds: float) -> float:
    return round(max(seconds, 0.0) * 1000, 1)
