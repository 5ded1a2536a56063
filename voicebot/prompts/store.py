"""Every version of the prompt and dialog set, kept in Redis, with hot reload and rollback.

One version covers prompts/ and the dialogs folder's flows/, faq.yaml and escalation.yaml
(see voicebot.prompts.bundle), so an edit to any of them makes a new version, and a
rollback returns to all of them as they were.

Redis layout, under `key_prefix` (default ``voicebot:prompts``):

- ``{prefix}:versions``: hash, field = sequence number, value = JSON
  ``{"digest", "created_at", "created_by", "source", "files": {logical name: text}}``.
  Versions are never deleted or expired, so any of them can be activated again.
- ``{prefix}:digests``: hash, content digest to sequence number. The same files always
  get the same number, so reloading unchanged files adds no version.
- ``{prefix}:sequence``: counter of the last sequence number handed out.
- ``{prefix}:active``: JSON ``{"sequence", "digest", "reason", "activated_at",
  "activated_by", "disk_digest"}``: the version the service runs. `reason` is "start",
  "reload" or "rollback"; `disk_digest` is the digest of the files on disk at that
  moment.
- ``{prefix}:rejected``: JSON of the last reload that validation rejected, with its
  problems in Simplified Chinese.

Rollback does not write files to disk, because the files are the dialog designers'
working copy and the rejected or unwanted edit is what they need to fix. A rolled-back
version stays active, across restarts too, until the files on disk change. To put a
stored file back on disk, print it with `voicebot prompts show VERSION --file NAME`.
"""

from __future__ import annotations

import asyncio
import datetime
import getpass
import json
import logging
import re
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as redis_asyncio
from redis.exceptions import RedisError

from voicebot.errors import ConfigError, KnowledgeBaseError, UpstreamError
from voicebot.prompts.bundle import PromptBundle, build_bundle, content_digest, read_sources, source_paths
from voicebot.responder.messages import DialogFileError

logger = logging.getLogger(__name__)

# Builds what a version needs before it becomes current (the FAQ index, responders), so
# a new call never waits for it. Raises DialogFileError when the version cannot serve calls.
PrepareHook = Callable[[PromptBundle], Awaitable[None]]

DEFAULT_KEY_PREFIX = "voicebot:prompts"

# Returns {sequence, created}: the sequence of the digest, stored under a new number if new.
_SAVE_VERSION = """
local existing = redis.call('HGET', KEYS[2], ARGV[1])
if existing then return {tonumber(existing), 0} end
local sequence = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[1], tostring(sequence), ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], tostring(sequence))
return {sequence, 1}
"""

_VERSION_LABEL = re.compile(r"^v?(\d+)(?:-([0-9a-f]+))?$")
_DIGEST_PREFIX = re.compile(r"^[0-9a-f]{6,64}$")


class PromptVersionError(KnowledgeBaseError):
    """A prompt version that does not exist or cannot be activated."""


@dataclass(frozen=True)
class VersionRecord:
    """One stored version of the prompt set."""

    sequence: int
    digest: str
    created_at: str  # ISO 8601, UTC
    created_by: str  # user@host of the process that stored it
    source: str  # "start" or "reload"
    files: dict[str, str]  # logical name to file text

    @property
    def label(self) -> str:
        """Version label as PromptBundle.version writes it."""
        return f"v{self.sequence}-{self.digest[:12]}"


