"""Hot reload of flows, the FAQ and the escalation policy with the prompts, on real Redis and temp copies of the files.

The dialog side of the service is built as load_services builds it (DialogSets started on a
PromptStore, VersionedResponder, CallRecordStore). Whisper, TTS and the turn model are
left out, because text turns do not use them.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from voicebot.callrecord import CallRecordStore
from voicebot.config import REPO_ROOT, Settings
from voicebot.dialog.banking import RedisBankingSimulator
from voicebot.dialog.state import DialogStateStore
from voicebot.prompts import PromptStore
from voicebot.prompts.dialog_sets import DialogSets, VersionedResponder
from voicebot.responder.base import CallerTurn, DialogContext, Reply, ReplyKind
from voicebot.responder.messages import DialogFileError
from voicebot.services import Services

from .conftest import REDIS_URL

pytestmark = pytest.mark.timeout(120)

FLOW = "dialogs/flows/lost_card.yaml"
FAQ = "dialogs/faq.yaml"
CALLER = "13922223333"  # a customer of the banking simulator

NEW_TOPIC = """\
  - id: travel_notice
    title: 出国旅行报备
    questions:
      - 出国旅游前要通知银行吗
      - 去国外刷卡要不要先报备
    answer:
      zh: 出国前不需要报备，您的卡可以直接在境外刷卡消费。
      yue: 出国之前唔使报备，你张卡可以直接喺外国碌卡。
    policy_version: 2024-sample-1
    approved_by: 示例审批人
"""


@dataclass
class DialogService:
    """The dialog side of a running service on a temp copy of prompts/ and dialogs/."""

    root: Path
    services: Services
    prompts: PromptStore
    sets: DialogSets
    states: DialogStateStore
    records: CallRecordStore

    def edit(self, name: str, old: str, new: str) -> None:
        path = self.root / name
        text = path.read_text(encoding="utf-8")
        assert old in text, f"{old!r} not in {name}"
        path.write_text(text.replace(old, new), encoding="utf-8")

    def line_of(self, name: str, fragment: str) -> int:
        lines = (self.root / name).read_text(encoding="utf-8").splitlines()
        return next(number for number, line in enumerate(lines, start=1) if fragment in line)

    def start_call(self, call_id: str) -> None:
        """Take the call's version as CallPipeline does when the call starts."""
        self.services.call_messages("default", call_id=call_id)

    async def say(self, call_id: str, index: int, text: str) -> Reply:
        turn = CallerTurn(text=text, language="zh", asr_confidence=0.9, turn_index=index)
        context = DialogContext(call_id=call_id, language="zh", caller=CALLER)
        return await self.services.responder.respond(turn, context)

    async def step_of(self, call_id: str) -> str | None:
        state = await self.states.load(call_id)
        assert state is not None
        return state.step_id


@pytest.fixture
async def dialog_service(tmp_path: Path, key_prefix: str) -> AsyncIterator[DialogService]:
    shutil.copytree(REPO_ROOT / "prompts", tmp_path / "prompts")
    shutil.copytree(REPO_ROOT / "dialogs", tmp_path / "dialogs")

    records = CallRecordStore(url=REDIS_URL, key_prefix=f"{key_prefix}:record:")
    await records.connect()
    banking = RedisBankingSimulator(url=REDIS_URL, key_prefix=f"{key_prefix}:bank:")
    await banking.seed()
    states = DialogStateStore(url=REDIS_URL, key_prefix=f"{key_prefix}:dialog:")

    sets = DialogSets(banking=banking, dialog_states=states, faq_threshold=0.80, records=records)
    prompts = PromptStore(
        prompts_dir=tmp_path / "prompts",
        dialogs_dir=tmp_path / "dialogs",
        redis_url=REDIS_URL,
        key_prefix=key_prefix,
        poll_interval_s=0.05,
        actor="tester@test",
    )
    await sets.start(prompts)

    services = Services(
        settings=Settings(port=0),
        transcriber=None,  # type: ignore[arg-type]
        synthesizer=None,  # type: ignore[arg-type]
        responder=VersionedResponder(sets),
        dialog_sets=sets,
        store=records,
        turn_model=None,  # type: ignore[arg-type]
        prompts=prompts,
        dialog_states=states,
        banking=banking,
        handoff_queue=None,  # type: ignore[arg-type]
    )
    try:
        yield DialogService(tmp_path, services, prompts, sets, states, records)
    finally:
        await prompts.close()
        await sets.aclose()
        await states.close()
        await banking.close()
        await records.close()


