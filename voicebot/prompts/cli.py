"""`voicebot prompts check|versions|rollback|show`: the prompt and dialog files from the command line.

The set covers prompts/ and the dialogs folder's flows/, faq.yaml and escalation.yaml,
under one version number.

Output is in Simplified Chinese by default and in English with `--lang en`. `check`
reads only the disk. The other commands read the versions a running service stored in
Redis, and `rollback` changes the version that every running service activates.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from voicebot.config import REPO_ROOT, Settings
from voicebot.dialog.places import PLACES_FILE, load_places
from voicebot.errors import KnowledgeBaseError
from voicebot.prompts.bundle import load_bundle
from voicebot.prompts.store import DEFAULT_KEY_PREFIX, PromptStore, VersionRecord
from voicebot.responder.messages import DialogFileError

DEFAULT_PROMPTS_DIR = REPO_ROOT / "prompts"
DEFAULT_DIALOGS_DIR = REPO_ROOT / "dialogs"

# Output lines: (Simplified Chinese, English).
_TEXT: dict[str, tuple[str, str]] = {
    "check_ok": (
        "OK：提示语和对话文件检查通过（{messages} 条消息，{centres} 个中心，{flows} 个流程，{references} 处流程引用，"
        "{topics} 个常见问题主题，升级策略 {policy}），内容摘要 {digest}",
        "OK: prompt and dialog files are valid ({messages} messages, {centres} centres, {flows} flows, "
        "{references} flow references, {topics} FAQ topics, escalation policy {policy}), digest {digest}",
    ),
    "check_failed": ("共发现 {count} 个问题，请按上面的提示修改后再运行 voicebot prompts check", "{count} problem(s) found; fix them and run voicebot prompts check again"),
    "no_versions": (
        "Redis 里还没有保存的版本；服务启动或重新加载提示语文件时会保存版本",
        "no versions stored in Redis yet; the service stores one when it starts or reloads the prompt files",
    ),
    "header": ("  版本              创建时间                   创建者  来源", "  version           created                    by  source"),
    "active": ("当前版本：{label}（{reason}，{at}，{by}）", "active version: {label} ({reason}, {at}, {by})"),
    "rejected": (
        "最近一次被拒绝的重新加载：{at}，{count} 个问题，第一个：{first}",
        "last rejected reload: {at}, {count} problem(s), the first: {first}",
    ),
    "rolled_back": (
        "已回滚到版本 {label}。运行中的服务会在下一次检查时切换到这个版本；磁盘上的文件没有改动，"
        "文件再次修改并通过检查后，服务会启用新版本",
        "rolled back to {label}. Running services switch to it at their next check; the files on disk are "
        "unchanged, and the next valid edit of them becomes the active version",
    ),
    "no_active": ("还没有启用的版本，请指定版本号", "no version is active yet; give a version"),
    "file_not_found": (
        "版本 {label} 里没有文件 {name}，可用的文件是：{names}",
        "version {label} has no file {name}; its files are: {names}",
    ),
    "show": (
        "版本 {label}\n创建时间：{at}\n创建者：{by}\n来源：{source}\n完整摘要：{digest}\n文件：",
        "version {label}\ncreated: {at}\nby: {by}\nsource: {source}\ndigest: {digest}\nfiles:",
    ),
    "file_line": ("  {name}（{chars} 个字符）", "  {name} ({chars} characters)"),
}


def _say(key: str, lang: str, **values: object) -> str:
    zh, en = _TEXT[key]
    return (en if lang == "en" else zh).format(**values)


def _add_lang(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lang", choices=("zh", "en"), default="zh", help="language of the output (default zh)")


def _add_dirs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prompts", type=Path, default=DEFAULT_PROMPTS_DIR, help="prompts folder (default prompts/)")
    parser.add_argument(
        "--dialogs", type=Path, default=DEFAULT_DIALOGS_DIR, help="dialogs folder with flows/, faq.yaml and escalation.yaml (default dialogs/)"
    )


def _add_redis(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("VOICEBOT_REDIS_URL", Settings.redis_url),
        help="Redis that keeps the versions (default $VOICEBOT_REDIS_URL or redis://127.0.0.1:6379/0)",
    )
    parser.add_argument("--key-prefix", default=DEFAULT_KEY_PREFIX, help=f"Redis key prefix (default {DEFAULT_KEY_PREFIX})")


def add_prompts_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register `voicebot prompts` and its subcommands on the top-level subparsers."""
    prompts = commands.add_parser("prompts", help="check the prompt and dialog files, list versions, roll back")
    actions = prompts.add_subparsers(dest="prompts_command", required=True)

    check = actions.add_parser(
        "check", help="validate prompts/, the flows, the FAQ and the escalation policy; exit 1 on any problem"
    )
    _add_lang(check)
    _add_dirs(check)

    versions = actions.add_parser("versions", help="list the stored versions, the active one marked with *")
    _add_lang(versions)
    _add_redis(versions)

    rollback = actions.add_parser("rollback", help="make a stored version the active one in every running service")
    rollback.add_argument("version", help="3, v3, v3-1a2b3c4d5e6f or a digest prefix, as listed by versions")
    _add_lang(rollback)
    _add_dirs(rollback)
    _add_redis(rollback)

    show = actions.add_parser("show", help="show a stored version (default: the active one) or one of its files")
    show.add_argument("version", nargs="?", help="version to show (default: the active one)")
    show.add_argument("--file", help="print this file of the version, e.g. prompts/messages.yaml")
    _add_lang(show)
    _add_redis(show)


