"""Shared fixtures of the escalation tests: the repository policy and the labelled cases."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from voicebot.escalation import EscalationPolicy

REPO_ROOT = Path(__file__).resolve().parents[2]
POLICY_PATH = REPO_ROOT / "dialogs" / "escalation.yaml"
CASES_PATH = Path(__file__).with_name("cases.yaml")


def load_cases() -> list[dict]:
    """Return the labelled cases of cases.yaml."""
    return yaml.safe_load(CASES_PATH.read_text(encoding="utf-8"))["cases"]


def shared_speech_folder() -> Path:
    """Return $VOICEBOT_SHARED_SPEECH, or shared/speech beside the repository."""
    configured = os.environ.get("VOICEBOT_SHARED_SPEECH", "").strip()
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "speech"


@pytest.fixture(scope="session")
def policy() -> EscalationPolicy:
    """The policy of dialogs/escalation.yaml with real detectors."""
    return EscalationPolicy.from_file(POLICY_PATH)


@pytest.fixture(scope="session")
def cases() -> list[dict]:
    """The labelled cases."""
    return load_cases()


@pytest.fixture
def callers_folder() -> Path:
    """The folder of caller clips; skips the test when the shared speech is absent."""
    folder = shared_speech_folder() / "callers"
    if not (folder / "MANIFEST.tsv").is_file():
        pytest.skip(f"caller clips not found at {folder}: set VOICEBOT_SHARED_SPEECH to the shared speech folder")
    return folder
