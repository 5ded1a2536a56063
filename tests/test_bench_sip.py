"""Pure parts of the SIP call benchmark: turn segmentation, reply matching, percentiles, call plans and scenarios."""

from __future__ import annotations

import socket
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from bench import sip


def frames(start_s: float, seconds: float) -> list[float]:
    """Send times of consecutive 20 ms voiced frames."""
    return [start_s + i * sip.FRAME_S for i in range(round(seconds / sip.FRAME_S))]


def test_voiced_segments_split_at_long_silence():
    times = frames(1.0, 2.0) + frames(3.5, 1.0) + frames(10.0, 0.5)

    segments = sip.voiced_segments(times, max_gap_s=1.5)

    assert len(segments) == 2
    assert segments[0][0] == pytest.approx(1.0)
    assert segments[0][1] == pytest.approx(4.5)
    assert segments[1] == pytest.approx((10.0, 10.5))


def test_voiced_segments_sort_and_handle_empty():
    assert sip.voiced_segments([]) == []
    assert sip.voiced_segments([2.0, 1.0]) == [pytest.approx((1.0, 2.02))]


def test_measure_turns_finds_each_reply():
    caller = frames(5.0, 3.0) + frames(30.0, 2.0)
    greeting = frames(0.0, 3.0)
    replies = frames(9.0, 10.0) + frames(33.5, 4.0)

    turns = sip.measure_turns(7, caller, greeting + replies)

    assert [turn.turn for turn in turns] == [0, 1]
    assert all(turn.call == 7 for turn in turns)
    assert turns[0].latency_s == pytest.approx(1.0)
    assert turns[0].reply_s == pytest.approx(10.0)
    assert turns[1].latency_s == pytest.approx(1.5)
    assert turns[1].reply_s == pytest.approx(4.0)


def test_measure_turns_ignores_greeting_before_first_turn():
    turns = sip.measure_turns(0, frames(5.0, 2.0), frames(0.0, 4.0))

    assert len(turns) == 1
    assert turns[0].latency_s is None
    assert turns[0].reply_s is None


def test_measure_turns_reply_window_ends_at_next_turn():
    # The bot stays silent through turn 0, so its audio after turn 1 belongs to turn 1.
    caller = frames(5.0, 2.0) + frames(20.0, 2.0)
    bot = frames(23.0, 3.0)

    turns = sip.measure_turns(0, caller, bot)

    assert turns[0].reply_start_s is None
    assert turns[1].latency_s == pytest.approx(1.0)


def test_measure_turns_needs_min_gap_after_speech():
    # Bot audio overlapping the end of the turn (echo of the greeting tail) does not count as the reply.
    caller = frames(5.0, 2.0)
    bot = [7.0 + sip.MIN_GAP_S / 2, 8.0]

    turns = sip.measure_turns(0, caller, bot)

    assert turns[0].reply_start_s == pytest.approx(8.0)


def test_percentile_interpolates_linearly():
    values = [4.0, 1.0, 3.0, 2.0]

    assert sip.percentile(values, 0.0) == 1.0
    assert sip.percentile(values, 1.0) == 4.0
    assert sip.percentile(values, 0.5) == pytest.approx(2.5)
    assert sip.percentile(values, 0.95) == pytest.approx(3.85)
    assert sip.percentile([7.0], 0.95) == 7.0


def test_percentile_rejects_bad_input():
    with pytest.raises(ValueError):
        sip.percentile([], 0.5)
    with pytest.raises(ValueError):
        sip.percentile([1.0], 1.5)


def test_plan_calls_ramp_and_distinct_clips():
    clips = ("a", "b", "c", "d", "e", "f")

    plans = sip.plan_calls(calls=20, clips=clips, turns=3, interval_s=0.5, think_s=(2.0, 5.0), seed=1)

    assert [plan.start_s for plan in plans] == pytest.approx([i * 0.5 for i in range(20)])
    for plan in plans:
        assert len(plan.clips) == 3
        assert len(set(plan.clips)) == 3
        assert set(plan.clips) <= set(clips)
        assert len(plan.think_s) == 2
        assert all(2.0 <= value <= 5.0 for value in plan.think_s)
    assert len({plan.clips for plan in plans}) > 10
    assert len({plan.think_s for plan in plans}) == 20


def test_plan_calls_same_seed_same_plan():
    first = sip.plan_calls(calls=5, clips=("a", "b", "c"), turns=2, interval_s=1.0, think_s=(2.0, 5.0), seed=3)
    second = sip.plan_calls(calls=5, clips=("a", "b", "c"), turns=2, interval_s=1.0, think_s=(2.0, 5.0), seed=3)

    assert first == second


