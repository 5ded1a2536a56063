"""FAQ first, LLM second: the fallback responder for turns that no flow takes.

`FaqThenLlmResponder` asks the FAQ responder first. An FAQ hit (confidence at or above the FAQ
threshold) is spoken as the approved answer, and the LLM is never asked. Below
`use_llm_below`, the LLM answers from the approved passages of the closest FAQ topics, and
each sentence is spoken as soon as the grounding guard has passed it.

How a streamed answer reaches the caller and the call record:

- `respond` returns when the first grounded sentence is ready. The Reply's `text` is that
  sentence, and `sentences` yields it again followed by the rest of the answer. So the dialog
  step records and shows the first sentence at once, and the speech step speaks every sentence
  as it arrives.
- The output step builds `heard_text` of the bot turn in the call record from the sentences it
  played, so a reply played to the end has the whole answer there, and a reply cut off by a
  barge-in has what the caller heard.
- When the stream ends, the dialog history entry of the reply (the `("bot", text)` pair whose
  text is the Reply's `text` object) is replaced by the whole answer. The next LLM turn and the
  agent who takes over a handoff then see the full answer.
- When the LLM fails before its first sentence, `respond` returns a plain Reply without
  `sentences`: the FAQ's CLARIFY reply (which names the two closest topics) or the LLM
  responder's HANDOFF. A failure or a guard violation after the first sentence cannot change
  the reply's kind any more, so the stream ends with the LLM responder's clarify line, which
  apologises and offers a transfer ("转人工"), and never with a transfer promise.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from voicebot.errors import ConfigError
from voicebot.llm.responder import LlmResponder
from voicebot.responder.base import CallerTurn, DialogContext, Reply, ReplyKind
from voicebot.responder.faq import FaqResponder

logger = logging.getLogger(__name__)


class _ConsumerGone(Exception):
    """Nobody took a sentence from the queue within `abandon_after_s`."""


@dataclass(frozen=True)
class _Outcome:
    """The last queue item of an answer: the LLM responder's reply, or the error it raised."""

    reply: Reply | None = None
    error: BaseException | None = None


class _StreamedAnswer:
    """One LLM answer in progress: a producer task and a bounded queue of checked sentences.

    The producer runs `LlmResponder.respond_streaming`, whose `speak` callback puts each
    sentence into the queue after the grounding guard passed it, and then puts the outcome.
    """

    def __init__(
        self,
        llm: LlmResponder,
        turn: CallerTurn,
        context: DialogContext,
        *,
        max_queued_sentences: int,
        abandon_after_s: float,
    ) -> None:
        self._llm = llm
        self._turn = turn
        self._context = context
        self._abandon_after_s = abandon_after_s
        # Bounded: when it is full the producer waits, and after `abandon_after_s` it stops
        # generating, because nobody is consuming the answer any more.
        self._queue: asyncio.Queue[str | _Outcome] = asyncio.Queue(maxsize=max_queued_sentences)
        self.task: asyncio.Task[None] | None = None

    def start(self) -> asyncio.Task[None]:
        self.task = asyncio.create_task(
            self._produce(), name=f"llm-answer-{self._context.call_id}-{self._turn.turn_index}"
        )
        return self.task

    async def _put(self, item: str | _Outcome) -> None:
        try:
            await asyncio.wait_for(self._queue.put(item), timeout=self._abandon_after_s)
        except TimeoutError as e:
            raise _ConsumerGone(f"no sentence taken for {self._abandon_after_s} s") from e

    async def _produce(self) -> None:
        try:
            reply = await self._llm.respond_streaming(self._turn, self._context, speak=self._put)
        except _ConsumerGone:
            logger.info(
                "LLM answer for call %s turn %d abandoned: its reply was not spoken within %.0f s",
                self._context.call_id, self._turn.turn_index, self._abandon_after_s,
            )
            return
        except Exception as e:  # handed to the consumer, which raises it
            outcome = _Outcome(error=e)
        else:
            outcome = _Outcome(reply=reply)
        try:
            await self._put(outcome)
        except _ConsumerGone:
            logger.info(
                "LLM answer for call %s turn %d finished after its reply stopped being spoken",
                self._context.call_id, self._turn.turn_index,
            )

    async def next_item(self) -> str | _Outcome:
        return await self._queue.get()

    async def aclose(self, *, timeout_s: float = 2.0) -> None:
        """Cancel the producer if it still runs, which closes the HTTP stream to the LLM server."""
        task = self.task
        if task is None:
            return
        if not task.done():
            task.cancel()
            # asyncio.wait neither raises the task's error nor swallows a cancellation of this task.
            await asyncio.wait([task], timeout=timeout_s)
            if not task.done():
                logger.warning(
                    "LLM answer task for call %s turn %d did not stop within %.1f s of cancellation",
                    self._context.call_id, self._turn.turn_index, timeout_s,
                )


