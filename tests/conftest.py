"""Settings for every test: keep pipecat's loguru output at warnings, as the service does."""

import sys

from loguru import logger

logger.remove()
logger.add(sys.stderr, level="WARNING")


from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def whisper_base() -> Iterator["WhisperTranscriber"]:  # noqa: F821
    """The embedded Whisper base, loaded once for the tests that decode clips directly."""
    from voicebot.asr.whisper import WhisperTranscriber

    transcriber = WhisperTranscriber(cpu_threads=2)
    transcriber.load()
    yield transcriber
    transcriber.close()
