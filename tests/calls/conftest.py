"""Fixtures for whole calls: the real service (Whisper, espeak-ng, Redis) on 127.0.0.1, port 0."""

from __future__ import annotations

import csv
import dataclasses
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from voicebot.config import REPO_ROOT, Settings
from voicebot.handoff.queue import HandoffQueue
from voicebot.server import running_server
from voicebot.services import Services, load_services


def shared_speech_dir() -> Path:
    return Path(os.environ.get("VOICEBOT_SHARED_SPEECH", REPO_ROOT.parent / "shared" / "speech"))


@pytest.fixture(scope="session")
def callers_dir() -> Path:
    folder = shared_speech_dir() / "callers"
    if not (folder / "MANIFEST.tsv").is_file():
        pytest.skip(f"caller clips not found in {folder}: set VOICEBOT_SHARED_SPEECH to the folder holding callers/")
    return folder


@pytest.fixture(scope="session")
def caller_manifest(callers_dir: Path) -> list[dict[str, str]]:
    with open(callers_dir / "MANIFEST.tsv", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def services() -> AsyncIterator[Services]:
    """Every model loaded once for the whole test session, as the service does at start-up."""
    # A banking simulator of its own: another test run on the same Redis re-seeds the shared one.
    loaded = await load_services(Settings(port=0, banking_key_prefix=f"voicebot-test-{uuid.uuid4().hex[:8]}:banksim:"))
    # A queue of its own, so a voicebot running beside the tests on the same Redis never
    # offers its calls to the tests' reps or takes theirs.
    queue = HandoffQueue(redis_url=loaded.settings.redis_url, key_prefix=f"voicebot-test-{uuid.uuid4().hex[:8]}:handoff:")
    await queue.connect()
    await loaded.handoff_queue.close()
    loaded = dataclasses.replace(loaded, handoff_queue=queue)
    yield loaded
    await loaded.banking.clear()
    await loaded.close()


@pytest_asyncio.fixture(loop_scope="session")
async def media_url(services: Services) -> AsyncIterator[str]:
    """A fresh server on 127.0.0.1 (port 0) sharing the session's models; yields its ws:// media URL."""
    async with running_server(Settings(port=0), services) as (url, _):
        yield url.replace("http://", "ws://") + "/media"