def run_prompts_command(args: argparse.Namespace) -> int:
    """Run a `voicebot prompts` subcommand and return its exit code."""
    if args.prompts_command == "check":
        return _check(args)
    return asyncio.run(_run_with_store(args))


def _check(args: argparse.Namespace) -> int:
    try:
        bundle = load_bundle(args.prompts, args.dialogs, lang=args.lang)
    except DialogFileError as error:
        for problem in error.problems:
            print(problem.describe(args.lang))
        print(_say("check_failed", args.lang, count=len(error.problems)), file=sys.stderr)
        return 1
    places = args.dialogs / PLACES_FILE
    if places.exists():
        # The place-name list only corrects what was heard, so it is not part of a version.
        try:
            load_places(places)
        except KnowledgeBaseError as error:
            print(error)
            print(_say("check_failed", args.lang, count=1), file=sys.stderr)
            return 1
    print(
        _say(
            "check_ok", args.lang, messages=len(bundle.messages), centres=len(bundle.centres),
            flows=len(bundle.flows.flows), references=len(bundle.flow_references),
            topics=len(bundle.knowledge_base.entries) if bundle.knowledge_base else 0,
            policy=bundle.escalation.policy_version if bundle.escalation else "-",
            digest=bundle.digest[:12],
        )
    )
    return 0


async def _run_with_store(args: argparse.Namespace) -> int:
    store = PromptStore(
        prompts_dir=getattr(args, "prompts", DEFAULT_PROMPTS_DIR),
        dialogs_dir=getattr(args, "dialogs", DEFAULT_DIALOGS_DIR),
        redis_url=args.redis_url,
        key_prefix=args.key_prefix,
    )
    await store.connect()
    try:
        if args.prompts_command == "versions":
            return await _versions(store, args.lang)
        if args.prompts_command == "rollback":
            bundle = await store.rollback(args.version)
            print(_say("rolled_back", args.lang, label=bundle.version))
            return 0
        return await _show(store, args.version, args.file, args.lang)
    finally:
        await store.close()


async def _versions(store: PromptStore, lang: str) -> int:
    records = await store.versions()
    if not records:
        print(_say("no_versions", lang))
        return 0
    active = await store.active_record()
    print(_say("header", lang))
    for record in records:
        mark = "*" if active is not None and active.sequence == record.sequence else " "
        print(f"{mark} {record.label}  {record.created_at}  {record.created_by}  {record.source}")
    if active is not None:
        label = next((r.label for r in records if r.sequence == active.sequence), f"v{active.sequence}")
        print(_say("active", lang, label=label, reason=active.reason, at=active.activated_at, by=active.activated_by))
    rejected = await store.rejected_record()
    if rejected and rejected["problems"]:
        print(_say("rejected", lang, at=rejected["at"], count=len(rejected["problems"]), first=rejected["problems"][0]))
    return 0


async def _show(store: PromptStore, version: str | None, name: str | None, lang: str) -> int:
    if version is None:
        active = await store.active_record()
        if active is None:
            print(_say("no_active", lang), file=sys.stderr)
            return 1
        version = str(active.sequence)
    record: VersionRecord = await store.get_version(version)
    if name is not None:
        if name not in record.files:
            print(_say("file_not_found", lang, label=record.label, name=name, names=", ".join(record.files)), file=sys.stderr)
            return 1
        sys.stdout.write(record.files[name])
        return 0
    print(
        _say(
            "show", lang, label=record.label, at=record.created_at, by=record.created_by,
            source=record.source, digest=record.digest,
        )
    )
    for file_name, text in sorted(record.files.items()):
        print(_say("file_line", lang, name=file_name, chars=len(text)))
    return 0
