"""Speech recognition with faster-whisper: one model per process, shared by all calls.

`WhisperTranscriber.transcribe` takes one caller turn as 16 kHz 16-bit PCM and returns a
`Transcript` in Simplified characters, with known hallucinations removed. Decoding runs in a
bounded thread pool, so decoding does not block the event loop, and a full queue raises OverloadedError.

Whisper pads every input to a 30 s window, and encoding that window dominates the cost of a short
turn. With `short_window=True` the encoder sees only the turn's own length (mel frames rounded up
to the next 100, at least 500 frames, which is 5 s), and the decoder runs through CTranslate2's
`generate`. A shorter window can make greedy decoding loop, so every decode has a token limit tied
to the audio duration, and a decode that hits the limit or repeats itself is run again on the full
30 s window.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from voicebot.asr.hints import RecognitionHint, strip_prompt_echo
from voicebot.asr.model_files import EMBEDDED_MODEL_NAME, resolve_whisper_model
from voicebot.asr.textfilter import (
    collapse_repetitions,
    echoes_word_list,
    join_cjk_spaces,
    strip_hallucinations,
    to_simplified,
)
from voicebot.errors import AudioError, ConfigError, ModelError, OverloadedError
from voicebot.priority import PrioritySlots, Urgency

logger = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 16_000
SUPPORTED_LANGUAGES = ("zh", "yue", "en")
DEFAULT_HOTWORDS = "信用卡 年费 账单 还款 激活 积分 分期 额度 挂失 盗刷 转账 人工 地址 储蓄卡"
VALID_DEVICES = ("cpu", "cuda", "auto")
VALID_COMPUTE_TYPES = (
    "default", "auto", "int8", "int8_float32", "int8_float16", "int8_bfloat16",
    "int16", "float16", "bfloat16", "float32",
)

# Whisper's mel spectrogram has 100 frames per second, and its encoder input is 3000 frames (30 s).
_FRAMES_PER_SECOND = 100
_FULL_WINDOW_FRAMES = 3000
_SHORT_WINDOW_MIN_FRAMES = 500
_SHORT_WINDOW_STEP_FRAMES = 100
# The model's decoder context, in tokens (448 for every Whisper size).
_MAX_CONTEXT_TOKENS = 448

# Token limit for one decode: a fast Mandarin speaker speaks about 6 characters per second, and
# Whisper's byte-level BPE spends 1-2 tokens per Chinese character. 15 tokens per second plus a
# margin for punctuation is well above real speech and well below a 448-token runaway loop.
_TOKENS_PER_SECOND_LIMIT = 15.0
_TOKEN_LIMIT_MARGIN = 10

# More characters than this per second of audio is not speech but a loop: fast Mandarin speech
# is about 6 characters per second.
_CHARACTERS_PER_SECOND_LIMIT = 8.0
_CHARACTER_LIMIT_MARGIN = 4

# Token limit of the decode with the hotwords, because a copy of the list runs on to the limit.
# Its retry without hotwords keeps the general limit (docs/asr.md, "Short window").
_HOTWORD_TOKENS_PER_SECOND_LIMIT = _CHARACTERS_PER_SECOND_LIMIT
_HOTWORD_TOKEN_LIMIT_MARGIN = _CHARACTER_LIMIT_MARGIN + 2

# zlib compression ratio above which a transcript counts as a loop (faster-whisper's default).
_COMPRESSION_RATIO_LIMIT = 2.4
# Whisper's own skip rule: a segment is silence when no_speech_prob is above this value and the
# average log-probability is below _NO_SPEECH_LOGPROB (openai-whisper and faster-whisper defaults).
_NO_SPEECH_LOGPROB = -1.0
# no_speech_prob above which the turn counts as silence whatever the log-probability.
_NO_SPEECH_CERTAIN = 0.9

# Spectral flatness (geometric over arithmetic mean of the power spectrum) of the loudest frames.
# White noise measures about 0.5 and voiced speech stays below 0.2, so a turn whose loudest
# frames are flatter than this limit is noise.
_NOISE_FLATNESS_LIMIT = 0.35
_ANALYSIS_FRAME_SAMPLES = 480  # 30 ms at 16 kHz

# Time limit of the plain path (short_window=False), checked between 30 s windows: the larger of
# 5 s and twice the audio duration.
_PLAIN_TIME_LIMIT_MIN_S = 5.0
_PLAIN_TIME_LIMIT_PER_AUDIO_S = 2.0


@dataclass(frozen=True)
class Transcript:
    """Result of one transcription.

    `text` is Simplified and filtered, and it is empty when `dropped` names the reason: "silence"
    (energy below the threshold), "noise" (flat spectrum), "no_speech" (Whisper's no-speech
    probability) or "hallucination" (only filtered phrases were left). `confidence` is in 0..1.
    `duration_s` is the audio length, `decode_s` the time spent in the worker thread.
    """

    text: str
    language: str
    confidence: float
    duration_s: float
    decode_s: float
    dropped: str | None = None


@dataclass(frozen=True)
class _Decoded:
    text: str
    avg_logprob: float
    no_speech_prob: float
    hit_token_limit: bool


_MODEL_CACHE: dict[tuple[str, str, str, int, int], Any] = {}
_MODEL_CACHE_LOCK = threading.Lock()


def _load_shared_model(path: str, device: str, compute_type: str, cpu_threads: int, workers: int) -> Any:
    # One WhisperModel per process and settings, because each copy costs about 150 MB (base)
    # to 3 GB (large-v3) and several seconds to load.
    from faster_whisper import WhisperModel

    key = (path, device, compute_type, cpu_threads, workers)
    with _MODEL_CACHE_LOCK:
        model = _MODEL_CACHE.get(key)
        if model is None:
            try:
                model = WhisperModel(
                    path,
                    device=device,
                    compute_type=compute_type,
                    cpu_threads=cpu_threads,
                    num_workers=workers,
                )
            except (OSError, RuntimeError, ValueError) as e:
                raise ModelError(
                    f"Failed to load Whisper model {path!r} (device={device}, compute_type={compute_type}): {e}. "
                    "Check the model name or folder, or use model='embedded'."
                ) from e
            _MODEL_CACHE[key] = model
        return model


def _compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def _rms_dbfs(samples: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if samples.size else 0.0
    return 20.0 * math.log10(max(rms, 1e-10))


def _loudest_frames(samples: np.ndarray, share: float = 0.2) -> np.ndarray:
    frame_count = samples.size // _ANALYSIS_FRAME_SAMPLES
    frames = samples[: frame_count * _ANALYSIS_FRAME_SAMPLES].reshape(frame_count, _ANALYSIS_FRAME_SAMPLES)
    energy = np.mean(np.square(frames, dtype=np.float64), axis=1)
    keep = max(1, int(frame_count * share))
    return frames[np.argsort(energy)[-keep:]]


def spectral_flatness(samples: np.ndarray) -> float:
    """Return the mean spectral flatness (0..1) of the loudest 20% of 30 ms frames.

    Only the telephone band (200-3400 Hz) counts: audio that came through an 8 kHz phone
    line has nothing above 4 kHz, which would make white noise look tonal.
    """
    if samples.size < _ANALYSIS_FRAME_SAMPLES:
        return 0.0
    frames = _loudest_frames(samples) * np.hanning(_ANALYSIS_FRAME_SAMPLES)
    bin_hz = SAMPLE_RATE_HZ / _ANALYSIS_FRAME_SAMPLES
    band = slice(int(200 / bin_hz), int(3400 / bin_hz) + 1)
    power = np.square(np.abs(np.fft.rfft(frames, axis=1)), dtype=np.float64)[:, band] + 1e-12
    flatness = np.exp(np.mean(np.log(power), axis=1)) / np.mean(power, axis=1)
    return float(np.mean(flatness))


def peak_frame_dbfs(samples: np.ndarray) -> float:
    """Return the RMS level in dBFS of the loudest 30 ms frame."""
    if samples.size < _ANALYSIS_FRAME_SAMPLES:
        return _rms_dbfs(samples)
    return _rms_dbfs(_loudest_frames(samples, share=0.0)[-1])


def _first_accepted(texts: list[str], accept: Callable[[str], bool]) -> int:
    """Index of the first hypothesis `accept` takes (they come best first), else 0."""
    for index, text in enumerate(texts):
        try:
            if accept(join_cjk_spaces(text.strip())):
                return index
        except Exception:  # a broken grammar check must not lose the turn
            logger.exception("recognition hint check failed; keeping the best hypothesis")
            return 0
    return 0


def _has_repetition_loop(text: str) -> bool:
    return collapse_repetitions(text) != text or _compression_ratio(text) > _COMPRESSION_RATIO_LIMIT


class WhisperTranscriber:
    """faster-whisper ASR shared by every call of the process.

    Construct it once at start-up, call `load()` before the first call, then `await transcribe()`
    from any task. Settings are checked in the constructor and raise ConfigError.
    """

    def __init__(
        self,
        *,
        model: str = EMBEDDED_MODEL_NAME,
        device: str = "cpu",
        compute_type: str = "int8",
        cpu_threads: int = 2,
        max_concurrent: int = 1,
        max_queued: int = 16,
        languages: tuple[str, ...] = SUPPORTED_LANGUAGES,
        default_language: str = "zh",
        hotwords: str | None = DEFAULT_HOTWORDS,
        initial_prompt: str | None = None,
        short_window: bool = True,
        silence_threshold_dbfs: float = -50.0,
        no_speech_threshold: float = 0.6,
    ) -> None:
        if not isinstance(model, str) or not model.strip():
            raise ConfigError(f"Invalid Whisper model {model!r}: use 'embedded', a model size such as 'large-v3', or a folder path")
        if device not in VALID_DEVICES:
            raise ConfigError(f"Invalid ASR device {device!r}: expected one of {', '.join(VALID_DEVICES)}")
        if compute_type not in VALID_COMPUTE_TYPES:
            raise ConfigError(
                f"Invalid ASR compute_type {compute_type!r}: expected one of {', '.join(VALID_COMPUTE_TYPES)}"
            )
        if not isinstance(cpu_threads, int) or cpu_threads < 0:
            raise ConfigError(f"Invalid ASR cpu_threads {cpu_threads!r}: expected an integer >= 0 (0 lets CTranslate2 choose)")
        if not isinstance(max_concurrent, int) or max_concurrent < 1:
            raise ConfigError(f"Invalid ASR max_concurrent {max_concurrent!r}: expected an integer >= 1")
        if not isinstance(max_queued, int) or max_queued < 0:
            raise ConfigError(f"Invalid ASR max_queued {max_queued!r}: expected an integer >= 0")
        if not languages:
            raise ConfigError(f"Invalid ASR languages {languages!r}: expected one or more of {', '.join(SUPPORTED_LANGUAGES)}")
        for language in languages:
            if language not in SUPPORTED_LANGUAGES:
                raise ConfigError(
                    f"Invalid ASR language {language!r}: expected one of {', '.join(SUPPORTED_LANGUAGES)}"
                )
        if default_language not in languages:
            raise ConfigError(
                f"Invalid ASR default_language {default_language!r}: expected one of the configured "
                f"languages {', '.join(languages)}"
            )
        if not -120.0 <= silence_threshold_dbfs <= 0.0:
            raise ConfigError(f"Invalid ASR silence_threshold_dbfs {silence_threshold_dbfs!r}: expected -120..0 dBFS")
        if not 0.0 < no_speech_threshold <= 1.0:
            raise ConfigError(f"Invalid ASR no_speech_threshold {no_speech_threshold!r}: expected a value in (0, 1]")

        self.model_name = model
        self.device = device
        self.compute_type = compute_type
        self.cpu_threads = cpu_threads
        self.max_concurrent = max_concurrent
        self.max_queued = max_queued
        self.languages = tuple(languages)
        self.default_language = default_language
        self.hotwords = hotwords.strip() if hotwords and hotwords.strip() else None
        self.initial_prompt = initial_prompt.strip() if initial_prompt and initial_prompt.strip() else None
        self.short_window = short_window
        self.silence_threshold_dbfs = silence_threshold_dbfs
        self.no_speech_threshold = no_speech_threshold

        self._model: Any = None
        self._executor: ThreadPoolExecutor | None = None
        self._language_tokens: dict[str, str] = {}
        self._pending = 0
        self._pending_lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Whether `load()` has completed."""
        return self._model is not None

    def load(self) -> None:
        """Load the model and start the worker pool. Blocks for seconds: call it at start-up."""
        if self._model is not None:
            return
        started = time.perf_counter()
        path = resolve_whisper_model(self.model_name)
        model = _load_shared_model(path, self.device, self.compute_type, self.cpu_threads, self.max_concurrent)

        # Whisper base to large-v2 have no <|yue|> token, only large-v3 has one. Cantonese is
        # decoded as <|zh|> on those models and still reported as "yue".
        for language in self.languages:
            token_language = language
            if model.hf_tokenizer.token_to_id(f"<|{language}|>") is None:
                token_language = "zh" if language == "yue" else language
            if model.hf_tokenizer.token_to_id(f"<|{token_language}|>") is None:
                raise ModelError(
                    f"Whisper model {self.model_name!r} has no token for language {language!r}: "
                    "use a multilingual model or remove the language from the ASR languages"
                )
            self._language_tokens[language] = token_language

        self._executor = ThreadPoolExecutor(max_workers=self.max_concurrent, thread_name_prefix="whisper")
        # With two or more workers one is kept for finished turns: a tentative decode that
        # started cannot be stopped when a caller's turn ends.
        self._slots = PrioritySlots(self.max_concurrent, reserved=1 if self.max_concurrent > 1 else 0)
        self._model = model
        logger.info(
            "Loaded Whisper model %s in %.1f s (device=%s, compute_type=%s, cpu_threads=%d, workers=%d)",
            self.model_name, time.perf_counter() - started, self.device, self.compute_type,
            self.cpu_threads, self.max_concurrent,
        )

    def close(self) -> None:
        """Stop the worker pool after the running decodes finish. The shared model stays loaded."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        self._model = None

    async def transcribe(
        self,
        pcm16k: bytes,
        *,
        language: str | None = None,
        hint: RecognitionHint | None = None,
        urgent: bool | Urgency = True,
    ) -> Transcript:
        """Transcribe one turn of 16 kHz mono 16-bit little-endian PCM.

        `language` is one of the configured languages, usually the line's default. With None the
        language is detected and limited to the configured set. `hint` biases this decode
        towards the answer the dialog expects (voicebot.asr.hints). A decode that is not urgent
        (a speculative one) raises OverloadedError when `max_concurrent` decodes run and
        `max_queued` more wait; an urgent one always waits. Waiting decodes start in order,
        except that urgent ones go first. Pass an `Urgency` to make a waiting decode urgent later.
        """
        if self._model is None or self._executor is None:
            raise ModelError("WhisperTranscriber.transcribe() called before load(): call load() at start-up")
        if language is not None and language not in self.languages:
            raise ConfigError(
                f"Invalid ASR language {language!r} for this call: expected one of {', '.join(self.languages)}"
            )
        if len(pcm16k) % 2:
            raise AudioError(f"16-bit PCM must have an even number of bytes, got {len(pcm16k)}")

        is_urgent = urgent.urgent if isinstance(urgent, Urgency) else urgent
        with self._pending_lock:
            # Only tentative decodes are rejected. A finished turn always waits for a worker, because
            # each call has at most one at a time and a rejected turn leaves its caller with no reply.
            if not is_urgent and self._pending >= self.max_concurrent + self.max_queued:
                raise OverloadedError(
                    f"ASR queue is full ({self.max_concurrent} running, {self.max_queued} waiting): tentative "
                    "decode skipped; raise max_concurrent or max_queued if this happens often"
                )
            self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            async with self._slots.hold(urgent):
                return await loop.run_in_executor(self._executor, self._transcribe_sync, pcm16k, language, hint)
        finally:
            with self._pending_lock:
                self._pending -= 1

    def transcribe_blocking(
        self, pcm16k: bytes, *, language: str | None = None, hint: RecognitionHint | None = None
    ) -> Transcript:
        """Transcribe in the calling thread, for benchmarks and scripts without an event loop."""
        if self._model is None:
            raise ModelError("WhisperTranscriber.transcribe_blocking() called before load(): call load() first")
        return self._transcribe_sync(pcm16k, language, hint)

    def _transcribe_sync(self, pcm16k: bytes, language: str | None, hint: RecognitionHint | None = None) -> Transcript:
        started = time.perf_counter()
        samples = np.frombuffer(pcm16k, dtype="<i2").astype(np.float32) / 32768.0
        duration_s = samples.size / SAMPLE_RATE_HZ

        def result(text: str, reported: str, confidence: float, dropped: str | None) -> Transcript:
            return Transcript(
                text=text,
                language=reported,
                confidence=confidence,
                duration_s=duration_s,
                decode_s=time.perf_counter() - started,
                dropped=dropped,
            )

        fallback_language = language or self.default_language
        if duration_s < 0.1 or peak_frame_dbfs(samples) < self.silence_threshold_dbfs:
            return result("", fallback_language, 0.0, "silence")
        if spectral_flatness(samples) > _NOISE_FLATNESS_LIMIT:
            return result("", fallback_language, 0.0, "noise")

        if self.short_window and duration_s <= _FULL_WINDOW_FRAMES / _FRAMES_PER_SECOND:
            decoded, reported = self._decode_short_window(samples, language, duration_s, hint)
        else:
            decoded, reported = self._transcribe_plain(samples, language, duration_s, hint)

        confidence = math.exp(min(decoded.avg_logprob, 0.0)) * (1.0 - decoded.no_speech_prob)
        confidence = min(1.0, max(0.0, confidence))
        if decoded.no_speech_prob > _NO_SPEECH_CERTAIN or (
            decoded.no_speech_prob > self.no_speech_threshold and decoded.avg_logprob < _NO_SPEECH_LOGPROB
        ):
            return result("", reported, confidence, "no_speech")

        text = strip_hallucinations(join_cjk_spaces(to_simplified(decoded.text.strip())))
        if hint is not None:
            text = strip_prompt_echo(text, hint)
        if not text:
            return result("", reported, confidence, "hallucination" if decoded.text.strip() else "no_speech")
        return result(text, reported, confidence, None)

    # Decoding paths -------------------------------------------------------------------------

    def _token_limit(self, duration_s: float, prompt_length: int, *, with_hotwords: bool = False) -> int:
        if with_hotwords:
            limit = int(math.ceil(duration_s * _HOTWORD_TOKENS_PER_SECOND_LIMIT)) + _HOTWORD_TOKEN_LIMIT_MARGIN
        else:
            limit = int(math.ceil(duration_s * _TOKENS_PER_SECOND_LIMIT)) + _TOKEN_LIMIT_MARGIN
        return max(1, min(limit, _MAX_CONTEXT_TOKENS - prompt_length - 1))

    def _tokenizer(self, token_language: str) -> Any:
        from faster_whisper.tokenizer import Tokenizer

        return Tokenizer(
            self._model.hf_tokenizer,
            self._model.model.is_multilingual,
            task="transcribe",
            language=token_language,
        )

    def _choose_language(self, encoder_output: Any, requested: str | None) -> tuple[str, str]:
        # Return (reported language, language token) for this turn.
        if requested is not None:
            return requested, self._language_tokens[requested]
        if len(self.languages) == 1:
            return self.languages[0], self._language_tokens[self.languages[0]]

        probabilities = self._model.model.detect_language(encoder_output)[0]
        token_to_configured: dict[str, str] = {}
        for configured in self.languages:
            # When yue shares the zh token, a detected zh is reported as zh if zh is configured.
            token_to_configured.setdefault(self._language_tokens[configured], configured)
        if "zh" in self.languages:
            token_to_configured["zh"] = "zh"
        for token, _probability in probabilities:
            code = token[2:-2]
            if code in token_to_configured:
                return token_to_configured[code], code
        return self.default_language, self._language_tokens[self.default_language]

    def _hotwords(self, hint: RecognitionHint | None) -> str | None:
        if hint is not None and hint.hotwords:
            return hint.hotwords
        return self.hotwords

    def _prompt(self, tokenizer: Any, hint: RecognitionHint | None = None, *, use_hotwords: bool = True) -> list[int]:
        initial_prompt = hint.prompt if hint is not None and hint.prompt else self.initial_prompt
        previous = tokenizer.encode(" " + initial_prompt) if initial_prompt else []
        hotwords = self._hotwords(hint) if use_hotwords else None
        return self._model.get_prompt(tokenizer, previous, without_timestamps=True, hotwords=hotwords)

    def _is_suspect(self, decoded: _Decoded, duration_s: float, hint: RecognitionHint | None = None) -> bool:
        # A decode that hit the token limit, loops on a phrase or copies the hotword list is
        # not trusted and is decoded again.
        text = to_simplified(decoded.text)
        if decoded.hit_token_limit or _has_repetition_loop(text):
            return True
        if len(join_cjk_spaces(text)) > duration_s * _CHARACTERS_PER_SECOND_LIMIT + _CHARACTER_LIMIT_MARGIN:
            return True
        hotwords = self._hotwords(hint)
        return hotwords is not None and echoes_word_list(text, hotwords)

    def _generate(
        self, features: np.ndarray, language: str | None, duration_s: float, hint: RecognitionHint | None = None
    ) -> tuple[_Decoded, str]:
        encoder_output = self._model.encode(features)
        reported, token_language = self._choose_language(encoder_output, language)
        tokenizer = self._tokenizer(token_language)

        # Decode with the hotwords, and once more without them when the output is not trusted.
        # A caller who starts with words of the list (信用卡年费……) can make Whisper base copy
        # the list or loop on it ("信用卡 年费 账 账 账"). A second decode of the same encoder
        # output costs a tenth of a decode on the 30 s window, the fallback after this one.
        decoded = self._generate_once(encoder_output, tokenizer, duration_s, hint, use_hotwords=True)
        if self._hotwords(hint) is not None and self._is_suspect(decoded, duration_s, hint):
            logger.info("Whisper output copied or looped on the hotwords; decoding again without them")
            decoded = self._generate_once(encoder_output, tokenizer, duration_s, hint, use_hotwords=False)
        return decoded, reported

    def _generate_once(
        self, encoder_output: Any, tokenizer: Any, duration_s: float, hint: RecognitionHint | None, *, use_hotwords: bool
    ) -> _Decoded:
        from faster_whisper.transcribe import get_suppressed_tokens

        prompt = self._prompt(tokenizer, hint, use_hotwords=use_hotwords)
        with_hotwords = use_hotwords and self._hotwords(hint) is not None
        max_new_tokens = self._token_limit(duration_s, len(prompt), with_hotwords=with_hotwords)
        n_best = hint.n_best if hint is not None and hint.accept is not None else 1

        output = self._model.model.generate(
            encoder_output,
            [prompt],
            beam_size=n_best,
            num_hypotheses=n_best,
            max_length=len(prompt) + max_new_tokens,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
        )[0]
        chosen = 0
        if n_best > 1 and hint is not None and hint.accept is not None:
            chosen = _first_accepted(
                [to_simplified(tokenizer.decode(tokens)) for tokens in output.sequences_ids], hint.accept
            )
        tokens = output.sequences_ids[chosen]
        # CTranslate2 returns the cumulative log-probability divided by the length (length_penalty=1);
        # faster-whisper recovers the mean over tokens plus end-of-text the same way.
        avg_logprob = output.scores[chosen] * len(tokens) / (len(tokens) + 1)
        return _Decoded(
            text=tokenizer.decode(tokens),
            avg_logprob=avg_logprob,
            no_speech_prob=output.no_speech_prob,
            hit_token_limit=len(tokens) >= max_new_tokens,
        )

    def _decode_short_window(
        self, samples: np.ndarray, language: str | None, duration_s: float, hint: RecognitionHint | None = None
    ) -> tuple[_Decoded, str]:
        features = self._model.feature_extractor(samples)
        content_frames = features.shape[-1]
        window = max(
            _SHORT_WINDOW_MIN_FRAMES,
            int(math.ceil(content_frames / _SHORT_WINDOW_STEP_FRAMES)) * _SHORT_WINDOW_STEP_FRAMES,
        )
        window = min(window, _FULL_WINDOW_FRAMES)
        padded = np.zeros((features.shape[0], window), dtype=features.dtype)
        padded[:, : min(content_frames, window)] = features[:, :window]

        decoded, reported = self._generate(padded, language, duration_s, hint)
        if self._is_suspect(decoded, duration_s, hint):
            logger.info(
                "Short-window decode of a %.1f s turn hit the token limit or looped; retrying on the 30 s window",
                duration_s,
            )
            decoded, reported = self._decode_full_window(samples, language, duration_s, hint)
        return decoded, reported

    def _decode_full_window(
        self, samples: np.ndarray, language: str | None, duration_s: float, hint: RecognitionHint | None = None
    ) -> tuple[_Decoded, str]:
        from faster_whisper.audio import pad_or_trim

        features = pad_or_trim(self._model.feature_extractor(samples))
        return self._generate(features, language, duration_s, hint)

    def _transcribe_plain(
        self, samples: np.ndarray, language: str | None, duration_s: float, hint: RecognitionHint | None = None
    ) -> tuple[_Decoded, str]:
        # The plain path keeps one hypothesis, so a hint brings its context (prompt and
        # hotwords) but no grammar check.
        # WhisperModel.transcribe pads to 30 s windows and slides over turns longer than one window.
        # It would detect any of Whisper's 99 languages, so detection runs here first and is
        # limited to the configured set.
        started = time.perf_counter()
        if language is None:
            from faster_whisper.audio import pad_or_trim

            encoder_output = self._model.encode(pad_or_trim(self._model.feature_extractor(samples)))
            reported, token_language = self._choose_language(encoder_output, None)
        else:
            reported, token_language = language, self._language_tokens[language]

        window_s = min(duration_s, _FULL_WINDOW_FRAMES / _FRAMES_PER_SECOND)
        prompt_length = len(self._prompt(self._tokenizer(token_language), hint))
        max_new_tokens = self._token_limit(window_s, prompt_length)
        # Time limit for the whole turn, checked between 30 s windows. One window is bounded by
        # max_new_tokens.
        time_limit_s = max(_PLAIN_TIME_LIMIT_MIN_S, duration_s * _PLAIN_TIME_LIMIT_PER_AUDIO_S)
        segments, _info = self._model.transcribe(
            samples,
            language=token_language,
            beam_size=1,
            temperature=0.0,
            condition_on_previous_text=False,
            hotwords=self._hotwords(hint),
            initial_prompt=hint.prompt if hint is not None and hint.prompt else self.initial_prompt,
            without_timestamps=True,
            max_new_tokens=max_new_tokens,
            no_speech_threshold=self.no_speech_threshold,
        )
        texts: list[str] = []
        logprobs: list[float] = []
        no_speech: list[float] = []
        hit_limit = False
        for segment in segments:
            texts.append(segment.text)
            logprobs.append(segment.avg_logprob)
            no_speech.append(segment.no_speech_prob)
            hit_limit = hit_limit or len(segment.tokens) >= max_new_tokens
            if time.perf_counter() - started > time_limit_s:
                logger.warning(
                    "Whisper decode of a %.1f s turn passed its %.1f s time limit; keeping the text so far",
                    duration_s, time_limit_s,
                )
                break
        decoded = _Decoded(
            text="".join(texts),
            avg_logprob=float(np.mean(logprobs)) if logprobs else -10.0,
            no_speech_prob=float(np.min(no_speech)) if no_speech else 1.0,
            hit_token_limit=hit_limit,
        )
        return decoded, reported
