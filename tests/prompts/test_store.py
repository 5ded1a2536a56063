"""Version store in real Redis: reload, rejected edits, watcher, rollback and calls keeping their version."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as redis_asyncio

from voicebot.prompts import PromptStore, PromptVersionError
from voicebot.responder.messages import DialogFileError

from .conftest import REDIS_URL, PromptTree

pytestmark = pytest.mark.timeout(60)

MESSAGES = "prompts/messages.yaml"
HOLD_V1 = "请稍等，我正在为您查询。"
HOLD_V2 = "请稍等，我马上为您查询。"
HOLD_V3 = "请您稍等片刻，我正在为您查询。"


@pytest.fixture
async def make_store(tree: PromptTree, key_prefix: str) -> AsyncIterator[Callable[..., PromptStore]]:
    """Build stores on the temp tree and one Redis prefix, and close them all at the end."""
    stores: list[PromptStore] = []

    def make(**overrides: object) -> PromptStore:
        options: dict[str, object] = {
            "prompts_dir": tree.prompts,
            "dialogs_dir": tree.dialogs,
            "redis_url": REDIS_URL,
            "key_prefix": key_prefix,
            "poll_interval_s": 0.05,
            "actor": "tester@test",
        }
        options.update(overrides)
        store = PromptStore(**options)  # type: ignore[arg-type]
        stores.append(store)
        return store

    yield make
    for store in stores:
        await store.close()


async def wait_until(condition: Callable[[], bool]) -> None:
    """Wait for the watcher to make `condition` true; the test's timeout bounds the wait."""
    while not condition():
        await asyncio.sleep(0.02)


async def test_versions_round_trip(tree, make_store, key_prefix):
    """Start and reload store each version in Redis with its files, digest and author."""
    store = make_store()
    first = await store.start(watch=False)
    assert first.sequence == 1
    tree.edit(MESSAGES, HOLD_V1, HOLD_V2)
    second = await store.reload()
    assert second.sequence == 2

    records = await store.versions()
    assert [record.sequence for record in records] == [1, 2]
    assert [record.digest for record in records] == [first.digest, second.digest]
    assert [record.source for record in records] == ["start", "reload"]
    assert {record.created_by for record in records} == {"tester@test"}
    assert HOLD_V1 in records[0].files[MESSAGES]
    assert HOLD_V2 in records[1].files[MESSAGES]
    assert records[1].files == dict(second.files)
    assert records[1].label == second.version

    client = redis_asyncio.from_url(REDIS_URL, decode_responses=True)
    try:
        assert await client.hlen(f"{key_prefix}:versions") == 2
        active = json.loads(await client.get(f"{key_prefix}:active"))
    finally:
        await client.aclose()
    assert (active["sequence"], active["reason"]) == (2, "reload")


async def test_unchanged_reload_reuses_version(make_store):
    """Reloading files that did not change adds no version."""
    store = make_store()
    first = await store.start(watch=False)
    again = await store.reload()
    assert again.version == first.version
    assert len(await store.versions()) == 1


async def test_broken_reload_rejected(tree, make_store):
    """An invalid edit is rejected with its problems and the last good version stays active."""
    store = make_store()
    good = await store.start(watch=False)
    tree.edit(MESSAGES, "你系想问{choices}", "你系想问{choice}")
    with pytest.raises(DialogFileError) as caught:
        await store.reload()
    assert caught.value.problems[0].code == "unknown_variable"
    assert store.current() is good
    assert len(await store.versions()) == 1
    assert store.last_problems and "{choice}" in store.last_problems[0]
    rejected = await store.rejected_record()
    assert rejected is not None
    assert rejected["problems"] == list(store.last_problems)


async def test_call_keeps_its_version(tree, make_store):
    """A call that started on v1 still renders v1 texts after a reload to v2; a new call gets v2."""
    store = make_store()
    await store.start(watch=False)
    call_bundle = store.current()  # what a call takes when it starts
    tree.edit(MESSAGES, HOLD_V1, HOLD_V2)
    await store.reload()

    assert call_bundle.sequence == 1
    assert call_bundle.render("hold", "zh") == HOLD_V1
    new_call_bundle = store.current()
    assert new_call_bundle.sequence == 2
    assert new_call_bundle.render("hold", "zh") == HOLD_V2


