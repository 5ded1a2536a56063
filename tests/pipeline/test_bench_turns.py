"""The turn-end benchmark replays clips through the real turn detector in audio time."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from bench.asr import read_wav
from bench.turns import _schedule, format_results, padded, replay
from voicebot.pipeline.turns import TURN_CHECKS_S
from voicebot.services import SmartTurnModel, load_smart_turn_session


async def test_replay_ends_each_clip_once(speech_dir: Path) -> None:
    clips = {
        name: padded(read_wav(speech_dir / "callers" / f"{name}.wav", telephone=True))
        for name in ("faq_bill_inquiry", "confirm_yes")
    }
    model = SmartTurnModel(session=load_smart_turn_session())

    results = await replay(clips, model, TURN_CHECKS_S, 0.8)

    for result in results:
        assert len(result.ends) == 1, result
        assert result.mid_utterance_ends == 0
        assert result.final_delay_s is not None and 0 <= result.final_delay_s <= 0.8
        assert result.model_checks >= 1
    page = format_results([("0, 0.1, 0.3", results), ("0, 0.1, 0.2, 0.3, 0.4, 0.5", results)], timeout_s=0.8, clip_count=2)
    assert "| 0, 0.1, 0.3 |" in page


async def test_replay_question_ends_early(speech_dir: Path) -> None:
    """A tentative turn read as a question ends at the question timeout; the same clip without it waits it out."""
    clips = {"faq_annual_fee": padded(read_wav(speech_dir / "callers" / "faq_annual_fee.wav", telephone=True))}
    model = SmartTurnModel(session=load_smart_turn_session())

    plain = await replay(clips, model, TURN_CHECKS_S, 0.8)
    question = await replay(clips, model, TURN_CHECKS_S, 0.8, transcribe=lambda pcm: "信用卡年费是多少？",
                            question_timeout_s=0.4)
    fragment = await replay(clips, model, TURN_CHECKS_S, 0.8, transcribe=lambda pcm: "我想问",
                            question_timeout_s=0.4)

    assert plain[0].ends[-1][1] == "silence"
    assert fragment[0].ends == plain[0].ends
    assert question[0].ends[-1][1] == "text"
    assert question[0].final_delay_s is not None
    assert question[0].final_delay_s <= 0.42


def test_check_schedule_must_ascend_from_zero() -> None:
    assert _schedule("0,0.1,0.3") == (0.0, 0.1, 0.3)
    with pytest.raises(argparse.ArgumentTypeError, match="0.3,0.1"):
        _schedule("0.3,0.1")
    with pytest.raises(argparse.ArgumentTypeError, match="abc"):
        _schedule("abc")
