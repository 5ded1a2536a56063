"""Process-wide resources shared by all calls: models, responder, call-record store.

Everything heavy loads once at start-up (Whisper, the embedding index, the Smart Turn
model), so a call never waits for a model to load and a broken file or missing package
stops the service before it accepts a call. The prompt and dialog files are reloaded when
they change; a new version's FAQ index is built in a worker thread before the version
serves a call (voicebot.prompts.dialog_sets).
"""

from __future__ import annotations

import asyncio
import gc

import importlib.resources
import logging
import time
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort
from pipecat.audio.turn.smart_turn.base_smart_turn import BaseSmartTurn, SmartTurnParams
from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3

from voicebot.asr.whisper import WhisperTranscriber
from voicebot.audio.webrtc_vad import WebRTCVADAnalyzer
from voicebot.callrecord import CallRecordStore
from voicebot.config import Settings
from voicebot.errors import ModelError
from voicebot.responder.faq import FaqResponder
from voicebot.responder.messages import Messages
from voicebot.dialog.banking import RedisBankingSimulator
from voicebot.dialog.places import PLACES_FILE, use_places_file
from voicebot.dialog.state import DialogStateStore
from voicebot.handoff.queue import HandoffQueue
from voicebot.llm.runtime import LlmRuntime, start_llm_fallback
from voicebot.prompts.bundle import PromptBundle
from voicebot.prompts.dialog_sets import DialogSets, VersionedResponder
from voicebot.prompts.store import PromptStore
from voicebot.tts.espeak import EspeakSynthesizer

logger = logging.getLogger(__name__)


class SmartTurnModel(LocalSmartTurnAnalyzerV3):
    """Smart Turn v3 end-of-turn model on one shared ONNX session, judged on a turn's own audio.

    pipecat's analyser buffers audio with wall-clock timestamps, so its verdict depends on
    when frames arrived. The turn detector already holds the turn's audio, so this class
    only runs pipecat's feature extraction and model (`_predict_endpoint`) on it, which gives
    the same verdict for the same audio however fast it came. ONNX Runtime sessions are
    safe to run from several threads, so all calls share one.
    """

    def __init__(self, *, session: ort.InferenceSession) -> None:
        # Skips LocalSmartTurnAnalyzerV3.__init__, which would load the model again.
        # NOTE: relies on pipecat 1.14's private attributes `_session` and `_log_data`.
        BaseSmartTurn.__init__(self, sample_rate=16000, params=SmartTurnParams())
        self.set_sample_rate(16000)
        self._log_data = False
        self._session = session

    def probability_complete(self, pcm16k: bytes) -> float:
        """Return the model's probability that the turn in this 16 kHz PCM is complete (last 8 s count)."""
        samples = np.frombuffer(pcm16k, dtype="<i2").astype(np.float32) / 32768.0
        return float(self._predict_endpoint(samples)["probability"])


SMART_TURN_PACKAGE = "pipecat.audio.turn.smart_turn.data"
SMART_TURN_MODEL = "smart-turn-v3.2-cpu.onnx"


def load_smart_turn_session(*, threads: int = 1) -> ort.InferenceSession:
    """Load the Smart Turn v3 model that ships inside the pipecat-ai wheel."""
    path = importlib.resources.files(SMART_TURN_PACKAGE).joinpath(SMART_TURN_MODEL)
    if not path.is_file():
        raise ModelError(
            f"Smart Turn model {SMART_TURN_MODEL} not found in {SMART_TURN_PACKAGE}; "
            "reinstall with: pip install 'pipecat-ai[silero]==1.14.0'"
        )
    options = ort.SessionOptions()
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), sess_options=options)


class CentreMessages:
    """The spoken messages of one prompt version with one centre's overrides applied."""

    def __init__(self, bundle: PromptBundle, centre: str) -> None:
        self.bundle = bundle
        self.centre = centre

    def render(self, key: str, language: str, **variables: str) -> str:
        return self.bundle.render(key, language, centre=self.centre, **variables)


@dataclass
class Services:
    settings: Settings
    transcriber: WhisperTranscriber
    synthesizer: EspeakSynthesizer
    responder: VersionedResponder
    dialog_sets: DialogSets
    store: CallRecordStore
    turn_model: SmartTurnModel
    prompts: PromptStore
    dialog_states: DialogStateStore
    banking: RedisBankingSimulator
    handoff_queue: HandoffQueue
    llm: LlmRuntime | None = None

    @property
    def faq(self) -> FaqResponder:
        """The FAQ responder of the current prompt version."""
        return self.dialog_sets.current().faq

    @property
    def messages(self) -> Messages:
        """The messages of the current prompt version, without centre overrides."""
        return self.dialog_sets.current().messages

    def call_messages(self, centre: str, call_id: str = "") -> CentreMessages:
        """Return the prompt version of a call; the call keeps it, with its flows, FAQ and policy, to the end.

        With `call_id` the call is pinned to the current version here, at its start, and
        the responder handles its turns with that version. Without it, the call is pinned at its
        first turn, so a reload between the greeting and that turn gives the call's
        messages and its responders different versions.
        """
        if not call_id:
            return CentreMessages(self.prompts.current(), centre)
        return CentreMessages(self.dialog_sets.pin(call_id).bundle, centre)

    def new_vad(self) -> WebRTCVADAnalyzer:
        return WebRTCVADAnalyzer()

    async def close(self) -> None:
        await self.prompts.close()
        await self.dialog_sets.aclose()  # cancels LLM answers in progress, before the LLM client closes
        if self.llm is not None:
            await self.llm.close()
        await self.handoff_queue.close()
        await self.dialog_states.close()
        await self.banking.close()
        await self.store.close()
        self.transcriber.close()
        # load_services froze the start-up objects; closed services may be collected again.
        gc.unfreeze()