async def test_watcher_hot_reload(tree, make_store):
    """The watcher activates an edited file without a restart and refuses a broken edit."""
    store = make_store()
    await store.start(watch=True)
    tree.edit(MESSAGES, HOLD_V1, HOLD_V2)
    await wait_until(lambda: store.current().sequence == 2)
    assert store.current().render("hold", "zh") == HOLD_V2

    tree.edit("prompts/centres/beijing.yaml", "auto_response_threshold: 0.92", "auto_response_threshold: 1.2")
    await wait_until(lambda: bool(store.last_problems))
    assert "auto_response_threshold" in store.last_problems[0]
    assert store.current().sequence == 2
    assert store.current().centre_settings("beijing").auto_response_threshold == 0.92

    tree.edit("prompts/centres/beijing.yaml", "auto_response_threshold: 1.2", "auto_response_threshold: 0.9")
    await wait_until(lambda: store.current().sequence == 3)
    assert store.current().centre_settings("beijing").auto_response_threshold == 0.9
    assert store.last_problems == ()


async def test_watcher_stops_on_close(make_store):
    """Closing the store ends its watcher task."""
    store = make_store()
    await store.start(watch=True)
    assert any(task.get_name() == "prompt-watcher" for task in asyncio.all_tasks())
    await store.close()
    assert not any(task.get_name() == "prompt-watcher" for task in asyncio.all_tasks())


async def test_rollback_with_broken_files(tree, make_store):
    """Rollback activates a stored version even while the files on disk are invalid."""
    store = make_store()
    await store.start(watch=False)
    tree.edit(MESSAGES, HOLD_V1, HOLD_V2)
    await store.reload()
    tree.edit(MESSAGES, "greeting:", "greting:")

    rolled = await store.rollback("v1")
    assert rolled.sequence == 1
    assert store.current().render("hold", "zh") == HOLD_V1
    active = await store.active_record()
    assert active is not None
    assert (active.sequence, active.reason) == (1, "rollback")
    assert "greting:" in tree.path(MESSAGES).read_text(encoding="utf-8")  # the disk is left as it was


async def test_rollback_by_label_and_digest(make_store, tree):
    """A version can be named by number, label or digest prefix; an unknown one raises."""
    store = make_store()
    first = await store.start(watch=False)
    tree.edit(MESSAGES, HOLD_V1, HOLD_V2)
    await store.reload()
    assert (await store.rollback(first.version)).sequence == 1
    assert (await store.rollback(2)).sequence == 2
    assert (await store.rollback(first.digest[:10])).sequence == 1
    with pytest.raises(PromptVersionError, match="not found"):
        await store.rollback(9)
    with pytest.raises(PromptVersionError, match="another digest"):
        await store.rollback("v1-ffffffffffff")


async def test_rollback_holds_until_edit(tree, make_store):
    """A rollback survives a restart while the files are unchanged; the next valid edit replaces it."""
    store = make_store()
    await store.start(watch=False)
    tree.edit(MESSAGES, HOLD_V1, HOLD_V2)
    await store.reload()
    await store.rollback(1)
    await store.close()

    restarted = make_store()
    assert (await restarted.start(watch=True)).sequence == 1
    tree.edit(MESSAGES, HOLD_V2, HOLD_V3)
    await wait_until(lambda: restarted.current().sequence == 3)
    assert restarted.current().render("hold", "zh") == HOLD_V3


async def test_start_with_broken_files(tree, make_store):
    """Start-up with invalid files runs the last good version, or raises when there is none."""
    tree.edit(MESSAGES, "greeting:", "greting:")
    with pytest.raises(DialogFileError):
        await make_store().start(watch=False)

    tree.edit(MESSAGES, "greting:", "greeting:")
    first = make_store()
    await first.start(watch=False)
    tree.edit(MESSAGES, "greeting:", "greting:")
    second = make_store()
    bundle = await second.start(watch=False)
    assert bundle.sequence == 1
    assert second.last_problems


async def test_follows_rollback_of_other_process(tree, make_store):
    """A service activates a version that another process made active in Redis."""
    service = make_store()
    await service.start(watch=False)
    tree.edit(MESSAGES, HOLD_V1, HOLD_V2)
    await service.reload()

    operator = make_store()
    await operator.connect()
    await operator.rollback(1)
    await service.poll_once()
    assert service.current().sequence == 1
    assert service.current().render("hold", "zh") == HOLD_V1
