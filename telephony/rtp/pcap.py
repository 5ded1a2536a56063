"""Write a caller clip as a pcap file of RTP packets, for sipp's `play_pcap_audio`.

The file is classic libpcap format (magic 0xa1b2c3d4, version 2.4, microsecond timestamps,
link type 1 Ethernet), and each record is Ethernet II / IPv4 / UDP / RTP with one 20 ms
G.711 frame. sipp replays the UDP payloads with the recorded spacing and rewrites the addresses
and ports, so the addresses in the file only need to be well formed.

`read_rtp_pcap` reads such a file back (Ethernet/IPv4/UDP only) so that tests can check it
without Wireshark.

Command line: `python -m telephony.rtp.pcap CALLER.wav OUT.pcap [--payload-type 8]`.
"""

from __future__ import annotations

import argparse
import ipaddress
import struct
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr

from telephony.rtp.packet import PAYLOAD_TYPE_PCMU, RtpPacket
from telephony.rtp.sender import SAMPLE_RATE_HZ, RtpPacketizer, split_frames
from voicebot.errors import AudioError, ProtocolError

PCAP_MAGIC = 0xA1B2C3D4
LINKTYPE_ETHERNET = 1
SNAPLEN = 65535
_GLOBAL_HEADER = struct.Struct("<IHHiIII")
_RECORD_HEADER = struct.Struct("<IIII")
_ETHERNET = struct.Struct("!6s6sH")
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_UDP = struct.Struct("!HHHH")
ETHERTYPE_IPV4 = 0x0800
IP_PROTOCOL_UDP = 17
# Locally administered MAC addresses (second-lowest bit of the first byte set).
SOURCE_MAC = bytes.fromhex("020000000001")
DESTINATION_MAC = bytes.fromhex("020000000002")


class PcapError(ProtocolError):
    """A pcap file that is not Ethernet/IPv4/UDP in classic libpcap format."""


@dataclass(frozen=True)
class PcapRecord:
    """One captured UDP datagram."""

    time_s: float
    source: tuple[str, int]
    destination: tuple[str, int]
    payload: bytes


def load_wav_pcm(path: str | Path) -> bytes:
    """Read a WAV file of any rate and sample format as mono 16-bit PCM at 8 kHz. Raises AudioError."""
    path = Path(path)
    try:
        samples, sample_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as e:
        raise AudioError(f"caller audio {path} cannot be read as a sound file ({e}); pass a WAV file") from e
    if samples.shape[0] == 0:
        raise AudioError(f"caller audio {path} contains no samples; pass a WAV file with speech")
    mono = samples.mean(axis=1)
    if sample_rate != SAMPLE_RATE_HZ:
        mono = soxr.resample(mono, sample_rate, SAMPLE_RATE_HZ, quality="HQ")
    return np.round(np.clip(mono, -1.0, 1.0) * 32767).astype("<i2").tobytes()


def _ipv4_checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _udp_frame(payload: bytes, source: tuple[str, int], destination: tuple[str, int], ip_id: int) -> bytes:
    source_ip = ipaddress.IPv4Address(source[0]).packed
    destination_ip = ipaddress.IPv4Address(destination[0]).packed
    udp_length = _UDP.size + len(payload)
    # UDP checksum 0 means "not computed", which IPv4 allows (RFC 768).
    udp = _UDP.pack(source[1], destination[1], udp_length, 0) + payload
    total_length = _IPV4.size + udp_length
    # Version 4, 20-byte header, "don't fragment", TTL 64, checksum filled in below.
    header = _IPV4.pack(
        0x45, 0, total_length, ip_id & 0xFFFF, 0x4000, 64, IP_PROTOCOL_UDP, 0, source_ip, destination_ip
    )
    header = header[:10] + struct.pack("!H", _ipv4_checksum(header)) + header[12:]
    return _ETHERNET.pack(DESTINATION_MAC, SOURCE_MAC, ETHERTYPE_IPV4) + header + udp