async def load_services(settings: Settings) -> Services:
    """Load and check every shared resource; raises a VoicebotError naming what is wrong."""
    store = CallRecordStore(url=settings.redis_url, ttl_s=settings.record_ttl_s)
    await store.connect()
    banking = RedisBankingSimulator(url=settings.redis_url, key_prefix=settings.banking_key_prefix)
    if settings.seed_banking_simulator:
        await banking.seed()
    dialog_states = DialogStateStore(url=settings.redis_url)
    # Place names that correct spoken addresses live beside the FAQ (dialogs/places.yaml).
    use_places_file(settings.knowledge_base.parent / PLACES_FILE)
    # Prompts, flows, the FAQ and the escalation policy are one versioned set, reloaded
    # when a file changes: see voicebot.prompts.dialog_sets and docs/prompts.md.
    dialog_sets = DialogSets(
        banking=banking, dialog_states=dialog_states, faq_threshold=settings.faq_threshold, records=store
    )
    prompts = PromptStore(
        prompts_dir=settings.messages.parent,
        dialogs_dir=settings.knowledge_base.parent,
        faq_path=settings.knowledge_base,
        escalation_path=settings.escalation_policy,
        redis_url=settings.redis_url,
    )

    async def start_llm(faq: FaqResponder) -> LlmRuntime | None:
        return await start_llm_fallback(
            base_url=settings.llm_base_url,
            api_key=settings.llm_api_key,
            model_small=settings.llm_model_small,
            model_large=settings.llm_model_large,
            faq=faq,
            redis_url=settings.redis_url,
            threads=settings.llm_threads,
            first_token_timeout_s=settings.llm_first_token_timeout_s,
            idle_timeout_s=settings.llm_idle_timeout_s,
            use_llm_below=settings.llm_use_below,
        )

    llm = await dialog_sets.start(prompts, start_llm=start_llm)
    handoff_queue = HandoffQueue(redis_url=settings.redis_url, wait_timeout_s=settings.handoff_wait_timeout_s)
    await handoff_queue.connect()
    synthesizer = EspeakSynthesizer(rate_wpm=settings.tts_rate_wpm, max_concurrent=settings.tts_workers)
    synthesizer.check()
    transcriber = WhisperTranscriber(
        model=settings.whisper_model,
        cpu_threads=settings.asr_threads,
        max_concurrent=settings.asr_workers,
        max_queued=settings.asr_max_queued,
        languages=settings.languages,
        default_language=settings.default_language,
    )
    logger.info("loading Whisper model %s", settings.whisper_model)
    transcriber.load()
    # One real decode at start-up, so the first caller turn does not pay for warming up
    # CTranslate2 (measured at about 1.5 s extra on the first turn of a fresh process).
    warm_up = await synthesizer.synthesize("您好，请问有什么可以帮您", settings.default_language)
    # Whisper base mishears espeak-ng's voice, so the retry messages of this decode are expected.
    logger.info("warming up Whisper on a synthetic phrase; its transcript is discarded")
    started = time.monotonic()
    # One decode per worker at once, so every model replica is warm.
    await asyncio.gather(
        *(transcriber.transcribe(warm_up, language=settings.default_language) for _ in range(settings.asr_workers))
    )
    logger.info("Whisper warm-up done in %.1f s", time.monotonic() - started)
    services = Services(
        settings=settings,
        transcriber=transcriber,
        synthesizer=synthesizer,
        responder=VersionedResponder(dialog_sets),
        dialog_sets=dialog_sets,
        store=store,
        prompts=prompts,
        dialog_states=dialog_states,
        banking=banking,
        handoff_queue=handoff_queue,
        llm=llm,
        turn_model=SmartTurnModel(session=load_smart_turn_session()),
    )
    # The models, tokenizers and dictionaries loaded above are about 300 000 Python objects
    # that live as long as the process. A full garbage collection walks all of them and
    # stopped the event loop for 80-150 ms, long enough to delay every call's RTP. Freezing
    # them leaves later collections only the objects the calls create.
    gc.freeze()
    return services
