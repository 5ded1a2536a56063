"""RFC 4733 telephone-event tests: one digit per key press despite redundant, end and lost packets."""

import dataclasses

import pytest

from telephony.rtp.dtmf import DtmfReceiver, parse_telephone_event, telephone_event_packets
from telephony.rtp.packet import RtpError, parse_rtp
from telephony.rtp.sender import RtpPacketizer


def press(digit, *, timestamp, first_sequence_number=100, ssrc=7, duration_ms=100):
    return telephone_event_packets(
        digit, ssrc=ssrc, first_sequence_number=first_sequence_number, timestamp=timestamp, duration_ms=duration_ms
    )


def digits_of(receiver, packets):
    return [digit.digit for packet in packets if (digit := receiver.feed(packet)) is not None]


def test_sender_packet_sequence():
    """A 100 ms press is 4 updates with growing duration, then 3 end packets, all at one timestamp."""
    packets = press("5", timestamp=8000)
    events = [parse_telephone_event(packet.payload) for packet in packets]
    assert len(packets) == 7
    assert [event.duration for event in events] == [160, 320, 480, 640, 800, 800, 800]
    assert [event.end for event in events] == [False] * 4 + [True] * 3
    assert {event.event for event in events} == {5}
    assert {packet.timestamp for packet in packets} == {8000}
    assert [packet.marker for packet in packets] == [True] + [False] * 6
    assert [packet.sequence_number for packet in packets] == list(range(100, 107))
    assert all(packet.payload_type == 101 for packet in packets)


def test_sender_wraps_sequence_numbers():
    """Sequence numbers of a press wrap from 65535 to 0."""
    packets = press("1", timestamp=0, first_sequence_number=65534)
    assert [packet.sequence_number for packet in packets[:3]] == [65534, 65535, 0]


@pytest.mark.parametrize("digit", ["x", "", "12", "E"])
def test_sender_rejects_invalid_digit(digit):
    """Only 0-9, *, #, A-D can be sent."""
    with pytest.raises(RtpError, match="not one of"):
        press(digit, timestamp=0)


def test_one_digit_per_press():
    """Redundant updates and the three end packets yield the digit once."""
    receiver = DtmfReceiver()
    assert digits_of(receiver, press("7", timestamp=1000)) == ["7"]
    assert receiver.duplicate_packets == 6


def test_repeated_key_is_two_presses():
    """The same key pressed twice (two timestamps) yields two digits."""
    receiver = DtmfReceiver()
    packets = press("3", timestamp=1000) + press("3", timestamp=3000, first_sequence_number=107)
    assert digits_of(receiver, packets) == ["3", "3"]


def test_all_sixteen_events():
    """Events 0-15 map to 0-9, *, #, A-D."""
    receiver = DtmfReceiver()
    packets = []
    for index, digit in enumerate("0123456789*#ABCD"):
        packets += press(digit, timestamp=index * 2000, first_sequence_number=index * 7)
    assert "".join(digits_of(receiver, packets)) == "0123456789*#ABCD"


def test_lost_start_packets():
    """A press whose first updates were lost is reported from a later update."""
    receiver = DtmfReceiver()
    assert digits_of(receiver, press("9", timestamp=500)[2:]) == ["9"]


def test_only_end_packet_arrives():
    """A press of which only one end packet arrives is still reported once."""
    receiver = DtmfReceiver()
    assert digits_of(receiver, press("#", timestamp=500)[-1:]) == ["#"]


def test_reordered_and_duplicated_packets():
    """Shuffled and duplicated packets of two presses yield each digit once, in first-seen order."""
    receiver = DtmfReceiver()
    first = press("1", timestamp=100)
    second = press("2", timestamp=2000, first_sequence_number=107)
    packets = [first[3], first[0], first[3], second[1], first[6], second[0], second[6], first[1]]
    assert digits_of(receiver, packets) == ["1", "2"]


def test_ssrc_change_is_new_press():
    """The same timestamp from another SSRC is a different press."""
    receiver = DtmfReceiver()
    packets = press("4", timestamp=100, ssrc=1) + press("4", timestamp=100, ssrc=2)
    assert digits_of(receiver, packets) == ["4", "4"]


def test_non_dtmf_event_ignored():
    """Events above 15 (flash, fax tones) are counted and yield no digit."""
    receiver = DtmfReceiver()
    packet = press("0", timestamp=0)[0]
    flash = dataclasses.replace(packet, payload=bytes([16]) + packet.payload[1:])
    assert receiver.feed(flash) is None
    assert receiver.ignored_events == 1


def test_short_payload_counted_invalid():
    """A telephone-event payload under 4 bytes is counted and ignored."""
    receiver = DtmfReceiver()
    packet = dataclasses.replace(press("0", timestamp=0)[0], payload=b"\x01\x0a")
    assert receiver.feed(packet) is None
    assert receiver.invalid_packets == 1


def test_long_press_segments_are_one_digit():
    """A press split into segments at the 65535 duration limit is one digit."""
    receiver = DtmfReceiver()
    first = press("8", timestamp=1000)
    end_of_segment = dataclasses.replace(first[1], payload=bytes([8, 10]) + (0xFFFF).to_bytes(2, "big"))
    segment = dataclasses.replace(first[2], timestamp=1000 + 0xFFFF, marker=False)
    assert digits_of(receiver, [first[0], end_of_segment, segment]) == ["8"]


def test_packetizer_event_round_trip():
    """Packetizer key presses continue the audio stream's sequence and decode to the digit."""
    packetizer = RtpPacketizer(ssrc=5, initial_sequence_number=10, initial_timestamp=0)
    packetizer.silence()
    packets = packetizer.telephone_event("*")
    assert packets[0].sequence_number == 11
    assert packets[0].timestamp == 160
    after = packetizer.silence()
    assert after.sequence_number == 11 + len(packets)
    assert after.marker is True
    receiver = DtmfReceiver()
    assert digits_of(receiver, [parse_rtp(packet.to_bytes()) for packet in packets]) == ["*"]