def write_rtp_pcap(
    path: str | Path,
    packets: Iterable[RtpPacket],
    *,
    packet_interval_ms: int = 20,
    source: tuple[str, int] = ("127.0.0.1", 6000),
    destination: tuple[str, int] = ("127.0.0.1", 6002),
    start_time_s: float = 0.0,
) -> int:
    """Write RTP packets as a pcap file, one packet_interval_ms apart. Returns the number of packets."""
    count = 0
    with open(path, "wb") as out:
        out.write(_GLOBAL_HEADER.pack(PCAP_MAGIC, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET))
        for index, packet in enumerate(packets):
            frame = _udp_frame(packet.to_bytes(), source, destination, index)
            microseconds = round(start_time_s * 1_000_000) + index * packet_interval_ms * 1000
            out.write(_RECORD_HEADER.pack(microseconds // 1_000_000, microseconds % 1_000_000, len(frame), len(frame)))
            out.write(frame)
            count += 1
    return count


def wav_to_rtp_pcap(
    wav_path: str | Path,
    pcap_path: str | Path,
    *,
    payload_type: int = PAYLOAD_TYPE_PCMU,
    frame_ms: int = 20,
    ssrc: int = 0x766F6963,
    source: tuple[str, int] = ("127.0.0.1", 6000),
    destination: tuple[str, int] = ("127.0.0.1", 6002),
) -> int:
    """Convert a WAV clip to 8 kHz G.711 RTP (PCMU 0 or PCMA 8) in a pcap file. Returns the packet count."""
    packetizer = RtpPacketizer(
        payload_type=payload_type, frame_ms=frame_ms, ssrc=ssrc, initial_sequence_number=1, initial_timestamp=0
    )
    frames = split_frames(load_wav_pcm(wav_path), frame_ms=frame_ms)
    return write_rtp_pcap(
        pcap_path,
        (packetizer.packetize(frame) for frame in frames),
        packet_interval_ms=frame_ms,
        source=source,
        destination=destination,
    )


def read_rtp_pcap(path: str | Path) -> list[PcapRecord]:
    """Read the UDP datagrams of a classic little-endian Ethernet pcap file. Raises PcapError."""
    data = Path(path).read_bytes()
    if len(data) < _GLOBAL_HEADER.size:
        raise PcapError(f"{path}: {len(data)} bytes is shorter than the 24-byte pcap header")
    magic, major, minor, _, _, _, linktype = _GLOBAL_HEADER.unpack_from(data)
    if magic != PCAP_MAGIC or (major, minor) != (2, 4):
        raise PcapError(f"{path}: magic {magic:#x} version {major}.{minor} is not little-endian libpcap 2.4")
    if linktype != LINKTYPE_ETHERNET:
        raise PcapError(f"{path}: link type {linktype} is not Ethernet (1)")
    records = []
    offset = _GLOBAL_HEADER.size
    while offset < len(data):
        if offset + _RECORD_HEADER.size > len(data):
            raise PcapError(f"{path}: record header at byte {offset} is cut off")
        seconds, microseconds, captured, original = _RECORD_HEADER.unpack_from(data, offset)
        offset += _RECORD_HEADER.size
        frame = data[offset : offset + captured]
        if len(frame) != captured or captured != original:
            raise PcapError(f"{path}: record at byte {offset} is truncated ({len(frame)} of {original} bytes)")
        offset += captured
        records.append(_parse_udp_frame(frame, seconds + microseconds / 1_000_000, path))
    return records


def _parse_udp_frame(frame: bytes, time_s: float, path: str | Path) -> PcapRecord:
    if len(frame) < _ETHERNET.size + _IPV4.size + _UDP.size:
        raise PcapError(f"{path}: frame of {len(frame)} bytes is too short for Ethernet/IPv4/UDP")
    _, _, ethertype = _ETHERNET.unpack_from(frame)
    if ethertype != ETHERTYPE_IPV4:
        raise PcapError(f"{path}: EtherType {ethertype:#06x} is not IPv4")
    ip_offset = _ETHERNET.size
    version_ihl, _, total_length, _, _, _, protocol, _, source_ip, destination_ip = _IPV4.unpack_from(frame, ip_offset)
    header_length = (version_ihl & 0x0F) * 4
    if version_ihl >> 4 != 4 or protocol != IP_PROTOCOL_UDP:
        raise PcapError(f"{path}: packet is not IPv4/UDP (version byte {version_ihl:#x}, protocol {protocol})")
    if _ipv4_checksum(frame[ip_offset : ip_offset + header_length]) != 0:
        raise PcapError(f"{path}: IPv4 header checksum is wrong")
    if ip_offset + total_length != len(frame):
        raise PcapError(f"{path}: IPv4 total length {total_length} does not match the frame")
    udp_offset = ip_offset + header_length
    source_port, destination_port, udp_length, _ = _UDP.unpack_from(frame, udp_offset)
    if udp_offset + udp_length != len(frame):
        raise PcapError(f"{path}: UDP length {udp_length} does not match the frame")
    return PcapRecord(
        time_s=time_s,
        source=(str(ipaddress.IPv4Address(source_ip)), source_port),
        destination=(str(ipaddress.IPv4Address(destination_ip)), destination_port),
        payload=frame[udp_offset + _UDP.size :],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wav", type=Path, help="caller clip, any sample rate (resampled to 8 kHz)")
    parser.add_argument("pcap", type=Path, help="pcap file to write")
    parser.add_argument("--payload-type", type=int, choices=(0, 8), default=0, help="0 PCMU (default) or 8 PCMA")
    args = parser.parse_args(argv)
    try:
        count = wav_to_rtp_pcap(args.wav, args.pcap, payload_type=args.payload_type)
    except (AudioError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {count} RTP packets to {args.pcap}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
