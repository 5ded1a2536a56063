"""Speculative recognition: a turn Smart Turn judged unfinished is transcribed during the wait.

Real webrtcvad and real Whisper on the 8 kHz caller clips. The end-of-turn model is a fixed
verdict, because the point is what happens after each verdict.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pipecat.frames.frames import InputAudioRawFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.tests.utils import SleepFrame, run_test

from tests.asr.speech import read_wav_telephone
from voicebot.asr.hints import ExpectedInput
from voicebot.asr.whisper import Transcript, WhisperTranscriber
from voicebot.audio.webrtc_vad import WebRTCVADAnalyzer
from voicebot.dialog.engine import _accepts
from voicebot.dialog.flows import SlotSpec
from voicebot.config import Settings
from voicebot.errors import ConfigError
from voicebot.pipeline.frames import (
    CallerTranscriptFrame,
    CallerTurnAudioFrame,
    TentativeTurnAudioFrame,
    TentativeTurnLikelyOverFrame,
    TurnCompleteByTextFrame,
)
from voicebot.pipeline.recognition import TranscriptionProcessor, _answers, reads_as_question
from voicebot.pipeline.turns import TurnDetector
from voicebot.priority import Urgency
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


class RecordingDetector(TurnDetector):
    """The turn detector, keeping the text verdicts recognition sends it."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.text_verdicts: list[TurnCompleteByTextFrame] = []

    async def _on_complete_by_text(self, frame: TurnCompleteByTextFrame) -> None:
        self.text_verdicts.append(frame)
        await super()._on_complete_by_text(frame)


async def _run(transcriber: WhisperTranscriber, context: DialogContext, frames: list) -> tuple[RecordingDetector, TranscriptionProcessor, list[CallerTranscriptFrame]]:
    detector = RecordingDetector(vad=WebRTCVADAnalyzer(), turn_model=Unfinished(), incomplete_timeout_s=0.8,
                                 question_timeout_s=0.4)
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
    """A statement with nothing expected: the turn ends after the whole wait, with the transcript made during it."""
    context = DialogContext(call_id="speculative-statement", language="zh")
    pcm = read_wav_telephone(callers / "flow_lost_card.wav")

    detector, recognition, transcripts = await _run(transcriber, context, _frames(pcm, pause_s=1.5))

    assert len(transcripts) == 1
    assert "挂" in transcripts[0].text, transcripts[0].text
    assert recognition.speculative_hits == 1
    assert detector.last_end_reason == "silence"


async def test_question_ends_turn_early(transcriber: WhisperTranscriber, callers: Path) -> None:
    """A tentative transcript that reads as a question ends the turn before the incomplete-turn timeout."""
    context = DialogContext(call_id="speculative-question", language="zh")
    pcm = read_wav_telephone(callers / "faq_annual_fee.wav")

    detector, recognition, transcripts = await _run(transcriber, context, _frames(pcm, pause_s=1.5))

    assert len(transcripts) == 1
    assert reads_as_question(transcripts[0].text), transcripts[0].text
    assert recognition.speculative_hits == 1
    # "text" is possible only between the question timeout (0.4 s) and the incomplete-turn timeout (0.8 s).
    assert detector.last_end_reason == "text"
    assert [frame.question for frame in detector.text_verdicts] == [True]


async def test_short_pause_keeps_two_questions(transcriber: WhisperTranscriber, callers: Path) -> None:
    """A caller who asks a second question within the question timeout gets one turn with both questions."""
    context = DialogContext(call_id="speculative-two-questions", language="zh")
    first = read_wav_telephone(callers / "faq_card_activation.wav")
    second = read_wav_telephone(callers / "faq_late_payment.wav")
    # The clip ends in about 0.5 s of silence; 0.2 s more keeps the pause under the question
    # timeout. The sleep gives the first question's decode time to finish inside the pause.
    frames = _frames(first, pause_s=0.2) + [SleepFrame(sleep=2.0)] + _frames(second, pause_s=1.5)

    detector, recognition, transcripts = await _run(transcriber, context, frames)

    verdicts = [(frame.audio_length, frame.question) for frame in detector.text_verdicts]
    assert len(verdicts) == 2, f"the first question was not decoded in the pause: {verdicts}"
    assert verdicts[0][0] < verdicts[1][0], verdicts
    assert verdicts[0][1], "the first question did not read as a question"
    assert detector.turn_count == 1
    assert len(transcripts) == 1
    assert "激活" in transcripts[0].text, transcripts[0].text
    assert "影响" in transcripts[0].text, transcripts[0].text


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
    """Callers ask two questions in one turn, so only an answer the dialog expects ends a turn at once."""
    assert not _answers("信用卡年费是多少？", None)


