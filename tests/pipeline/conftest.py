"""Fixtures of the pipeline tests: the shared speech folder, as the ASR tests find it."""

from tests.asr.conftest import speech_dir  # noqa: F401