@dataclass(frozen=True)
class ActiveRecord:
    """The version the service runs and the reason it was activated."""

    sequence: int
    digest: str
    reason: str  # "start", "reload" or "rollback"
    activated_at: str
    activated_by: str
    disk_digest: str  # digest of the files on disk when it was activated


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def default_actor() -> str:
    """Return user@host of this process, recorded with each version it stores or activates."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _fingerprint(paths: list[Path]) -> tuple[tuple[str, int, int], ...]:
    """Return (path, mtime in ns, size in bytes) of each file, to notice edits without reading them."""
    stats = []
    for path in paths:
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue  # deleted between the listing and the stat, so the next poll lists the new set
        stats.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(stats)


class PromptStore:
    """Keeps every version of the prompt set in Redis and the active one in memory.

    `current()` is what a new call takes; the call keeps that bundle until it ends.
    """

    def __init__(
        self,
        *,
        prompts_dir: str | Path,
        dialogs_dir: str | Path,
        redis_url: str = "redis://127.0.0.1:6379/0",
        key_prefix: str = DEFAULT_KEY_PREFIX,
        poll_interval_s: float = 2.0,
        socket_timeout_s: float = 2.0,
        actor: str | None = None,
        faq_path: str | Path | None = None,
        escalation_path: str | Path | None = None,
        prepare: PrepareHook | None = None,
    ) -> None:
        """Create the store. Nothing is read or connected until `start()` or `connect()`.

        Args:
            prompts_dir: Folder with messages.yaml, system.yaml and centres/.
            dialogs_dir: Folder with flows/, and by default faq.yaml and escalation.yaml.
            redis_url: Redis that keeps the versions.
            key_prefix: Prefix of every Redis key; see the module docstring.
            poll_interval_s: Seconds between two checks of the files' modification times
                and of the active version in Redis, by the watcher.
            socket_timeout_s: Timeout of each Redis connect and command in seconds.
            actor: Who stores and activates versions, default user@host.
            faq_path: The FAQ file, default dialogs_dir/faq.yaml.
            escalation_path: The escalation policy file, default dialogs_dir/escalation.yaml.
            prepare: Awaited with each version before it becomes current in this process;
                a DialogFileError from it rejects the version like a validation problem.

        Raises:
            ConfigError: If poll_interval_s is not positive.
        """
        if poll_interval_s <= 0:
            raise ConfigError(f"Invalid prompt poll_interval_s {poll_interval_s}: use a positive number of seconds.")
        self.prompts_dir = Path(prompts_dir)
        self.dialogs_dir = Path(dialogs_dir)
        self.faq_path = Path(faq_path) if faq_path is not None else None
        self.escalation_path = Path(escalation_path) if escalation_path is not None else None
        self.prepare = prepare
        self._url = redis_url
        self._prefix = key_prefix
        self._poll_interval_s = poll_interval_s
        self._socket_timeout_s = socket_timeout_s
        self._actor = actor or default_actor()
        self._client: redis_asyncio.Redis | None = None
        self._current: PromptBundle | None = None
        self._fingerprint: tuple[tuple[str, int, int], ...] = ()
        self._disk_digest = ""
        self._last_problems: tuple[str, ...] = ()
        self._watcher: asyncio.Task[None] | None = None
        self._unusable_sequence: int | None = None  # active version in Redis that failed to activate
        self._reload_lock = asyncio.Lock()

    # Redis keys, see the module docstring.
    @property
    def versions_key(self) -> str:
        return f"{self._prefix}:versions"

    @property
    def digests_key(self) -> str:
        return f"{self._prefix}:digests"

    @property
    def sequence_key(self) -> str:
        return f"{self._prefix}:sequence"

    @property
    def active_key(self) -> str:
        return f"{self._prefix}:active"

    @property
    def rejected_key(self) -> str:
        return f"{self._prefix}:rejected"

    @property
    def last_problems(self) -> tuple[str, ...]:
        """Problems of the last rejected reload, one line each, empty after a good one."""
        return self._last_problems

    async def connect(self) -> None:
        """Open the Redis client and check that Redis replies to PING.

        Raises:
            UpstreamError: If Redis cannot be reached at the URL.
        """
        self._client = redis_asyncio.from_url(
            self._url,
            decode_responses=True,
            socket_connect_timeout=self._socket_timeout_s,
            socket_timeout=self._socket_timeout_s,
        )
        try:
            await self._client.ping()
        except RedisError as error:
            await self._client.aclose()
            self._client = None
            raise UpstreamError(
                f"Redis is unreachable at {self._url}: start redis-server there or pass the URL of a running Redis."
            ) from error

    def _redis(self) -> redis_asyncio.Redis:
        if self._client is None:
            raise RuntimeError("PromptStore is not connected; call start() or connect() first")
        return self._client

    def _read_sources(self) -> tuple[dict[str, str], dict[str, str]]:
        return read_sources(
            self.prompts_dir, self.dialogs_dir, faq_path=self.faq_path, escalation_path=self.escalation_path
        )

    def _source_fingerprint(self) -> tuple[tuple[str, int, int], ...]:
        return _fingerprint(
            source_paths(self.prompts_dir, self.dialogs_dir, faq_path=self.faq_path, escalation_path=self.escalation_path)
        )

    async def _prepare(self, bundle: PromptBundle) -> None:
        if self.prepare is not None:
            await self.prepare(bundle)

    def current(self) -> PromptBundle:
        """Return the active bundle. A call takes it once at its start and keeps it."""
        if self._current is None:
            raise RuntimeError("PromptStore has no active version; call start() first")
        return self._current

    async def start(self, *, watch: bool = True) -> PromptBundle:
        """Connect, activate a version and, with `watch`, start the watcher task.

        The files on disk become the active version when they are valid, unless a
        rollback is in force and the files have not changed since it. Invalid files
        leave the last active version in Redis running. Raises DialogFileError when
        the files are invalid and Redis has no active version, and UpstreamError when
        Redis is unreachable.
        """
        await self.connect()
        active = await self.active_record()
        self._fingerprint = self._source_fingerprint()
        try:
            files, display_paths = self._read_sources()
            self._disk_digest = content_digest(files)
            if active is not None and active.reason == "rollback" and active.disk_digest == self._disk_digest:
                logger.info(
                    "Keeping rolled-back prompt version v%d: the files on disk have not changed since",
                    active.sequence,
                )
                await self._activate_stored(active.sequence)
            else:
                bundle = build_bundle(files, display_paths=display_paths)
                await self._store_and_activate(bundle, source="start", reason="start")
        except DialogFileError as error:
            await self._record_rejected(error)
            if active is None:
                raise
            logger.error(
                "Prompt files in %s are invalid (%d problem(s)); running the last good version v%d instead\n%s",
                self.prompts_dir, len(error.problems), active.sequence, "\n".join(self._last_problems),
            )
            await self._activate_stored(active.sequence)
        if watch:
            self.start_watcher()
        return self.current()

    def start_watcher(self) -> None:
        """Start the task that runs `watch()`, for a store started with `watch=False`; it stops at `close()`."""
        if self._watcher is None:
            self._watcher = asyncio.create_task(self.watch(), name="prompt-watcher")

    async def close(self) -> None:
        """Stop the watcher and close the Redis client."""
        if self._watcher is not None:
            self._watcher.cancel()
            try:
                await asyncio.wait_for(self._watcher, timeout=5.0)
            except asyncio.CancelledError:
                pass
            self._watcher = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def reload(self) -> PromptBundle:
        """Validate the files on disk and activate them as a version.

        Raises DialogFileError with every problem when they are invalid; the active
        version stays as it was.
        """
        async with self._reload_lock:
            self._fingerprint = self._source_fingerprint()
            try:
                files, display_paths = await asyncio.to_thread(self._read_sources)
                self._disk_digest = content_digest(files)
                bundle = await asyncio.to_thread(build_bundle, files, display_paths=display_paths)
                return await self._store_and_activate(bundle, source="reload", reason="reload")
            except DialogFileError as error:
                await self._record_rejected(error)
                logger.error(
                    "Prompt reload rejected, keeping %s: %d problem(s)\n%s",
                    self._current.version if self._current else "no version",
                    len(error.problems), "\n".join(self._last_problems),
                )
                raise

    async def rollback(self, version: str | int) -> PromptBundle:
        """Activate a stored version again, whatever the files on disk contain.

        The version is rebuilt from its stored files, without reading the disk, and
        stays active until the files on disk change. Raises PromptVersionError if there
        is no such version.
        """
        record = await self.get_version(version)
        async with self._reload_lock:
            try:
                files, _ = self._read_sources()
                disk_digest = content_digest(files)
            except DialogFileError:
                disk_digest = ""
            bundle = self._rebuild(record)
            await self._prepare_stored(bundle)
            await self._write_active(bundle, reason="rollback", disk_digest=disk_digest)
            self._disk_digest = disk_digest
            self._fingerprint = self._source_fingerprint()
            self._set_current(bundle, reason="rollback")
        return bundle

    async def watch(self) -> None:
        """Poll the files and the active version in Redis every poll_interval_s, until cancelled.

        A changed file triggers reload(); an active version changed by another process
        (a `voicebot prompts rollback`, or another worker's reload) is activated here too.
        """
        logger.info(
            "Watching prompt and dialog files in %s and %s every %.1f s",
            self.prompts_dir, self.dialogs_dir, self._poll_interval_s,
        )
        while True:
            await asyncio.sleep(self._poll_interval_s)
            try:
                await self.poll_once()
            except DialogFileError:
                pass  # reload() logged the problems, and the active version is unchanged
            except PromptVersionError:
                pass  # _follow_active() logged it once for that version
            except (RedisError, UpstreamError, OSError) as error:
                logger.warning("Prompt watcher check failed, retrying in %.1f s: %s", self._poll_interval_s, error)

    async def poll_once(self) -> None:
        """Run one watcher check: follow the active version in Redis, then reload changed files."""
        await self._follow_active()
        fingerprint = self._source_fingerprint()
        if fingerprint == self._fingerprint:
            return
        self._fingerprint = fingerprint
        try:
            files, _ = await asyncio.to_thread(self._read_sources)
        except DialogFileError:
            files = None  # reload() reads the files again and reports the problem
        if files is not None and content_digest(files) == self._disk_digest:
            return  # touched or rewritten with the same content
        logger.info("Prompt files changed in %s; reloading", self.prompts_dir)
        await self.reload()

    async def _follow_active(self) -> None:
        active = await self.active_record()
        if active is None or self._current is None or active.sequence == self._current.sequence:
            return
        if active.sequence == self._unusable_sequence:
            return  # logged when first seen; retried only after the active version changes again
        logger.info("Active prompt version changed to v%d by %s (%s)", active.sequence, active.activated_by, active.reason)
        if active.reason == "rollback":
            self._disk_digest = active.disk_digest
        try:
            await self._activate_stored(active.sequence)
        except PromptVersionError as error:
            self._unusable_sequence = active.sequence
            logger.error("Prompt version v%d from Redis not activated, keeping %s: %s",
                         active.sequence, self.current().version, error)
            raise

    async def versions(self) -> list[VersionRecord]:
        """Return every stored version, oldest first."""
        raw = await self._redis().hgetall(self.versions_key)
        return sorted((self._parse_version(int(field), value) for field, value in raw.items()), key=lambda r: r.sequence)

    async def get_version(self, version: str | int) -> VersionRecord:
        """Return a stored version by sequence number (3, "v3", "v3-1a2b…") or digest prefix.

        Raises PromptVersionError if none or several match.
        """
        sequence = await self._resolve(version)
        raw = await self._redis().hget(self.versions_key, str(sequence))
        if raw is None:
            raise PromptVersionError(
                f"prompt version {version} not found; list the stored versions with: voicebot prompts versions"
            )
        return self._parse_version(sequence, raw)

    async def active_record(self) -> ActiveRecord | None:
        """Return which version is active according to Redis, or None before the first start."""
        raw = await self._redis().get(self.active_key)
        if raw is None:
            return None
        data = json.loads(raw)
        return ActiveRecord(**{name: data[name] for name in ActiveRecord.__dataclass_fields__})

    async def rejected_record(self) -> dict[str, Any] | None:
        """Return the last rejected reload: when, by whom and its problems, or None."""
        raw = await self._redis().get(self.rejected_key)
        return None if raw is None else json.loads(raw)

    async def _resolve(self, version: str | int) -> int:
        text = str(version).strip().lower()
        match = _VERSION_LABEL.match(text)
        if match:
            sequence = int(match.group(1))
            digest_prefix = match.group(2)
            if digest_prefix:
                stored = await self._redis().hget(self.versions_key, str(sequence))
                if stored is not None and not json.loads(stored)["digest"].startswith(digest_prefix):
                    raise PromptVersionError(
                        f"prompt version {version}: v{sequence} has another digest; "
                        "copy the label from: voicebot prompts versions"
                    )
            return sequence
        if _DIGEST_PREFIX.match(text):
            digests = await self._redis().hgetall(self.digests_key)
            found = [int(sequence) for digest, sequence in digests.items() if digest.startswith(text)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise PromptVersionError(f"digest prefix {text} matches {len(found)} versions; give more characters")
        raise PromptVersionError(
            f"prompt version {version!r} not found; give a number such as 3, a label such as v3-1a2b3c4d5e6f "
            "or a digest prefix, as listed by: voicebot prompts versions"
        )

    @staticmethod
    def _parse_version(sequence: int, raw: str) -> VersionRecord:
        data = json.loads(raw)
        return VersionRecord(
            sequence=sequence,
            digest=data["digest"],
            created_at=data["created_at"],
            created_by=data["created_by"],
            source=data["source"],
            files=data["files"],
        )

    @staticmethod
    def _rebuild(record: VersionRecord) -> PromptBundle:
        try:
            bundle = build_bundle(record.files)
        except DialogFileError as error:
            # A stored version was valid when stored; this happens only when the
            # validation rules became stricter since.
            raise PromptVersionError(
                f"stored prompt version {record.label} is invalid under the current rules:\n{error}"
            ) from error
        return bundle.with_sequence(record.sequence)

    async def _activate_stored(self, sequence: int) -> None:
        bundle = self._rebuild(await self.get_version(sequence))
        await self._prepare_stored(bundle)
        self._set_current(bundle, reason="stored")

    async def _prepare_stored(self, bundle: PromptBundle) -> None:
        try:
            await self._prepare(bundle)
        except DialogFileError as error:
            raise PromptVersionError(f"stored prompt version {bundle.version} cannot serve calls:\n{error}") from error

    async def _store_and_activate(self, bundle: PromptBundle, *, source: str, reason: str) -> PromptBundle:
        record = json.dumps(
            {
                "digest": bundle.digest,
                "created_at": _now(),
                "created_by": self._actor,
                "source": source,
                "files": dict(bundle.files),
            },
            ensure_ascii=False,
        )
        sequence, created = await self._redis().eval(
            _SAVE_VERSION, 3, self.versions_key, self.digests_key, self.sequence_key, bundle.digest, record
        )
        bundle = bundle.with_sequence(int(sequence))
        if created:
            logger.info("Stored prompt version %s", bundle.version)
        # Prepared once numbered, so what a call records names the stored version. A version
        # whose preparation fails stays stored but is not activated.
        await self._prepare(bundle)
        await self._write_active(bundle, reason=reason, disk_digest=self._disk_digest)
        self._last_problems = ()
        self._set_current(bundle, reason=reason)
        return bundle

    async def _write_active(self, bundle: PromptBundle, *, reason: str, disk_digest: str) -> None:
        active = {
            "sequence": bundle.sequence,
            "digest": bundle.digest,
            "reason": reason,
            "activated_at": _now(),
            "activated_by": self._actor,
            "disk_digest": disk_digest,
        }
        await self._redis().set(self.active_key, json.dumps(active))

    async def _record_rejected(self, error: DialogFileError) -> None:
        self._last_problems = tuple(problem.describe("zh") for problem in error.problems)
        rejected = {"at": _now(), "by": self._actor, "problems": list(self._last_problems)}
        try:
            await self._redis().set(self.rejected_key, json.dumps(rejected, ensure_ascii=False))
        except RedisError as redis_error:
            logger.warning("Failed to record the rejected prompt reload in Redis: %s", redis_error)

    def _set_current(self, bundle: PromptBundle, *, reason: str) -> None:
        previous = self._current.version if self._current else "none"
        self._current = bundle
        if previous != bundle.version:
            logger.info("Prompt version %s active (was %s, %s)", bundle.version, previous, reason)