@pytest.mark.parametrize(
    ("text", "question"),
    [
        ("信用卡年费是多少？", True),
        ("遗期还款会有什么影响?", True),
        ("分期付款的手续费是多少", True),
        ("这新卡怎么激活", True),
        ("我想问一下怎么激活。", True),
        ("能不能帮我查一下", True),
        ("积分点样换", True),
        ("年费是多少，还有", False),
        ("我想问", False),
        ("我想问一下怎么激活，", False),
        ("我几天前丢了卡的", False),
        ("我的信用卡丢了帮我挂失", False),
        ("", False),
        ("？", True),
    ],
)
def test_reads_as_question(text: str, question: bool) -> None:
    """A question mark or a question word in the last clause counts. A fragment, a trailing comma or 的 does not."""
    assert reads_as_question(text) is question


def test_question_timeout_above_incomplete_refused() -> None:
    """The setting names both values, since a longer question wait would never apply."""
    with pytest.raises(ConfigError, match="question_turn_timeout_s .* incomplete_turn_timeout_s"):
        Settings(question_turn_timeout_s=1.0, incomplete_turn_timeout_s=0.8)


async def test_likely_over_sent_at_question_timeout(callers: Path) -> None:
    """A statement keeps the whole wait, but its tentative decode is marked likely over at 0.4 s of silence."""
    pcm = read_wav_telephone(callers / "flow_lost_card.wav")
    detector = TurnDetector(vad=WebRTCVADAnalyzer(), turn_model=Unfinished(), incomplete_timeout_s=0.8,
                            question_timeout_s=0.4)

    down, _ = await run_test(Pipeline([detector]), frames_to_send=_frames(pcm, pause_s=1.2))

    kinds = [type(frame) for frame in down if isinstance(frame, (TentativeTurnAudioFrame, TentativeTurnLikelyOverFrame, CallerTurnAudioFrame))]
    assert kinds == [TentativeTurnAudioFrame, TentativeTurnLikelyOverFrame, CallerTurnAudioFrame]
    tentative = next(frame for frame in down if isinstance(frame, TentativeTurnAudioFrame))
    likely_over = next(frame for frame in down if isinstance(frame, TentativeTurnLikelyOverFrame))
    assert likely_over.audio_length == len(tentative.audio)
    assert likely_over.turn_index == tentative.turn_index == 1


class HeldTranscriber:
    """Keeps each decode waiting, as a full worker queue would, and keeps the urgency it was given."""

    def __init__(self) -> None:
        self.urgencies: list[Urgency] = []

    async def transcribe(self, pcm16k: bytes, *, language: str | None = None, hint: object = None,
                         urgent: bool | Urgency = True) -> Transcript:
        self.urgencies.append(urgent if isinstance(urgent, Urgency) else Urgency(urgent))
        await asyncio.Event().wait()  # cancelled when the pipeline stops
        raise AssertionError("unreachable")


@pytest.mark.parametrize(("cut_bytes", "urgent"), [(0, True), (640, False)])
async def test_likely_over_makes_decode_urgent(cut_bytes: int, urgent: bool) -> None:
    """Recognition moves the tentative decode ahead, but only for the audio it was started on."""
    transcriber = HeldTranscriber()
    recognition = TranscriptionProcessor(transcriber=transcriber, language="zh")  # type: ignore[arg-type]
    audio = bytes(32000)
    frames = [
        TentativeTurnAudioFrame(audio=audio, turn_index=1),
        SleepFrame(sleep=0.05),
        TentativeTurnLikelyOverFrame(turn_index=1, audio_length=len(audio) - cut_bytes),
        SleepFrame(sleep=0.05),
    ]

    await run_test(Pipeline([recognition]), frames_to_send=frames)

    assert len(transcriber.urgencies) == 1
    assert transcriber.urgencies[0].urgent is urgent
