"""Fixtures that load the caller clips for the audio tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def callers_dir() -> Path:
    """Return the folder of caller clips, or skip when it is missing."""
    shared = Path(os.environ.get("VOICEBOT_SHARED_SPEECH", REPO_ROOT.parent / "shared" / "speech"))
    folder = shared / "callers"
    if not (folder / "MANIFEST.tsv").is_file():
        pytest.skip(
            f"caller clips not found in {folder}: set VOICEBOT_SHARED_SPEECH to the folder "
            "that contains callers/MANIFEST.tsv"
        )
    return folder
