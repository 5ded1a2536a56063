"""LLM responder: answers from approved passages only, checked by the grounding guard.

For each caller turn the responder retrieves approved passages (FAQ answers), asks the model to
answer only from them in the caller's language, and streams the reply sentence by sentence.
Every sentence passes the grounding guard before it is handed to `speak`, and the whole answer
is checked again at the end. A violation ends the turn with a CLARIFY reply. A timeout or an
unreachable server ends it with HANDOFF when the client's retry also failed, and with CLARIFY
when the client was configured without retries.

Caller text is personal data: it goes to the model and, for answers without personal data, to
the response cache, but never to the log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from voicebot.llm.cache import ResponseCache
from voicebot.llm.client import ChatMessage, LlmClient, LlmError, ModelRouter, sentences
from voicebot.llm.grounding import GroundingGuard, Violation
from voicebot.responder.base import CallerTurn, DialogContext, Reply, ReplyKind
from voicebot.responder.faq import FaqResponder

logger = logging.getLogger(__name__)

# The model writes this text when the passages do not answer the question.
NO_ANSWER_MARKER = "无法回答"

LANGUAGE_NAMES = {"zh": "普通话（简体中文）", "yue": "粤语口语（用简体字书写）", "en": "English"}

DEFAULT_CLARIFY_TEXTS: Mapping[str, str] = {
    "zh": "不好意思，这个问题我需要再确认一下。您可以换个说法再问一次，或者说“转人工”。",
    "yue": "唔好意思，呢个问题我要再确认下。你可以换个讲法再问一次，或者讲“转人工”。",
}
DEFAULT_HANDOFF_TEXTS: Mapping[str, str] = {
    "zh": "不好意思，系统暂时无法回答，我现在为您转接人工客服，请稍候。",
    "yue": "唔好意思，系统暂时答唔到，我而家帮你转驳人工客服，请稍等。",
}


@dataclass(frozen=True)
class Passage:
    """One approved text the model may answer from."""

    id: str
    text: str  # Mandarin text
    score: float = 1.0  # 0..1, retrieval confidence
    texts: Mapping[str, str] = field(default_factory=dict)  # language code to text, when there are several

    def text_for(self, language: str) -> str:
        """Return the text in `language`, or the Mandarin text when there is none."""
        return self.texts.get(language) or self.text

    def all_texts(self) -> tuple[str, ...]:
        """Return every language version, for the grounding guard."""
        return (self.text, *(text for text in self.texts.values() if text != self.text))


Retriever = Callable[[str], Sequence[Passage]]
Speak = Callable[[str], Awaitable[None]]


def faq_retriever(faq: FaqResponder, *, max_passages: int = 3, min_confidence: float = 0.2) -> Retriever:
    """Return a retriever whose passages are the approved answers of the best FAQ matches.

    Blocking (it embeds the text), so LlmResponder calls it in a worker thread.
    """

    def retrieve(text: str) -> list[Passage]:
        passages = []
        for match in faq.match(text)[:max_passages]:
            if match.confidence < min_confidence:
                continue
            entry = faq.knowledge_base.get(match.topic)
            passages.append(
                Passage(id=entry.id, text=entry.answer("zh"), score=match.confidence, texts=dict(entry.answers))
            )
        return passages

    return retrieve


def build_messages(
    question: str, passages: Sequence[Passage], *, language: str, history: Sequence[tuple[str, str]] = ()
) -> list[ChatMessage]:
    """Return the chat messages that ask the model to answer `question` from `passages` only."""
    language_name = LANGUAGE_NAMES.get(language, LANGUAGE_NAMES["zh"])
    sources = "\n".join(f"[{i}] {passage.text_for(language)}" for i, passage in enumerate(passages, start=1))
    system = (
        "你是银行信用卡客服热线的语音助手。只能根据下面【资料】里的内容回答来电人的问题。\n"
        "规则：\n"
        "1. 资料里没有的信息一律不说，不要编造任何费用、费率、金额、日期、天数或期限。\n"
        "2. 提到的数字必须和资料里完全一致。\n"
        "3. 不要做任何保证或承诺。\n"
        f"4. 如果资料不能回答这个问题，只回答“{NO_ANSWER_MARKER}”。\n"
        f"5. 用{language_name}回答，最多两句话，口语化，适合在电话里朗读，不要用列表、符号或表情。\n"
        f"【资料】\n{sources}"
    )
    messages: list[ChatMessage] = [{"role": "system", "content": system}]
    for role, text in history:
        messages.append({"role": "user" if role == "caller" else "assistant", "content": text})
    messages.append({"role": "user", "content": question})
    return messages


@dataclass(frozen=True)
class LlmAnswer:
    """Outcome of one generation: the text, the passages and any grounding violations."""

    text: str
    passages: tuple[Passage, ...]
    violations: tuple[Violation, ...] = ()


class LlmResponder:
    """Answer turns that flows and the FAQ could not answer, from approved passages only.

    `history_turns` is the number of earlier (role, text) pairs sent to the model for context.
    """

    def __init__(
        self,
        *,
        client: LlmClient,
        retrieve: Retriever,
        router: ModelRouter,
        cache: ResponseCache | None = None,
        max_tokens: int = 120,
        temperature: float = 0.1,
        history_turns: int = 4,
        clarify_texts: Mapping[str, str] = DEFAULT_CLARIFY_TEXTS,
        handoff_texts: Mapping[str, str] = DEFAULT_HANDOFF_TEXTS,
    ) -> None:
        self.client = client
        self.retrieve = retrieve
        self.router = router
        self.cache = cache
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.history_turns = history_turns
        self.clarify_texts = clarify_texts
        self.handoff_texts = handoff_texts

    async def respond(self, turn: CallerTurn, context: DialogContext) -> Reply:
        """Return a grounded ANSWER, or CLARIFY or HANDOFF when no grounded answer could be made."""
        return await self.respond_streaming(turn, context, speak=None)

    async def respond_streaming(self, turn: CallerTurn, context: DialogContext, *, speak: Speak | None) -> Reply:
        """Like `respond`, and hand each checked sentence to `speak` as soon as it is complete.

        A sentence with a violation is never spoken. Sentences before it may have been spoken, so
        the CLARIFY text that follows should start with an apology, as the default texts do.
        """
        language = turn.language if turn.language in LANGUAGE_NAMES else "zh"
        passages = tuple(await asyncio.to_thread(self.retrieve, turn.text))
        if not passages:
            logger.info("LLM responder found no approved passage for call %s turn %d", context.call_id, turn.turn_index)
            return self._clarify(language, topic=None)
        guard = GroundingGuard(text for passage in passages for text in passage.all_texts())
        topic = f"llm:{passages[0].id}"
        confidence = max(passage.score for passage in passages)

        if self.cache is not None:
            cached = await self.cache.get(turn.text, language=language)
            if cached is not None and guard.check(cached.answer).grounded:
                logger.info(
                    "LLM answer for call %s turn %d from cache (%s, similarity %.3f)",
                    context.call_id, turn.turn_index, "exact" if cached.exact else "similar", cached.similarity,
                )
                if speak is not None:
                    await speak(cached.answer)
                return Reply(text=cached.answer, kind=ReplyKind.ANSWER, confidence=confidence, topic=topic)

        try:
            answer = await self._generate(turn, context, passages, guard, language=language, speak=speak)
        except LlmError as e:
            retry_failed = e.retryable and self.client.retries > 0
            logger.warning(
                "LLM answer for call %s turn %d failed (%s), replying with %s",
                context.call_id, turn.turn_index, type(e).__name__, "handoff" if retry_failed else "clarify",
            )
            if retry_failed:
                return Reply(
                    text=self.handoff_texts.get(language, self.handoff_texts["zh"]),
                    kind=ReplyKind.HANDOFF,
                    confidence=0.0,
                    topic=topic,
                    handoff_reason="llm_unavailable",
                )
            return self._clarify(language, topic=topic)

        if answer.violations:
            logger.warning(
                "LLM answer for call %s turn %d rejected by the grounding guard: %s",
                context.call_id, turn.turn_index, "; ".join(v.detail for v in answer.violations),
            )
            return self._clarify(language, topic=topic)
        if not answer.text or NO_ANSWER_MARKER in answer.text:
            logger.info("LLM found no answer in the passages for call %s turn %d", context.call_id, turn.turn_index)
            return self._clarify(language, topic=topic)

        if self.cache is not None:
            await self.cache.put(turn.text, answer.text, language=language, passage_ids=tuple(p.id for p in passages))
        return Reply(text=answer.text, kind=ReplyKind.ANSWER, confidence=confidence, topic=topic)

    async def _generate(
        self,
        turn: CallerTurn,
        context: DialogContext,
        passages: tuple[Passage, ...],
        guard: GroundingGuard,
        *,
        language: str,
        speak: Speak | None,
    ) -> LlmAnswer:
        history = context.history[-self.history_turns:] if self.history_turns > 0 else []
        messages = build_messages(turn.text, passages, language=language, history=history)
        model = self.router.choose(turn.text)
        tokens = self.client.stream_chat(messages, model=model, max_tokens=self.max_tokens, temperature=self.temperature)
        spoken: list[str] = []
        sentence_stream = sentences(tokens)
        try:
            async for sentence in sentence_stream:
                result = guard.check(sentence)
                if not result.grounded:
                    # Stop generating: the rest of the answer will not be spoken.
                    return LlmAnswer(text="".join(spoken), passages=passages, violations=result.violations)
                if NO_ANSWER_MARKER in sentence:
                    return LlmAnswer(text=sentence, passages=passages)
                spoken.append(sentence)
                if speak is not None:
                    await speak(sentence)
        finally:
            await sentence_stream.aclose()
            await tokens.aclose()
        text = "".join(spoken)
        return LlmAnswer(text=text, passages=passages, violations=guard.check(text).violations)

    def _clarify(self, language: str, *, topic: str | None) -> Reply:
        return Reply(
            text=self.clarify_texts.get(language, self.clarify_texts["zh"]),
            kind=ReplyKind.CLARIFY,
            confidence=0.0,
            topic=topic,
        )

    async def summarise_call(self, history: Sequence[tuple[str, str]], *, max_tokens: int = 150) -> str:
        """Return a short Mandarin summary of the call for the agent who takes it over.

        Numbers in the summary must appear in the call's own text, so a sentence with a quantity or
        a promise not found there is dropped. When no sentence is left, or the model fails, the
        summary is the caller's last turn, so a model failure raises nothing.
        """
        transcript = "\n".join(f"{'来电人' if role == 'caller' else '机器人'}：{text}" for role, text in history)
        caller_turns = [text for role, text in history if role == "caller"]
        fallback = f"来电人最后说：{caller_turns[-1]}" if caller_turns else "来电人还没有说话。"
        if not history:
            return fallback
        messages: list[ChatMessage] = [
            {
                "role": "system",
                "content": (
                    "请用普通话为接手电话的人工客服写一段通话摘要，不超过三句话："
                    "来电人要办什么事、机器人已经回答了什么、还有什么没解决。"
                    "只写通话里出现过的信息，不要编造任何数字、金额或日期。"
                ),
            },
            {"role": "user", "content": transcript},
        ]
        guard = GroundingGuard([transcript])
        model = self.router.large_model
        kept: list[str] = []
        dropped = 0
        try:
            async for sentence in sentences(
                self.client.stream_chat(messages, model=model, max_tokens=max_tokens, temperature=0.1)
            ):
                if guard.check(sentence).grounded:
                    kept.append(sentence)
                else:
                    dropped += 1
        except LlmError as e:
            logger.warning("Call summary failed (%s), using the caller's last turn", type(e).__name__)
            return fallback
        if dropped:
            logger.warning("Call summary: dropped %d sentences with quantities or promises not found in the call text", dropped)
        return "".join(kept) or fallback
