"""`voicebot prompts` run as a subprocess: output language, exit codes, versions and rollback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from voicebot.config import REPO_ROOT
from voicebot.prompts import PromptStore

from .conftest import REDIS_URL

pytestmark = pytest.mark.timeout(60)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voicebot.cli", "prompts", *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=30, check=False,
    )


def test_check_ok(tree):
    """Valid files exit 0 with one OK line in Chinese."""
    tree.add_flow()
    result = run_cli("check", "--prompts", str(tree.prompts), "--dialogs", str(tree.dialogs))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("OK：提示语和对话文件检查通过")
    assert "1 个流程，4 处流程引用" in result.stdout
    assert len(result.stdout.splitlines()) == 1


def test_check_errors_zh(tree):
    """Invalid files exit 1 with one Chinese line per problem, each naming file and line."""
    tree.edit("prompts/messages.yaml", "你系想问{choices}", "你系想问{choice}")
    tree.edit("prompts/centres/shanghai.yaml", "automation_level: high", "automation_level: max")
    result = run_cli("check", "--prompts", str(tree.prompts), "--dialogs", str(tree.dialogs))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 3  # {choice} is unknown and {choices} is missing, then the centre's value
    messages_line = tree.line_of("prompts/messages.yaml", "{choice}")
    centre_line = tree.line_of("prompts/centres/shanghai.yaml", "automation_level: max")
    assert lines[0].startswith(f"{tree.path('prompts/messages.yaml')} 第 {messages_line} 行")
    assert "未知的模板变量 {choice}" in lines[0]
    assert "必须包含模板变量 {choices}" in lines[1]
    assert lines[2].startswith(f"{tree.path('prompts/centres/shanghai.yaml')} 第 {centre_line} 行")
    assert "共发现 3 个问题" in result.stderr


def test_check_errors_en(tree):
    """--lang en prints the problems in English."""
    tree.edit("prompts/messages.yaml", "你系想问{choices}", "你系想问{choice}")
    result = run_cli("check", "--lang", "en", "--prompts", str(tree.prompts), "--dialogs", str(tree.dialogs))
    assert result.returncode == 1
    line = tree.line_of("prompts/messages.yaml", "{choice}")
    assert result.stdout.startswith(f"{tree.path('prompts/messages.yaml')}, line {line}: ")
    assert "unknown template variable {choice}" in result.stdout


async def test_versions_rollback_show(tree, key_prefix):
    """versions lists stored versions, rollback switches the active one, show prints a stored file."""
    redis_args = ("--redis-url", REDIS_URL, "--key-prefix", key_prefix)
    dir_args = ("--prompts", str(tree.prompts), "--dialogs", str(tree.dialogs))
    empty = run_cli("versions", *redis_args)
    assert empty.returncode == 0
    assert "还没有保存的版本" in empty.stdout

    service = PromptStore(prompts_dir=tree.prompts, dialogs_dir=tree.dialogs, redis_url=REDIS_URL, key_prefix=key_prefix)
    try:
        first = await service.start(watch=False)
        tree.edit("prompts/messages.yaml", "我正在为您查询", "我马上为您查询")
        second = await service.reload()

        listed = run_cli("versions", *redis_args)
        assert listed.returncode == 0
        assert f"  {first.version}  " in listed.stdout
        assert f"* {second.version}  " in listed.stdout
        assert f"当前版本：{second.version}（reload" in listed.stdout

        rolled = run_cli("rollback", "1", *redis_args, *dir_args)
        assert rolled.returncode == 0, rolled.stderr
        assert rolled.stdout.startswith(f"已回滚到版本 {first.version}")
        await service.poll_once()
        assert service.current().version == first.version

        display_paths = run_cli("show", *redis_args, "--lang", "en")
        assert display_paths.returncode == 0
        assert display_paths.stdout.startswith(f"version {first.version}\n")
        assert "prompts/messages.yaml" in display_paths.stdout

        stored = run_cli("show", "2", "--file", "prompts/messages.yaml", *redis_args)
        assert stored.returncode == 0
        assert stored.stdout == tree.path("prompts/messages.yaml").read_text(encoding="utf-8")

        missing = run_cli("rollback", "7", *redis_args, *dir_args)
        assert missing.returncode == 1
        assert "prompt version 7 not found" in missing.stderr
    finally:
        await service.close()


def test_check_reports_broken_place_names(tree):
    """A broken dialogs/places.yaml fails the check with the file and the key to fix."""
    (tree.dialogs / "places.yaml").write_text("towns: [广州市]\n", encoding="utf-8")
    result = run_cli("check", "--prompts", str(tree.prompts), "--dialogs", str(tree.dialogs))
    assert result.returncode == 1
    assert "places.yaml" in result.stdout
    assert "towns" in result.stdout
