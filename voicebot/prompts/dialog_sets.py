"""The responders of each prompt version, and which version each call runs on.

A `DialogSet` is what one version of the prompt and dialog set (a PromptBundle) needs to
answer callers: the FAQ responder with its embedding index, the flows, the escalation
policy and the responders built on them. `DialogSets` builds one per version before the
version becomes current (PromptStore's prepare hook), so a new call never waits for a
build. The FAQ index is embedded in a worker thread, and only when the version's
dialogs/faq.yaml differs from every index already built.

A call is pinned to the set that was current when it started and keeps it to its end, so
a flow in progress is never swapped under it. `VersionedResponder` routes each turn to
the call's set. Sets that are neither current nor pinned by a call are dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from voicebot.callrecord import CallRecordStore
from voicebot.dialog.banking import BankingApi
from voicebot.dialog.responder import DialogResponder
from voicebot.dialog.state import DialogStateStore
from voicebot.escalation import Decision, EscalationPolicy
from voicebot.llm.responder import LlmResponder, faq_retriever
from voicebot.llm.runtime import LlmRuntime
from voicebot.prompts.bundle import ESCALATION_NAME, FAQ_NAME, PromptBundle
from voicebot.prompts.problems import PromptProblem
from voicebot.prompts.store import PromptStore
from voicebot.responder.base import CallerTurn, DialogContext, Reply, Responder
from voicebot.responder.chain import FaqThenLlmResponder
from voicebot.responder.escalating import EscalatingResponder
from voicebot.responder.faq import FaqResponder, KnowledgeBase
from voicebot.responder.messages import DialogFileError, Messages

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DialogSet:
    """The responders of one prompt version; shared by every call pinned to it."""

    bundle: PromptBundle
    messages: Messages  # every message of the version, without centre overrides
    faq: FaqResponder
    fallback: Responder  # what answers turns no flow takes: the FAQ, or the FAQ then the LLM
    responder: EscalatingResponder

    @property
    def version(self) -> str:
        """Version label, as PromptBundle.version writes it."""
        return self.bundle.version


class DialogSets:
    """Builds and caches the DialogSet of each prompt version and pins calls to one."""

    def __init__(
        self,
        *,
        banking: BankingApi,
        dialog_states: DialogStateStore,
        faq_threshold: float,
        records: CallRecordStore | None = None,
        faq_factory: Callable[[KnowledgeBase, Messages], FaqResponder] | None = None,
    ) -> None:
        """Create an empty cache; `bind` it to the prompt store before the first call.

        Args:
            banking: the bank's API every set's flows call.
            dialog_states: where every set's dialog responder keeps call state.
            faq_threshold: 0..1 confidence at which the FAQ answers.
            records: where a call's version is written when it is pinned (field
                prompt_version), or None to write nothing.
            faq_factory: builds the FAQ responder from a KnowledgeBase and messages, by
                default FaqResponder with `faq_threshold`; it runs in a worker thread.
        """
        self._banking = banking
        self._dialog_states = dialog_states
        self._faq_threshold = faq_threshold
        self._records = records
        self._faq_factory = faq_factory or (
            lambda knowledge_base, messages: FaqResponder(knowledge_base, messages, threshold=faq_threshold)
        )
        self._llm: LlmRuntime | None = None
        self._current: Callable[[], PromptBundle] | None = None
        self._sets: dict[str, DialogSet] = {}  # bundle digest to set
        self._faqs: dict[str, FaqResponder] = {}  # digest of faq.yaml to its responder
        self._pins: dict[str, DialogSet] = {}  # call id to the set it runs on
        self._build_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        # Shared by every set's EscalatingResponder, so a warm transfer finds a call's
        # decision whatever version the call runs on.
        self.last_decisions: OrderedDict[str, Decision] = OrderedDict()

    def bind(self, current: Callable[[], PromptBundle]) -> None:
        """Set where the current version comes from, normally PromptStore.current."""
        self._current = current

    async def start(
        self,
        prompts: PromptStore,
        *,
        start_llm: Callable[[FaqResponder], Awaitable[LlmRuntime | None]] | None = None,
        watch: bool = True,
    ) -> LlmRuntime | None:
        """Start `prompts` with this cache as its prepare hook, then the LLM on the first FAQ, then the watcher.

        Returns what `start_llm` returned. Raises what PromptStore.start raises, such as
        DialogFileError when the files are invalid and Redis has no good version.
        """
        prompts.prepare = self.prepare
        self.bind(prompts.current)
        await prompts.start(watch=False)
        llm = await start_llm(self.current().faq) if start_llm is not None else None
        await self.attach_llm(llm)
        if watch:
            prompts.start_watcher()
        return llm

    async def attach_llm(self, llm: LlmRuntime | None) -> None:
        """Put the LLM after the FAQ in the fallback of every set built from now on, and rebuild the current one.

        Called once at start-up, before any call: the LLM runtime needs an FAQ responder
        to start, so the first set is built without it.
        """
        self._llm = llm
        if llm is None:
            return
        self._sets.clear()
        await self.prepare(self.current_bundle())

    def current_bundle(self) -> PromptBundle:
        if self._current is None:
            raise RuntimeError("DialogSets is not bound to a prompt store; call bind() first")
        return self._current()

    def current(self) -> DialogSet:
        """Return the set of the current version, which prepare() built before it became current."""
        bundle = self.current_bundle()
        found = self._sets.get(bundle.digest)
        if found is None:
            raise RuntimeError(f"prompt version {bundle.version} became current without prepare(); pass it as PromptStore(prepare=...)")
        return found

    async def prepare(self, bundle: PromptBundle) -> None:
        """Build the set of `bundle` unless it is cached; the PromptStore prepare hook.

        Raises DialogFileError when the version lacks the FAQ or the escalation policy,
        which a version stored before those files were versioned does.
        """
        async with self._build_lock:
            if bundle.digest in self._sets:
                return
            missing = [name for name, value in ((FAQ_NAME, bundle.knowledge_base), (ESCALATION_NAME, bundle.escalation)) if value is None]
            if missing:
                raise DialogFileError([PromptProblem(name, None, "file_missing") for name in missing])
            assert bundle.knowledge_base is not None and bundle.escalation is not None
            messages = bundle.messages_for(None)
            faq_digest = bundle.file_digest(FAQ_NAME)
            faq = self._faqs.get(faq_digest)
            if faq is None:
                logger.info("Building the FAQ index of prompt version %s", bundle.version)
                faq = await asyncio.to_thread(self._faq_factory, bundle.knowledge_base, messages)
            else:
                logger.info("Prompt version %s reuses the FAQ index of an earlier version", bundle.version)
            fallback: Responder = faq
            if self._llm is not None:
                llm = self._llm.llm
                fallback = FaqThenLlmResponder(
                    faq,
                    LlmResponder(
                        client=llm.client, retrieve=faq_retriever(faq), router=llm.router, cache=llm.cache,
                        max_tokens=llm.max_tokens, temperature=llm.temperature, history_turns=llm.history_turns,
                        clarify_texts=llm.clarify_texts, handoff_texts=llm.handoff_texts,
                    ),
                    use_llm_below=self._llm.responder.use_llm_below,
                    max_queued_sentences=self._llm.responder.max_queued_sentences,
                    abandon_after_s=self._llm.responder.abandon_after_s,
                )
            dialog = DialogResponder(
                flows=bundle.flows,
                banking=self._banking,
                store=self._dialog_states,
                fallback=fallback,
                system_messages=messages,
                prompt_version=bundle.version,
            )
            responder = EscalatingResponder(policy=EscalationPolicy(bundle.escalation), inner=dialog, messages=messages)
            responder.last_decisions = self.last_decisions
            self._faqs[faq_digest] = faq
            self._sets[bundle.digest] = DialogSet(
                bundle=bundle, messages=messages, faq=faq, fallback=fallback, responder=responder
            )
            self._prune(keep=bundle.digest)

    def pin(self, call_id: str) -> DialogSet:
        """Return the set `call_id` runs on, pinning it to the current one on its first request."""
        found = self._pins.get(call_id)
        if found is not None:
            return found
        found = self.current()
        self._pins[call_id] = found
        logger.info("Call runs on prompt version %s", found.version, extra={"call_id": call_id})
        self._record_version(call_id, found.version)
        return found

    def unpin(self, call_id: str) -> None:
        """Forget a finished call; its set is dropped when no other call and no current version needs it."""
        found = self._pins.pop(call_id, None)
        if found is None:
            return
        found.responder.end_call(call_id)
        self._prune()

    @property
    def pinned_calls(self) -> int:
        """Number of calls pinned to a set."""
        return len(self._pins)

    def cached_versions(self) -> tuple[str, ...]:
        """Labels of the versions whose sets are built, oldest first."""
        return tuple(found.version for found in self._sets.values())

    async def aclose(self) -> None:
        """Cancel LLM answers in progress in every set and wait for the call-record writes."""
        for found in self._sets.values():
            if isinstance(found.fallback, FaqThenLlmResponder):
                await found.fallback.aclose()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5.0)

    def _prune(self, keep: str = "") -> None:
        wanted = {keep, *(found.bundle.digest for found in self._pins.values())}
        if self._current is not None:
            try:
                wanted.add(self._current().digest)
            except RuntimeError:
                pass  # the store has no version yet: the first prepare() runs before it has one
        for digest in [digest for digest in self._sets if digest not in wanted]:
            dropped = self._sets.pop(digest)
            logger.info("Dropped the responders of prompt version %s: no call runs on it", dropped.version)
            if isinstance(dropped.fallback, FaqThenLlmResponder):
                task = asyncio.get_running_loop().create_task(dropped.fallback.aclose())
                self._track(task)
        used_faqs = {found.bundle.file_digest(FAQ_NAME) for found in self._sets.values()}
        for digest in [digest for digest in self._faqs if digest not in used_faqs]:
            del self._faqs[digest]

    def _record_version(self, call_id: str, version: str) -> None:
        if self._records is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            logger.warning("Prompt version not written to the call record: no event loop", extra={"call_id": call_id})
            return
        self._track(loop.create_task(self._records.set_prompt_version(call_id, version)))

    def _track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("Background task of the prompt version sets failed: %r", task.exception())


class VersionedResponder:
    """The Responder every call shares: routes each turn to the set of the call's version."""

    def __init__(self, sets: DialogSets) -> None:
        self._sets = sets

    @property
    def last_decisions(self) -> OrderedDict[str, Decision]:
        """The escalation decision that handed each call over, by call id (EscalatingResponder.last_decisions)."""
        return self._sets.last_decisions

    async def respond(self, turn: CallerTurn, context: DialogContext) -> Reply:
        return await self._sets.pin(context.call_id).responder.respond(turn, context)

    def end_call(self, call_id: str) -> None:
        """Forget a finished call's escalation state and its version pin."""
        self._sets.unpin(call_id)