class FaqThenLlmResponder:
    """Answer from the FAQ when it is sure, otherwise from the LLM grounded in FAQ passages.

    `use_llm_below` (0..1, at most the FAQ threshold) is the FAQ confidence below which the LLM
    is asked. Between it and the FAQ threshold the FAQ's CLARIFY reply, which names the two
    closest topics, is returned as it is. Set it to the FAQ threshold to send every turn the FAQ
    cannot answer to the LLM.

    `max_queued_sentences` bounds the sentences generated ahead of speech for one answer, and
    `abandon_after_s` is how long the generation waits for speech to take a sentence before it
    stops (a reply dropped by a barge-in before it reached the speech step is never consumed).
    """

    def __init__(
        self,
        faq: FaqResponder,
        llm: LlmResponder,
        *,
        use_llm_below: float,
        max_queued_sentences: int = 16,
        abandon_after_s: float = 30.0,
    ) -> None:
        if not 0.0 < use_llm_below <= faq.threshold:
            raise ConfigError(
                f"use_llm_below must be in (0, {faq.threshold}] (0 < value <= the FAQ threshold), got {use_llm_below}; "
                "set it to the FAQ threshold to ask the LLM whenever the FAQ has no answer"
            )
        if max_queued_sentences < 1:
            raise ConfigError(f"max_queued_sentences must be at least 1, got {max_queued_sentences}")
        if abandon_after_s <= 0:
            raise ConfigError(f"abandon_after_s must be positive seconds, got {abandon_after_s}")
        self.faq = faq
        self.llm = llm
        self.use_llm_below = use_llm_below
        self.max_queued_sentences = max_queued_sentences
        self.abandon_after_s = abandon_after_s
        # Producer tasks of answers in progress, so none is garbage-collected while it runs
        # and `aclose` can cancel the rest at shutdown.
        self._tasks: set[asyncio.Task[None]] = set()

    async def respond(self, turn: CallerTurn, context: DialogContext) -> Reply:
        """Return the FAQ's reply, or an LLM reply whose `sentences` streams the grounded answer."""
        faq_reply = await self.faq.respond(turn, context)
        if faq_reply.kind is not ReplyKind.CLARIFY or faq_reply.confidence >= self.use_llm_below:
            # An FAQ answer, nothing heard (FALLBACK), or close enough to ask "A or B?".
            return faq_reply
        return await self._respond_with_llm(turn, context, faq_reply)

    async def _respond_with_llm(self, turn: CallerTurn, context: DialogContext, faq_reply: Reply) -> Reply:
        answer = _StreamedAnswer(
            self.llm,
            turn,
            context,
            max_queued_sentences=self.max_queued_sentences,
            abandon_after_s=self.abandon_after_s,
        )
        task = answer.start()
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            item = await answer.next_item()
        except BaseException:
            # Cancelled while waiting for the first sentence (the caller spoke again).
            await answer.aclose()
            raise

        if isinstance(item, _Outcome):
            if item.error is not None:
                raise item.error
            assert item.reply is not None
            if item.reply.kind is ReplyKind.CLARIFY:
                # Nothing was spoken, so the FAQ's question naming the closest topics fits best.
                return faq_reply
            return item.reply

        # NOTE: a caller that builds a new Reply from `text` alone speaks only the first sentence, and
        # the rest is dropped after `abandon_after_s`. DialogResponder does so inside a flow, for
        # fallback answers at or above its fallback_min_confidence (0.8 by default). LLM replies carry
        # the FAQ's confidence, below use_llm_below, so they reach it only when use_llm_below is above it.
        return Reply(
            text=item,
            kind=ReplyKind.ANSWER,
            confidence=faq_reply.confidence,
            # faq_retriever's first passage is the FAQ's best topic, as in LlmResponder's topic.
            topic=f"llm:{faq_reply.topic}",
            candidates=faq_reply.candidates,
            sentences=self._sentences(answer, first=item, turn=turn, context=context),
        )

    async def _sentences(
        self, answer: _StreamedAnswer, *, first: str, turn: CallerTurn, context: DialogContext
    ) -> AsyncIterator[str]:
        """Yield the first sentence and then every further grounded sentence as it is generated."""
        spoken = [first]
        try:
            yield first
            while True:
                item = await answer.next_item()
                if isinstance(item, str):
                    spoken.append(item)
                    yield item
                    continue
                if item.error is not None:
                    raise item.error
                assert item.reply is not None
                if item.reply.kind is not ReplyKind.ANSWER:
                    # The guard stopped a later sentence, or the server failed mid-answer.
                    logger.warning(
                        "LLM answer for call %s turn %d ended with %s after %d spoken sentences, adding the clarify line",
                        context.call_id, turn.turn_index, item.reply.kind.value, len(spoken),
                    )
                    clarify = item.reply.text if item.reply.kind is ReplyKind.CLARIFY else self._clarify_text(turn)
                    spoken.append(clarify)
                    yield clarify
                break
            _replace_history_entry(context, placeholder=first, text="".join(spoken))
        finally:
            await answer.aclose()

    def _clarify_text(self, turn: CallerTurn) -> str:
        texts = self.llm.clarify_texts
        return texts.get(turn.language) or texts["zh"]

    async def aclose(self) -> None:
        """Cancel the answers still being generated, at shutdown."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)


def _replace_history_entry(context: DialogContext, *, placeholder: str, text: str) -> None:
    """Put the whole answer in place of the first sentence in the latest bot entry of the history.

    The dialog step appends `("bot", reply.text)` before it speaks the reply, so the entry's text is
    the same string object as `placeholder`. A later bot entry, or one that a barge-in already
    replaced with the heard text, is left alone.
    """
    for index in range(len(context.history) - 1, -1, -1):
        role, entry_text = context.history[index]
        if role != "bot":
            continue
        if entry_text is placeholder:
            context.history[index] = ("bot", text)
        return
