"""Fixtures of the prompt tests: temp copies of the shipped prompt files, a flow that follows the contract, Redis."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as redis_asyncio

from voicebot.config import REPO_ROOT

REDIS_URL = "redis://127.0.0.1:6379/0"

# Flow messages and a flow that uses them, written the way the flow files are specified:
# say/reprompt/dtmf_prompt/confirm name message keys, and {var} must be a declared slot or a built-in.
# The flow follows the flow engine's format (docs/flows.md), because the prompt set checks that too.
FLOW_MESSAGES = """\
ask_card_last4:
  zh: 请告诉我您卡号的后四位。
  yue: 请话我知你张卡最后四个字。

confirm_card_last4:
  zh: 您说的后四位是{card_last4}，对吗？
  yue: 你讲嘅最后四个字系{card_last4}，啱唔啱？

lost_card_done:
  zh: 尾号{digits}的卡已经挂失。
  yue: 尾号{digits}嘅卡已经挂失咗。
"""

LOST_CARD_FLOW = """\
id: lost_card
triggers: [lost_card]
slots:
  card_last4: {type: digits, length: 4, dtmf: true}
steps:
  - id: ask_last4
    say: ask_card_last4
    reprompt: not_heard
    collect: card_last4
  - id: confirm_last4
    confirm: confirm_card_last4
  - id: done
    say: lost_card_done
    end: true
"""


@dataclass
class PromptTree:
    """A temp copy of prompts/ and a dialogs/ folder for one test."""

    root: Path

    @property
    def prompts(self) -> Path:
        return self.root / "prompts"

    @property
    def dialogs(self) -> Path:
        return self.root / "dialogs"

    def path(self, name: str) -> Path:
        """Return the path of `name`, relative to the temp root (e.g. "prompts/messages.yaml")."""
        return self.root / name

    def edit(self, name: str, old: str, new: str) -> Path:
        """Replace the first `old` in file `name` with `new`; fails if `old` is not there."""
        path = self.path(name)
        text = path.read_text(encoding="utf-8")
        assert old in text, f"{old!r} not in {name}"
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
        return path

    def write(self, name: str, text: str) -> Path:
        path = self.path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def line_of(self, name: str, fragment: str) -> int:
        """Return the 1-based line of the first occurrence of `fragment` in file `name`."""
        for number, line in enumerate(self.path(name).read_text(encoding="utf-8").splitlines(), start=1):
            if fragment in line:
                return number
        raise AssertionError(f"{fragment!r} not in {name}")

    def add_flow(self) -> None:
        """Add prompts/flows.yaml and dialogs/flows/lost_card.yaml."""
        self.write("prompts/flows.yaml", FLOW_MESSAGES)
        self.write("dialogs/flows/lost_card.yaml", LOST_CARD_FLOW)


@pytest.fixture
def tree(tmp_path: Path) -> PromptTree:
    """Copy the shipped messages, system prompts and centres; other helpers' files are left out."""
    prompts = tmp_path / "prompts"
    (prompts / "centres").mkdir(parents=True)
    for name in ("messages.yaml", "system.yaml"):
        shutil.copy(REPO_ROOT / "prompts" / name, prompts / name)
    for centre in ("shanghai", "beijing", "shenzhen"):
        shutil.copy(REPO_ROOT / "prompts" / "centres" / f"{centre}.yaml", prompts / "centres" / f"{centre}.yaml")
    (tmp_path / "dialogs").mkdir()
    return PromptTree(tmp_path)


@pytest.fixture
async def key_prefix() -> AsyncIterator[str]:
    """A Redis key prefix used by one test only; its keys are deleted afterwards."""
    prefix = f"test:prompts:{uuid.uuid4().hex}"
    yield prefix
    client = redis_asyncio.from_url(REDIS_URL, decode_responses=True)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
