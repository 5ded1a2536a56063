"""Place names correct sound-alike spellings in addresses; a broken place-name file gets a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from voicebot.dialog import nlu
from voicebot.dialog.places import DEFAULT_PLACES, load_places, place_names
from voicebot.errors import KnowledgeBaseError


@pytest.mark.parametrize(
    ("heard", "expected"),
    [
        # Real Whisper base transcripts of slot_new_address.wav on the 8 kHz path.
        ("上还是普通新区市街大道一百号", "上海市浦东新区世纪大道一百号"),
        ("上还是普通新区市街大到100号", "上海市浦东新区世纪大道100号"),
        ("只剩海市普东新区市迹大道100号", "只剩海市浦东新区世纪大道100号"),
        ("上还是普通新七世纪大到一百号", "上海市浦东新区世纪大道一百号"),
        # Right names stay as they are, including a district that sounds like another.
        ("上海市普陀区长寿路五号", "上海市普陀区长寿路五号"),
        ("北京市朝阳区建国路八十八号", "北京市朝阳区建国路八十八号"),
    ],
)
def test_sound_alike_place_names_are_corrected(heard: str, expected: str) -> None:
    names = load_places(DEFAULT_PLACES)
    assert names.correct(heard) == expected


def test_unknown_road_gets_only_the_road_word() -> None:
    names = load_places(DEFAULT_PLACES)
    assert names.correct("上海市徐汇区宜山大到十号") == "上海市徐汇区宜山大道十号"


def test_extract_address_uses_the_place_names() -> None:
    found = nlu.extract_address("我的新地址市上还是普通新区市街大道一百号。", whole_turn=True)
    assert found is not None
    assert found.value == "上海市浦东新区世纪大道一百号"
    assert found.confidence == 0.9


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("cities: [广州市\n", "YAML"),
        ("- 广州市\n", "键值映射"),
        ("towns: [广州市]\n", "towns"),
        ("cities: 广州市\n", "cities"),
        ("cities: [广州市, Guangzhou]\n", "Guangzhou"),
        ("districts:\n  广州市: [天河区, 区]\n", "'区'"),
    ],
)
def test_broken_file_names_the_problem(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "places.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(KnowledgeBaseError) as raised:
        load_places(path)
    assert str(path) in str(raised.value)
    assert named in str(raised.value)


def test_missing_or_broken_file_leaves_addresses_as_heard(tmp_path: Path) -> None:
    assert place_names(tmp_path / "absent.yaml") is None
    broken = tmp_path / "places.yaml"
    broken.write_text("towns: [广州市]\n", encoding="utf-8")
    assert place_names(broken) is None
