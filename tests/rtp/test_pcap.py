"""pcap writer tests: structure, RTP content, and loading by tshark and sipp when they are installed."""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile

from telephony.g711 import alaw_to_pcm, mulaw_to_pcm
from telephony.rtp.packet import parse_rtp
from telephony.rtp.pcap import PcapError, load_wav_pcm, read_rtp_pcap, wav_to_rtp_pcap

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def tone_wav(tmp_path: Path) -> Path:
    """A 0.5 s 300 Hz tone at 16 kHz, so the writer must resample."""
    t = np.arange(8000) / 16000
    path = tmp_path / "tone.wav"
    soundfile.write(path, 0.5 * np.sin(2 * np.pi * 300 * t), 16000, subtype="PCM_16")
    return path


@pytest.mark.parametrize(("payload_type", "decode"), [(0, mulaw_to_pcm), (8, alaw_to_pcm)])
def test_pcap_carries_rtp_audio(tmp_path, tone_wav, payload_type, decode):
    """The pcap holds one RTP packet per 20 ms with consecutive numbering and the clip's audio."""
    pcap = tmp_path / "tone.pcap"
    count = wav_to_rtp_pcap(tone_wav, pcap, payload_type=payload_type)
    records = read_rtp_pcap(pcap)
    packets = [parse_rtp(record.payload) for record in records]
    assert count == 25
    assert len(records) == 25
    assert [round(record.time_s * 1000) for record in records] == [20 * i for i in range(25)]
    assert records[0].source == ("127.0.0.1", 6000)
    assert records[0].destination == ("127.0.0.1", 6002)
    assert [packet.sequence_number for packet in packets] == list(range(1, 26))
    assert [packet.timestamp for packet in packets] == [160 * i for i in range(25)]
    assert {packet.payload_type for packet in packets} == {payload_type}
    assert packets[0].marker is True
    decoded = b"".join(decode(packet.payload) for packet in packets)
    assert decoded[:100] != b"\x00" * 100
    original = np.frombuffer(load_wav_pcm(tone_wav), dtype="<i2").astype(np.float64)
    received = np.frombuffer(decoded, dtype="<i2").astype(np.float64)
    assert np.sqrt(np.mean(received**2)) == pytest.approx(np.sqrt(np.mean(original**2)), rel=0.05)


def test_truncated_pcap_rejected(tmp_path, tone_wav):
    """A pcap cut inside a record raises PcapError."""
    pcap = tmp_path / "tone.pcap"
    wav_to_rtp_pcap(tone_wav, pcap)
    pcap.write_bytes(pcap.read_bytes()[:-10])
    with pytest.raises(PcapError, match="truncated"):
        read_rtp_pcap(pcap)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed (Debian package tshark)")
def test_tshark_decodes_pcap(tmp_path, tone_wav):
    """tshark decodes every record as RTP with the expected sequence numbers and payload type."""
    pcap = tmp_path / "tone.pcap"
    wav_to_rtp_pcap(tone_wav, pcap, payload_type=8)
    result = subprocess.run(
        ["tshark", "-r", str(pcap), "-d", "udp.port==6002,rtp", "-T", "fields", "-e", "rtp.seq", "-e", "rtp.p_type"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    rows = [line.split("\t") for line in result.stdout.splitlines() if line.strip()]
    assert [int(row[0]) for row in rows] == list(range(1, 26))
    assert {row[1] for row in rows} == {"8"}


@pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed (Debian package sip-tester)")
def test_sipp_loads_pcap(tmp_path, tone_wav):
    """sipp's play_pcap_audio loads the file and counts its packets."""
    pcap = tmp_path / "tone.pcap"
    wav_to_rtp_pcap(tone_wav, pcap)
    scenario = tmp_path / "load.xml"
    scenario.write_text(
        '<?xml version="1.0" encoding="ISO-8859-1" ?>\n'
        '<scenario name="load pcap">\n'
        f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n'
        "</scenario>\n"
    )
    # The scenario has no SIP message, so sipp stops right after loading it and sends nothing.
    result = subprocess.run(
        ["sipp", "-sf", str(scenario), "-m", "1", "-i", "127.0.0.1", "-mi", "127.0.0.1", "127.0.0.1:5999"],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert f"In pcap {pcap}, npkts 25" in output
    assert "Can't open PCAP" not in output
