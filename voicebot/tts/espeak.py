"""Speech synthesis with the espeak-ng command-line program.

espeak-ng is small, fast and runs on any Debian host (`apt-get install espeak-ng`), so
it is the default engine. Its voice is robotic: a site that needs a natural voice plugs
in another engine with the same `synthesize`/`stream` interface (`SpeechSynthesizer`).

Each synthesis runs one espeak-ng process with the text on stdin and the WAV on stdout,
so a hung or crashed process affects one sentence only, and cancelling the awaiting
task kills the process.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import struct
import subprocess
from collections.abc import AsyncIterator, Mapping
from typing import Protocol

import numpy as np
import soxr

from voicebot.errors import ConfigError, UpstreamError
from voicebot.priority import PrioritySlots
from voicebot.tts.normalize import LANGUAGES as NORMALIZED_LANGUAGES
from voicebot.tts.normalize import normalize_for_speech
from voicebot.tts.sentences import split_sentences

__all__ = ["DEFAULT_VOICES", "EspeakSynthesizer", "SpeechSynthesizer"]

logger = logging.getLogger(__name__)

# NOTE: Mandarin uses "cmn-latn-pinyin", not "cmn". In espeak-ng 1.51 (Debian 12) the
# "cmn" voice reads most characters as pinyin with English tone numbers (你 is read
# "ni three"), because it treats its own pinyin as English text. "cmn-latn-pinyin"
# reads Chinese characters correctly and still reads ASCII words such as APP in English.
DEFAULT_VOICES: Mapping[str, str] = {"zh": "cmn-latn-pinyin", "yue": "yue", "en": "en"}

_INSTALL_HINT = "install it with `apt-get install espeak-ng`"
# Samples below -40 dBFS count as silence when trimming. espeak-ng writes digital zeros
# between utterances, so any low threshold works.
_SILENCE_THRESHOLD = 0.01
_STDERR_CHARS_IN_ERRORS = 200


class SpeechSynthesizer(Protocol):
    """The interface the call pipeline uses to turn reply text into audio."""

    sample_rate: int

    async def synthesize(self, text: str, language: str, *, urgent: bool = False) -> bytes:
        """Return 16-bit little-endian mono PCM at `sample_rate`, empty for silent text.

        `urgent` marks audio a caller is waiting for (the first sentence of a reply); an
        engine that queues requests serves it before the others.
        """
        ...

    def stream(self, text: str, language: str) -> AsyncIterator[tuple[str, bytes]]:
        """Yield (sentence, PCM) pairs in order, so playback can start after the first."""
        ...


class EspeakSynthesizer:
    """Speech synthesizer that runs espeak-ng in a subprocess per sentence.

    `voices` maps a language ("zh", "yue", "en") to an espeak-ng voice name.
    `rate_wpm` is the speaking rate in words per minute (espeak-ng `-s`).
    `max_concurrent` bounds the espeak-ng processes this instance runs at a time, and
    later requests wait for a free slot. `timeout_s` bounds one process. `keep_silence_s`
    is the silence kept at each end of the trimmed audio. `max_sentence_chars` is the
    piece size that `stream` splits text into.
    """

    def __init__(
        self,
        *,
        sample_rate: int = 16000,
        voices: Mapping[str, str] | None = None,
        rate_wpm: int = 165,
        max_concurrent: int = 2,
        executable: str = "espeak-ng",
        timeout_s: float = 10.0,
        keep_silence_s: float = 0.05,
        max_sentence_chars: int = 40,
    ) -> None:
        if sample_rate < 8000:
            raise ConfigError(f"EspeakSynthesizer: sample_rate must be at least 8000 Hz, got {sample_rate}")
        if not 80 <= rate_wpm <= 450:
            # speak_lib.h of espeak-ng sets the rate range: espeakRATE_MINIMUM 80, espeakRATE_MAXIMUM 450.
            raise ConfigError(f"EspeakSynthesizer: rate_wpm must be within 80..450, got {rate_wpm}")
        if max_concurrent < 1:
            raise ConfigError(f"EspeakSynthesizer: max_concurrent must be at least 1, got {max_concurrent}")
        if timeout_s <= 0:
            raise ConfigError(f"EspeakSynthesizer: timeout_s must be positive, got {timeout_s}")
        if keep_silence_s < 0:
            raise ConfigError(f"EspeakSynthesizer: keep_silence_s must not be negative, got {keep_silence_s}")

        self.sample_rate = sample_rate
        self.voices: dict[str, str] = dict(DEFAULT_VOICES if voices is None else voices)
        self.rate_wpm = rate_wpm
        self.max_concurrent = max_concurrent
        self.executable = executable
        self.timeout_s = timeout_s
        self.keep_silence_s = keep_silence_s
        self.max_sentence_chars = max_sentence_chars
        self._slots = PrioritySlots(max_concurrent)

    def check(self) -> None:
        """Verify that espeak-ng runs and has every configured voice.

        Blocks for a few tens of milliseconds per voice, so call it at start-up before
        serving calls. Raises ConfigError naming the missing program or voice.
        """
        path = shutil.which(self.executable)
        if path is None:
            raise ConfigError(f"espeak-ng executable {self.executable!r} not found on PATH; {_INSTALL_HINT}")

        installed = _installed_voice_names(path, timeout_s=self.timeout_s)
        for language, voice in self.voices.items():
            # espeak-ng falls back to a prefix of an unknown name ("yue-typo" speaks as
            # "yue", "no-such" as Norwegian), so the name itself must be in the list.
            if voice.split("+", 1)[0].lower() not in installed:
                raise ConfigError(
                    f"espeak-ng voice {voice!r} for language {language!r} not found in `espeak-ng --voices`; "
                    f"{_INSTALL_HINT}, or set voices={{{language!r}: <a name from that list>}}"
                )
            try:
                result = subprocess.run(
                    [path, "-q", "-v", voice, "check"],
                    capture_output=True,
                    timeout=self.timeout_s,
                    check=False,
                )
            except subprocess.TimeoutExpired as error:
                raise ConfigError(
                    f"espeak-ng timed out after {self.timeout_s} s while loading voice {voice!r}; "
                    f"check that {path} runs from a shell"
                ) from error
            if result.returncode != 0:
                stderr = result.stderr.decode(errors="replace").strip()[:_STDERR_CHARS_IN_ERRORS]
                raise ConfigError(
                    f"espeak-ng voice {voice!r} for language {language!r} not found ({stderr}); "
                    f"{_INSTALL_HINT}, or set voices={{{language!r}: <a name from `espeak-ng --voices`>}}"
                )
        logger.info("espeak-ng at %s has voices %s", path, self.voices)

    async def synthesize(self, text: str, language: str, *, urgent: bool = False) -> bytes:
        """Synthesize `text` and return 16-bit little-endian mono PCM at `sample_rate`.

        When all `max_concurrent` processes run, an `urgent` request (the first sentence of a
        reply, which a caller is waiting for) gets the next free one before other waiting
        requests (later sentences, which play only after it).

        Chinese text ("zh", "yue") is normalised first. Silence at both ends is trimmed
        to `keep_silence_s`. Text with nothing to speak returns b"". Raises ConfigError
        for a language without a voice, UpstreamError if espeak-ng fails or times out.
        Cancelling the caller kills the espeak-ng process.
        """
        voice = self._voice(language)
        if language in NORMALIZED_LANGUAGES:
            text = normalize_for_speech(text, language)
        if not any(char.isalnum() for char in text):
            return b""

        async with self._slots.hold(urgent):
            wav = await self._run_espeak(text, voice)
        source_rate, samples = _parse_wav(wav)
        samples = _trim_silence(samples, keep_samples=int(self.keep_silence_s * source_rate))
        if samples.size == 0:
            return b""
        if source_rate != self.sample_rate:
            samples = soxr.resample(samples, source_rate, self.sample_rate, quality="HQ")
        pcm = np.clip(np.round(samples * 32768.0), -32768, 32767).astype("<i2")
        return pcm.tobytes()

    async def stream(self, text: str, language: str) -> AsyncIterator[tuple[str, bytes]]:
        """Yield (sentence, PCM) for each sentence of `text`, in order.

        The next sentence is synthesized while the caller plays the current one. Closing
        the iterator early cancels that synthesis. Sentences with no audio are skipped.
        """
        self._voice(language)
        sentences = split_sentences(text, max_chars=self.max_sentence_chars)
        next_task: asyncio.Task[bytes] | None = None
        try:
            for index, sentence in enumerate(sentences):
                if next_task is None:
                    next_task = self._start_synthesis(sentences, index, language)
                pcm = await next_task
                next_task = None
                if index + 1 < len(sentences):
                    next_task = self._start_synthesis(sentences, index + 1, language)
                if pcm:
                    yield sentence, pcm
        finally:
            if next_task is not None:
                await _cancel_and_wait(next_task)

    def _start_synthesis(self, sentences: list[str], index: int, language: str) -> asyncio.Task[bytes]:
        return asyncio.create_task(self.synthesize(sentences[index], language), name=f"espeak-sentence-{index}")

    def _voice(self, language: str) -> str:
        try:
            return self.voices[language]
        except KeyError:
            raise ConfigError(
                f"no espeak-ng voice configured for language {language!r}; "
                f"configured languages: {sorted(self.voices)}; add it to voices="
            ) from None

    async def _run_espeak(self, text: str, voice: str) -> bytes:
        # The text goes on stdin, never on the command line, so it cannot be parsed as
        # an option and does not show in process listings (it may hold card numbers).
        # -b 1 sets the input encoding to UTF-8.
        command = [self.executable, "-v", voice, "-s", str(self.rate_wpm), "-b", "1", "--stdin", "--stdout"]
        try:
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as error:
            raise UpstreamError(f"failed to start espeak-ng {self.executable!r}: {error}; {_INSTALL_HINT}") from error

        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(text.encode("utf-8")), self.timeout_s)
        except TimeoutError as error:
            raise UpstreamError(
                f"espeak-ng timed out after {self.timeout_s} s with voice {voice!r} on {len(text)} characters; "
                "raise timeout_s or shorten max_sentence_chars"
            ) from error
        finally:
            # Runs on success, timeout and cancellation alike: no process outlives its request.
            if process.returncode is None:
                process.kill()
                await process.wait()

        if process.returncode != 0:
            message = stderr.decode(errors="replace").strip()[:_STDERR_CHARS_IN_ERRORS]
            raise UpstreamError(
                f"espeak-ng failed with exit code {process.returncode} for voice {voice!r}: {message}; "
                "run EspeakSynthesizer.check() at start-up to find a missing voice"
            )
        return stdout


def _installed_voice_names(path: str, *, timeout_s: float) -> set[str]:
    """Return the lower-case names `-v` accepts: languages, voice files and aliases."""
    try:
        result = subprocess.run([path, "--voices"], capture_output=True, timeout=timeout_s, check=True)
    except (subprocess.TimeoutExpired, subprocess.CalledProcessError) as error:
        raise ConfigError(f"`{path} --voices` failed: {error}; check that espeak-ng runs from a shell") from error

    names: set[str] = set()
    # Columns: Pty, Language, Age/Gender, VoiceName, File, then aliases as "(en 2)".
    for line in result.stdout.decode(errors="replace").splitlines()[1:]:
        fields = line.split()
        if len(fields) < 5:
            continue
        language, voice_name, file = fields[1], fields[3], fields[4]
        names.update({language, voice_name, file, file.rsplit("/", 1)[-1]})
        names.update(field.lstrip("(") for field in fields[5:] if field.startswith("("))
    return {name.lower() for name in names}


async def _cancel_and_wait(task: asyncio.Task[bytes]) -> None:
    """Cancel `task` and wait until its espeak-ng process is gone."""
    task.cancel()
    await asyncio.wait([task])
    if not task.cancelled() and task.exception() is not None:
        # The result is no longer needed, so its error only gets a log line.
        logger.warning("discarded a failed look-ahead synthesis: %s", task.exception())


def _parse_wav(data: bytes) -> tuple[int, np.ndarray]:
    """Return (sample rate, float32 samples in -1..1) of espeak-ng's 16-bit mono WAV.

    espeak-ng writes the WAV to a pipe, so its RIFF and data sizes are placeholders
    (0x7ffff000). The samples are therefore everything after the data chunk header.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise UpstreamError(f"espeak-ng wrote {len(data)} bytes that are not a WAV file; check the espeak-ng install")
    position = 12
    sample_rate = 0
    while position + 8 <= len(data):
        chunk_id = data[position : position + 4]
        chunk_size = struct.unpack_from("<I", data, position + 4)[0]
        body = position + 8
        if chunk_id == b"fmt ":
            audio_format, channels, sample_rate = struct.unpack_from("<HHI", data, body)
            bits = struct.unpack_from("<H", data, body + 14)[0]
            if (audio_format, channels, bits) != (1, 1, 16):
                raise UpstreamError(
                    f"espeak-ng wrote WAV format {audio_format}, {channels} channels, {bits} bits; "
                    "expected 16-bit mono PCM"
                )
        elif chunk_id == b"data":
            if sample_rate == 0:
                raise UpstreamError("espeak-ng wrote a WAV data chunk before its fmt chunk")
            payload = data[body:]
            payload = payload[: len(payload) // 2 * 2]
            samples = np.frombuffer(payload, dtype="<i2").astype(np.float32) / 32768.0
            return sample_rate, samples
        position = body + chunk_size + (chunk_size & 1)
    raise UpstreamError("espeak-ng wrote a WAV file without a data chunk; check the espeak-ng install")


def _trim_silence(samples: np.ndarray, *, keep_samples: int) -> np.ndarray:
    """Cut leading and trailing silence, keeping `keep_samples` of it at each end."""
    loud = np.flatnonzero(np.abs(samples) > _SILENCE_THRESHOLD)
    if loud.size == 0:
        return samples[:0]
    start = max(0, int(loud[0]) - keep_samples)
    end = min(samples.size, int(loud[-1]) + 1 + keep_samples)
    return samples[start:end]
