"""Place names for addresses: sound-alike corrections of what Whisper heard.

Whisper base on the phone line heard 上海市浦东新区世纪大道一百号 as 上还是普通新区市街大到一百号.
Every wrong part sounds like the right name (shang hai shi, pu dong xin qu, shi ji da dao).
So the names of `dialogs/places.yaml` (provinces, cities, districts, main roads) replace
sound-alike spellings in an address, with the matcher the escalation cues use. The first
syllable must match. A name of three syllables may have one syllable that only sounds close,
and a name of four or more may have two. The flow still reads the address back for an explicit
confirmation, so this step only makes the read-back right more often.

A bank replaces the sample file with names from its own address database.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from pathlib import Path

import yaml

from voicebot.errors import KnowledgeBaseError

logger = logging.getLogger(__name__)

PLACES_FILE = "places.yaml"
DEFAULT_PLACES = Path(__file__).resolve().parents[2] / "dialogs" / PLACES_FILE
SECTIONS = ("provinces", "cities", "districts", "roads")
_NAME = re.compile(r"[\u4e00-\u9fff]{2,}")
# 大到 is how Whisper often writes 大道 (road); before a house number it is always the road.
_ROAD_SUFFIX = re.compile(r"大到(?=[0-9零〇一二两三四五六七八九十百千]|号)")


class PlaceNames:
    """Corrects sound-alike spellings of known place names in an address."""

    def __init__(self, names: list[str]) -> None:
        # Imported here: voicebot.escalation imports the dialog package, which imports this module.
        from voicebot.escalation.text import SoundAlikeCorrector

        self.names = tuple(dict.fromkeys(names))
        # A name of four or more syllables may have two near-miss syllables: Whisper heard
        # 浦东新区 as 普通新七 (t for d, qi for qu). The read-back confirmation catches a wrong pick.
        self._corrector = SoundAlikeCorrector(self.names, max_misses_long=2)

    def correct(self, address: str) -> str:
        """Return `address` with sound-alike place names replaced by the known spelling."""
        fixed = _ROAD_SUFFIX.sub("大道", address)
        return self._corrector.correct(fixed).corrected


def load_places(path: Path) -> PlaceNames:
    """Read a place-name file; raises KnowledgeBaseError naming the file, the entry and the fix."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise KnowledgeBaseError(f"{path}: 无法读取地名表（cannot read the place-name file）: {error}") from error
    except yaml.YAMLError as error:
        raise KnowledgeBaseError(
            f"{path}: YAML 格式错误（invalid YAML）: {error}。请检查缩进和冒号（check indentation and colons）"
        ) from error
    if not isinstance(data, dict):
        raise KnowledgeBaseError(
            f"{path}: 地名表应该是键值映射，包含 {', '.join(SECTIONS)}（the file must be a mapping with these keys）"
        )
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise KnowledgeBaseError(
            f"{path}: 未知的键 {', '.join(map(str, unknown))}，可用的键是 {', '.join(SECTIONS)}"
            f"（unknown key; use one of {', '.join(SECTIONS)}）"
        )
    names: list[str] = []
    for section in SECTIONS:
        value = data.get(section) or []
        groups = value.values() if isinstance(value, dict) else [value]
        for group in groups:
            if not isinstance(group, list):
                raise KnowledgeBaseError(
                    f"{path}: “{section}”下应该是名称列表，例如 [徐汇区, 浦东新区]"
                    f"（'{section}' must hold lists of names, for example [徐汇区, 浦东新区]）"
                )
            for name in group:
                if not isinstance(name, str) or not _NAME.fullmatch(name):
                    raise KnowledgeBaseError(
                        f"{path}: “{section}”里的 {name!r} 不是两个字以上的中文名称，请只写汉字，例如 浦东新区"
                        f"（{name!r} in '{section}' must be two or more Chinese characters, for example 浦东新区）"
                    )
                names.append(name)
    return PlaceNames(names)


@lru_cache(maxsize=4)
def _cached(path: str, mtime_ns: int) -> PlaceNames:
    return load_places(Path(path))


_configured: Path = DEFAULT_PLACES


def use_places_file(path: Path) -> None:
    """Read place names from `path` from now on (the service's dialogs folder)."""
    global _configured
    _configured = path


def place_names(path: Path | None = None) -> PlaceNames | None:
    """Return the place names of `path`, re-read when the file changes; None when it is missing or broken.

    A broken file is logged as an error and addresses are then taken as heard; `voicebot
    prompts check` reports it with the fix.
    """
    path = path if path is not None else _configured
    try:
        mtime_ns = path.stat().st_mtime_ns
    except OSError:
        return None
    try:
        return _cached(str(path), mtime_ns)
    except KnowledgeBaseError as error:
        logger.error("place-name file ignored until it is fixed: %s", error)
        return None