async def wait_until(condition: Callable[[], bool]) -> None:
    """Wait for the watcher to make `condition` true; the test's timeout bounds the wait."""
    while not condition():
        await asyncio.sleep(0.02)


def rename_first_step(service: DialogService) -> None:
    """Rename the lost-card step that asks for the card digits, wherever the flow names it."""
    path = service.root / FLOW
    text = re.sub(r"\bask_last4\b", "ask_digits", path.read_text(encoding="utf-8"))
    path.write_text(text, encoding="utf-8")


async def test_flow_edit_spares_running_call(dialog_service):
    """A flow edit reaches new calls, while a call in the middle of the flow finishes on the old flow."""
    service = dialog_service
    first = service.prompts.current()
    service.start_call("running")
    await service.say("running", 1, "我要挂失")
    assert await service.step_of("running") == "ask_last4"

    rename_first_step(service)
    await wait_until(lambda: service.prompts.current().sequence == first.sequence + 1)
    second = service.prompts.current()
    assert second.flows.flows["lost_card"].steps[2].id == "ask_digits"

    service.start_call("new")
    await service.say("new", 1, "我要挂失")
    assert await service.step_of("new") == "ask_digits"

    reply = await service.say("running", 2, "三五七一")
    assert reply.kind is not ReplyKind.HANDOFF
    assert await service.step_of("running") == "confirm_last4"
    running_state = await service.states.load("running")
    assert running_state is not None
    assert running_state.prompt_version == first.version

    # Only the flow changed, so the new version shares the FAQ index of the first.
    service.sets.unpin("running")
    service.sets.unpin("new")
    assert service.sets.cached_versions() == (second.version,)


@pytest.mark.parametrize("lang", ["zh", "en"])
async def test_broken_flow_rejected(dialog_service, lang):
    """A flow jumping to a missing step is rejected with file and line, and calls go on on the last good set."""
    service = dialog_service
    good = service.prompts.current()
    service.edit(FLOW, "on_fail: no_customer", "on_fail: no_such_step")
    with pytest.raises(DialogFileError) as caught:
        await service.prompts.reload()
    assert service.prompts.current().version == good.version

    problems = [problem for problem in caught.value.problems if problem.code == "unknown_step"]
    assert len(problems) == 1
    line = service.line_of(FLOW, "on_fail: no_such_step")
    text = problems[0].describe(lang)
    path = str(service.root / FLOW)
    if lang == "en":
        assert text.startswith(f"{path}, line {line}, step 'find_customer': step 'no_such_step' does not exist")
    else:
        assert text.startswith(f"{path} 第 {line} 行，步骤“find_customer”：步骤“no_such_step”不存在")
    assert service.prompts.last_problems == (problems[0].describe("zh"),)

    service.start_call("after-rejection")
    reply = await service.say("after-rejection", 1, "我要挂失")
    assert reply.topic == "lost_card"
    assert await service.step_of("after-rejection") == "ask_last4"


async def test_broken_flow_watcher_keeps_running(dialog_service):
    """The watcher records a rejected flow edit and keeps the last good version active."""
    service = dialog_service
    good = service.prompts.current()
    service.edit(FLOW, "collect: card_last4", "collect: card_digits")
    await wait_until(lambda: bool(service.prompts.last_problems))
    assert service.prompts.current().version == good.version
    assert "槽位“card_digits”没有在 slots 里定义" in service.prompts.last_problems[0]
    rejected = await service.prompts.rejected_record()
    assert rejected is not None
    assert rejected["problems"] == list(service.prompts.last_problems)


