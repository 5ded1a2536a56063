"""Speculative recognition: a turn Smart Turn judged unfinished is transcribed during the wait.

Real webrtcvad and real Whisper on the 8 kHz caller clips. The end-of-turn model is a fixed
verdict, because the point is what happens after each verdict.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pipecat.frames.frames import InputAudioRawFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.tests.utils import SleepFrame, run_test

from tests.asr.speech import read_wav_telephone
from voicebot.asr.hints import ExpectedInput
from voicebot.asr.whisper import WhisperTranscriber
from voicebot.audio.webrtc_vad import WebRTCVADAnalyzer
from voicebot.dialog.engine import _accepts
from voicebot.dialog.flows import SlotSpec
from voicebot.pipeline.frames import CallerTranscriptFrame, CallerTurnAudioFrame, TentativeTurnAudioFrame
from voicebot.pipeline.recognition import TranscriptionProcessor, _answers
from voicebot.pipeline.turns import TurnDetector
from voicebot.responder.base import DialogContext

pytestmark = pytest.mark.slow

FRAME_BYTES = 640  # 20 ms at 16 kHz
CARD_LAST4 = SlotSpec("card_last4", "digits", length=4, dtmf=True, min_confidence=0.6)


class Unfinished:
    """An end-of-turn model that always hears an unfinished turn."""

    def probability_complete(self, pcm16k: bytes) -> float:
        return 0.1


@pytest.fixture
def transcriber(whisper_base: WhisperTranscriber) -> WhisperTranscriber:
    return whisper_base


@pytest.fixture
def callers(speech_dir: Path) -> Path:
    return speech_dir / "callers"


def _frames(pcm: bytes, *, pause_s: float = 0.0) -> list:
    frames: list = [
        InputAudioRawFrame(audio=pcm[i : i + FRAME_BYTES], sample_rate=16000, num_channels=1)
        for i in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES)
    ]
    silence = InputAudioRawFrame(audio=bytes(FRAME_BYTES), sample_rate=16000, num_channels=1)
    # Silence goes out slowly, so a decode started in the pause has time to finish before the
    # incomplete-turn timeout passes in audio time.
    for _ in range(int(pause_s / 0.02)):
        frames += [silence, SleepFrame(sleep=0.06)]
    return frames


async def _run(transcriber: WhisperTranscriber, context: DialogContext, frames: list) -> tuple[TurnDetector, TranscriptionProcessor, list[CallerTranscriptFrame]]:
    detector = TurnDetector(vad=WebRTCVADAnalyzer(), turn_model=Unfinished(), incomplete_timeout_s=0.8)
    recognition = TranscriptionProcessor(transcriber=transcriber, language="zh", context=context)
    down, _ = await run_test(Pipeline([detector, recognition]), frames_to_send=frames)
    return detector, recognition, [frame for frame in down if isinstance(frame, CallerTranscriptFrame)]


async def test_expected_answer_ends_the_turn_without_the_wait(transcriber: WhisperTranscriber, callers: Path) -> None:
    """The tentative transcript contains the four digits the flow asked for: the turn ends on the text."""
    context = DialogContext(call_id="speculative-digits", language="zh")
    context.history.append(("bot", "请告诉我丢失的那张卡卡号的后四位。"))
    context.expected = ExpectedInput("digits", lambda text: _accepts(CARD_LAST4, text), length=4)
    pcm = read_wav_telephone(callers / "slot_card_last4.wav")

    detector, recognition, transcripts = await _run(transcriber, context, _frames(pcm, pause_s=1.5))

    assert len(transcripts) == 1
    assert _accepts(CARD_LAST4, transcripts[0].text), transcripts[0].text
    assert recognition.speculative_hits == 1
    assert detector.last_end_reason == "text"


async def test_tentative_transcript_is_reused_after_the_wait(transcriber: WhisperTranscriber, callers: Path) -> None:
    """With nothing expected, the turn ends after the wait, and the transcript made during it is used."""
    context = DialogContext(call_id="speculative-faq", language="zh")
    pcm = read_wav_telephone(callers / "faq_annual_fee.wav")

    detector, recognition, transcripts = await _run(transcriber, context, _frames(pcm, pause_s=1.5))

    assert len(transcripts) == 1
    assert transcripts[0].text
    assert recognition.speculative_hits == 1
    assert detector.last_end_reason == "silence"


async def test_caller_going_on_discards_the_tentative_transcript(transcriber: WhisperTranscriber, callers: Path) -> None:
    """Speech after the pause makes one longer turn; the first tentative decode is thrown away."""
    context = DialogContext(call_id="speculative-more", language="zh")
    first = read_wav_telephone(callers / "flow_lost_card.wav")
    second = read_wav_telephone(callers / "slot_card_last4.wav")
    frames = _frames(first, pause_s=0.4) + _frames(second, pause_s=1.5)

    detector, recognition, transcripts = await _run(transcriber, context, frames)

    assert detector.turn_count == 1
    assert len(transcripts) == 1
    # Both parts are in the one transcript: the lost card and the card number.
    assert "挂" in transcripts[0].text, transcripts[0].text
    assert "卡号" in transcripts[0].text, transcripts[0].text
    assert recognition.speculative_hits == 1  # the second pause's tentative decode, not the first

async def test_tentative_cut_matches_turn_cut(callers: Path) -> None:
    """The tentative audio is cut where the turn is cut, so the transcript cannot depend on the setting."""
    pcm = read_wav_telephone(callers / "faq_annual_fee.wav")
    turn_audio = {}
    for speculative in (False, True):
        detector = TurnDetector(
            vad=WebRTCVADAnalyzer(), turn_model=Unfinished(), incomplete_timeout_s=0.8, speculative=speculative
        )
        down, _ = await run_test(Pipeline([detector]), frames_to_send=_frames(pcm, pause_s=1.2))
        turns = [frame for frame in down if isinstance(frame, CallerTurnAudioFrame)]
        tentative = [frame for frame in down if isinstance(frame, TentativeTurnAudioFrame)]
        assert len(turns) == 1
        if speculative:
            assert [frame.audio for frame in tentative][-1:] == [turns[0].audio]
        turn_audio[speculative] = turns[0].audio
    assert turn_audio[True] == turn_audio[False]


def test_answers_ignores_a_question() -> None:
    """Callers ask two questions in one turn; only an answer the dialog expects ends a turn early."""
    assert not _answers("信用卡年费是多少？", None)
