"""Shared fixtures of the ASR tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from .speech import shared_speech_dir


@pytest.fixture(scope="session")
def speech_dir() -> Path:
    """Folder of the shared test speech; skips the test when it is absent."""
    folder = shared_speech_dir()
    if not (folder / "callers" / "MANIFEST.tsv").is_file():
        pytest.skip(f"shared test speech not found at {folder}: set VOICEBOT_SHARED_SPEECH")
    return folder