async def test_rollback_across_flow_change(dialog_service):
    """Rolling back returns new calls to the old flow, and a call on the rolled-back version keeps its flow."""
    service = dialog_service
    first = service.prompts.current()
    rename_first_step(service)
    second = await service.prompts.reload()
    service.start_call("on-second")
    await service.say("on-second", 1, "我要挂失")

    rolled = await service.prompts.rollback(first.sequence)
    assert rolled.version == first.version
    assert service.prompts.current().version == first.version

    service.start_call("after-rollback")
    await service.say("after-rollback", 1, "我要挂失")
    assert await service.step_of("after-rollback") == "ask_last4"
    assert await service.step_of("on-second") == "ask_digits"
    await service.say("on-second", 2, "三五七一")
    assert await service.step_of("on-second") == "confirm_last4"
    assert second.version in service.sets.cached_versions()


async def test_call_record_names_version(dialog_service):
    """The call record stores the version the call was pinned to at its start."""
    service = dialog_service
    await service.records.start_call(
        "recorded", stream_sid="s", call_sid="c", caller=CALLER, language="zh", centre="default", started_at=1.0
    )
    service.start_call("recorded")
    version = service.prompts.current().version

    async def recorded_version() -> str:
        while True:
            record = await service.records.get_call("recorded")
            if record is not None and record.prompt_version:
                return record.prompt_version
            await asyncio.sleep(0.02)

    assert await recorded_version() == version


async def test_faq_edit_answers_new_topic(dialog_service):
    """A new FAQ topic answers in a call that starts after the edit, and not in one that started before it."""
    service = dialog_service
    question = "出国旅游前要通知银行吗"
    first = service.prompts.current()
    service.start_call("before-edit")

    service.edit(FAQ, "entries:\n", "entries:\n" + NEW_TOPIC)
    second = await service.prompts.reload()
    assert second.knowledge_base is not None
    assert "travel_notice" in second.knowledge_base.ids
    assert service.services.faq is not service.sets.pin("before-edit").faq

    service.start_call("after-edit")
    reply = await service.say("after-edit", 1, question)
    assert reply.kind is ReplyKind.ANSWER
    assert reply.topic == "travel_notice"
    assert reply.text == "出国前不需要报备，您的卡可以直接在境外刷卡消费。"

    old_reply = await service.say("before-edit", 1, question)
    assert old_reply.topic != "travel_notice"
    old_state = await service.states.load("before-edit")
    assert old_state is not None
    assert old_state.prompt_version == first.version


async def test_broken_faq_rejected(dialog_service):
    """An FAQ entry without a Cantonese answer is rejected with its line, and the old FAQ keeps answering."""
    service = dialog_service
    good = service.prompts.current()
    broken = NEW_TOPIC.replace("      yue: 出国之前唔使报备，你张卡可以直接喺外国碌卡。\n", "")
    service.edit(FAQ, "entries:\n", "entries:\n" + broken)
    with pytest.raises(DialogFileError) as caught:
        await service.prompts.reload()
    assert service.prompts.current().version == good.version
    assert [problem.code for problem in caught.value.problems] == ["missing_language"]
    assert str(service.root / FAQ) in service.prompts.last_problems[0]
    assert "travel_notice" in service.prompts.last_problems[0]


async def test_broken_escalation_rejected(dialog_service):
    """An escalation policy without its policy_version is rejected, and the last good version stays active."""
    service = dialog_service
    good = service.prompts.current()
    path = service.root / "dialogs/escalation.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(re.sub(r"(?m)^policy_version:.*$", "policy_version: ''", text), encoding="utf-8")
    with pytest.raises(DialogFileError):
        await service.prompts.reload()
    assert service.prompts.current().version == good.version
    assert service.prompts.last_problems
    assert str(path) in service.prompts.last_problems[0]
    assert "policy_version" in service.prompts.last_problems[0]