def test_plan_calls_more_turns_than_clips():
    plans = sip.plan_calls(calls=2, clips=("a", "b"), turns=5, interval_s=0.0, think_s=(0.0, 0.0), seed=1)

    for plan in plans:
        assert len(plan.clips) == 5
        assert sorted(plan.clips[:2]) == ["a", "b"]
        assert plan.think_s == (0.0, 0.0, 0.0, 0.0)


def test_plan_calls_rejects_no_turns():
    with pytest.raises(ValueError):
        sip.plan_calls(calls=1, clips=("a",), turns=0, interval_s=0.5, think_s=(2.0, 5.0), seed=1)


def test_build_scenario_pauses_cover_clip_reply_and_think():
    plan = sip.CallPlan(index=4, start_s=2.0, clips=("a", "b"), think_s=(3.25,))
    pcaps = {"a": Path("/tmp/a.pcap"), "b": Path("/tmp/b.pcap")}

    xml = sip.build_scenario(plan, pcaps=pcaps, clip_s={"a": 2.5, "b": 3.0}, greeting_s=4.0, reply_wait_s=20.0)

    root = ElementTree.fromstring(xml.encode("iso-8859-1"))
    pauses = [int(element.get("milliseconds")) for element in root.iter("pause")]
    plays = [element.get("play_pcap_audio") for element in root.iter("exec")]
    assert root.get("name") == "bench-call-004"
    assert pauses == [4800, 22500, 3250, 23000]
    assert plays == ["/tmp/a.pcap", "/tmp/b.pcap"]
    assert "BYE sip:" in xml


def test_caller_ports_do_not_overlap():
    ports = set()
    for index in range(sip.MAX_CALLS):
        sip_port, media_port = sip.caller_ports(index)
        block = {sip_port, *range(media_port, media_port + sip.CALLER_MEDIA_STEP)}
        assert not block & ports
        ports |= block
    assert not ports & set(range(sip.RTP_RANGE[0], sip.RTP_RANGE[1] + 1))


def test_check_ports_free_names_busy_port():
    sip_port, _ = sip.caller_ports(0)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", sip_port))
        except OSError:
            pytest.skip(f"port {sip_port} is already in use by another process")
        with pytest.raises(RuntimeError, match=str(sip_port)):
            sip.check_ports_free(1)


def test_successful_calls_parses_sipp_statistics():
    output = (
        "----------------------------- Statistics Screen ------- [1-9]: Change Screen --\n"
        "  Successful call        |        0                  |        1                  \n"
        "  Failed call            |        0                  |        0                  \n"
    )

    assert sip.successful_calls(output) == 1
    assert sip.successful_calls("no statistics") is None


def record(ended_at: float, **latency_ms: float) -> sip.CallerRecord:
    return sip.CallerRecord(speech_ended_at=ended_at, latency_ms=latency_ms)


def test_match_records_splits_wire_latency():
    turns = [sip.TurnLatency(0, 0, 5.0, 7.0, 8.5, 15.0)]
    records = [record(7.25, turn_detect=280, asr=400, respond=50, end_to_end=1000)]

    (stages,) = sip.match_records(turns, records)

    assert stages["input_lag"] == pytest.approx(250)
    assert stages["tts_and_rest"] == pytest.approx(270)
    assert stages["output_lag"] == pytest.approx(250)
    assert stages["wire"] == pytest.approx(1500)
    assert set(stages) == set(sip.STAGES) | {"call", "turn"}
    assert (stages["call"], stages["turn"]) == (0, 0)


def test_match_records_skips_turn_without_reply():
    turns = [sip.TurnLatency(0, 0, 5.0, 7.0, None, None), sip.TurnLatency(0, 1, 20.0, 22.0, 23.0, 30.0)]
    records = [
        record(7.3, turn_detect=280, asr=400),
        record(22.2, turn_detect=280, asr=400, respond=50, end_to_end=700),
    ]

    pairs = sip.match_records(turns, records)

    assert len(pairs) == 1
    assert pairs[0]["input_lag"] == pytest.approx(200)


def test_match_records_leaves_out_incomplete_record():
    turns = [sip.TurnLatency(0, 0, 5.0, 7.0, 8.0, 15.0), sip.TurnLatency(0, 1, 20.0, 22.0, 23.0, 30.0)]
    records = [record(7.3, turn_detect=280, asr=400), record(22.3, turn_detect=280, asr=400, respond=50, end_to_end=600)]

    pairs = sip.match_records(turns, records)

    assert len(pairs) == 1
    assert pairs[0]["wire"] == pytest.approx(1000)
    assert pairs[0]["input_lag"] == pytest.approx(300)
