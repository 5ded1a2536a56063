"""SIPp scenarios, tshark capture and RTP analysis for whole SIP calls on 127.0.0.1.

Used by the tests in this folder and by `bench/sip.py`. Scenarios are written per run from
small pieces, so a test states its call flow in a few lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shutil
import signal
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from telephony import g711
from telephony.rtp.pcap import PcapRecord, read_rtp_pcap
from voicebot.config import REPO_ROOT

SIPP = shutil.which("sipp")
TSHARK = shutil.which("tshark")
HOST = "127.0.0.1"
# A 20 ms frame with an RMS level above this (16-bit PCM) counts as voiced. Encoded silence
# decodes to 0, and espeak-ng speech is well above 300.
VOICED_RMS = 300.0


def shared_speech_dir() -> Path:
    return Path(os.environ.get("VOICEBOT_SHARED_SPEECH", REPO_ROOT.parent / "shared" / "speech"))


# Scenario pieces. [$bot_tag] is the bot's To tag, taken from its 200 OK.

_HEADERS = """Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "caller" <sip:13800138000@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
Call-ID: [call_id]
Max-Forwards: 70
Contact: <sip:caller@[local_ip]:[local_port]>"""

_SDP = """v=0
o=caller 53655765 {version} IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP {payload_types}
{rtpmaps}a={direction}
"""
_RTPMAP = {"0": "a=rtpmap:0 PCMU/8000\n", "8": "a=rtpmap:8 PCMA/8000\n", "18": "a=rtpmap:18 G729/8000\n",
           "101": "a=rtpmap:101 telephone-event/8000\na=fmtp:101 0-15\n"}


def _sdp(payload_types: str, direction: str, version: int) -> str:
    rtpmaps = "".join(_RTPMAP[pt] for pt in payload_types.split())
    return _SDP.format(payload_types=payload_types, rtpmaps=rtpmaps, direction=direction, version=version)


def invite(*, payload_types: str = "0 101", expect: str = "200") -> str:
    """INVITE with an SDP offer; waits for `expect` (a final status) and stores the bot's tag."""
    head = f"""  <send retrans="500"><![CDATA[
INVITE sip:voicebot@[remote_ip]:[remote_port] SIP/2.0
{_HEADERS}
To: <sip:voicebot@[remote_ip]:[remote_port]>
CSeq: 1 INVITE
Content-Type: application/sdp
Content-Length: [len]

{_sdp(payload_types, "sendrecv", 1)}]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
"""
    if expect != "200":
        return head + f"""  <recv response="{expect}"/>
  <send><![CDATA[
ACK sip:voicebot@[remote_ip]:[remote_port] SIP/2.0
{_HEADERS}
[last_To:]
CSeq: 1 ACK
Content-Length: 0

]]></send>
"""
    return head + f"""  <recv response="200" rtd="true">
    <action><ereg regexp="tag=([^;> \\r\\n]+)" search_in="hdr" header="To:" assign_to="junk,bot_tag"/></action>
  </recv>
  <Reference variables="junk"/>
  <send><![CDATA[
ACK sip:voicebot@[remote_ip]:[remote_port] SIP/2.0
{_HEADERS}
To: <sip:voicebot@[remote_ip]:[remote_port]>;tag=[$bot_tag]
CSeq: 1 ACK
Content-Length: 0

]]></send>
"""


def cancel_after_ringing() -> str:
    """INVITE, wait for 180, CANCEL, then 200 for the CANCEL and 487 for the INVITE, ACK."""
    return f"""  <send retrans="500"><![CDATA[
INVITE sip:voicebot@[remote_ip]:[remote_port] SIP/2.0
{_HEADERS}
To: <sip:voicebot@[remote_ip]:[remote_port]>
CSeq: 1 INVITE
Content-Type: application/sdp
Content-Length: [len]

{_sdp("0", "sendrecv", 1)}]]></send>
  <recv response="100" optional="true"/>
  <recv response="180"/>
  <send><![CDATA[
CANCEL sip:voicebot@[remote_ip]:[remote_port] SIP/2.0
{_HEADERS.replace("branch=[branch]", "branch=[branch-3]")}
To: <sip:voicebot@[remote_ip]:[remote_port]>
CSeq: 1 CANCEL
Content-Length: 0

]]></send>
  <recv response="200"/>
  <recv response="487"/>
  <send><![CDATA[
ACK sip:voicebot@[remote_ip]:[remote_port] SIP/2.0
{_HEADERS}
[last_To:]
CSeq: 1 ACK
Content-Length: 0

]]></send>
"""


def pause(ms: int) -> str:
    return f'  <pause milliseconds="{ms}"/>\n'


def play(pcap: Path) -> str:
    return f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n'


def log(text: str) -> str:
    return f'  <nop><action><log message="{text}"/></action></nop>\n'


def reinvite(*, direction: str, cseq: int) -> str:
    """re-INVITE with `direction` (sendonly puts the bot on hold), its 200 and the ACK."""
    return f"""  <send retrans="500"><![CDATA[
INVITE sip:voicebot@[remote_ip]:[remote_port] SIP/2.0
{_HEADERS}
To: <sip:voicebot@[remote_ip]:[remote_port]>;tag=[$bot_tag]
CSeq: {cseq} INVITE
Content-Type: application/sdp
Content-Length: [len]

{_sdp("0 101", direction, cseq)}]]></send>
  <recv response="100" optional="true"/>
  <recv response="200"/>
  <send><![CDATA[
ACK sip:voicebot@[remote_ip]:[remote_port] SIP/2.0
{_HEADERS}
To: <sip:voicebot@[remote_ip]:[remote_port]>;tag=[$bot_tag]
CSeq: {cseq} ACK
Content-Length: 0

]]></send>
"""


def info_dtmf(*, digit_body: str, content_type: str, cseq: int) -> str:
    """INFO carrying one key press (`application/dtmf-relay` or `application/dtmf` body) and its 200."""
    return f"""  <send retrans="500"><![CDATA[
INFO sip:voicebot@[remote_ip]:[remote_port] SIP/2.0
{_HEADERS}
To: <sip:voicebot@[remote_ip]:[remote_port]>;tag=[$bot_tag]
CSeq: {cseq} INFO
Content-Type: {content_type}
Content-Length: [len]

{digit_body}]]></send>
  <recv response="200"/>
"""


def bye(*, cseq: int) -> str:
    return f"""  <send retrans="500"><![CDATA[
BYE sip:voicebot@[remote_ip]:[remote_port] SIP/2.0
{_HEADERS}
To: <sip:voicebot@[remote_ip]:[remote_port]>;tag=[$bot_tag]
CSeq: {cseq} BYE
Content-Length: 0

]]></send>
  <recv response="200"/>
"""


_RESPONSE_TO_REFER = """  <send><![CDATA[
SIP/2.0 {status}
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
"""


def _notify_sipfrag(*, cseq: int, status_line: str, subscription_state: str) -> str:
    """NOTIFY of the REFER subscription carrying `status_line` as message/sipfrag, and its 200."""
    return f"""  <send retrans="500"><![CDATA[
NOTIFY sip:voicebot@[remote_ip]:[remote_port] SIP/2.0
{_HEADERS}
To: <sip:voicebot@[remote_ip]:[remote_port]>;tag=[$bot_tag]
CSeq: {cseq} NOTIFY
Event: refer
Subscription-State: {subscription_state}
Content-Type: message/sipfrag
Content-Length: [len]

SIP/2.0 {status_line}
]]></send>
  <recv response="200"/>
"""


def accept_refer(*, cseq: int) -> str:
    """Wait for the bot's REFER, log its handoff id, answer 202, NOTIFY 200 sipfrag, then take the BYE."""
    return f"""  <recv request="REFER">
    <action>
      <ereg regexp="([0-9a-f]{{32}})" search_in="hdr" header="X-Voicebot-Handoff-Id:" assign_to="handoff_id"/>
      <ereg regexp="([A-Za-z0-9_.-]+)" search_in="hdr" header="X-Voicebot-Reason:" assign_to="reason"/>
      <log message="handoff-id [$handoff_id] reason [$reason]"/>
    </action>
  </recv>
{_RESPONSE_TO_REFER.format(status="202 Accepted")}
{_notify_sipfrag(cseq=cseq, status_line="200 OK", subscription_state="terminated;reason=noresource")}
{answer_bye()}"""


# Refer-To of an attended transfer: the rep's URI with a Replaces header (RFC 3891) whose value
# is escaped as a URI header ("@" as %40, ";" as %3B, "=" as %3D). The groups are the consult
# call's Call-ID, its to-tag (the rep's tag) and its from-tag (the bot's tag).
REPLACES_REFER_TO = (
    r"sip:rep@127\.0\.0\.1:[0-9]+\?Replaces=([0-9a-f]+%40[0-9.]+)%3Bto-tag%3D([^%;?]+)"
    r"%3Bfrom-tag%3D([0-9a-f]+)"
)


def accept_replaces_refer(*, cseq: int) -> str:
    """Wait for a REFER whose Refer-To carries Replaces, log its parts, answer 202, NOTIFY 100 and 200, take the BYE.

    sipp fails the call when Refer-To does not match REPLACES_REFER_TO or Referred-By is missing.
    """
    return f"""  <recv request="REFER">
    <action>
      <ereg regexp="{REPLACES_REFER_TO}" search_in="hdr" header="Refer-To:" check_it="true"
            assign_to="refer_to,replaces_call_id,replaces_to_tag,replaces_from_tag"/>
      <ereg regexp="sip:voicebot@[0-9.]+:[0-9]+" search_in="hdr" header="Referred-By:" check_it="true"
            assign_to="referred_by"/>
      <log message="refer-to [$refer_to] call-id [$replaces_call_id] to-tag [$replaces_to_tag] from-tag [$replaces_from_tag] referred-by [$referred_by]"/>
    </action>
  </recv>
{_RESPONSE_TO_REFER.format(status="202 Accepted")}
{_notify_sipfrag(cseq=cseq, status_line="100 Trying", subscription_state="active;expires=60")}
{_notify_sipfrag(cseq=cseq + 1, status_line="200 OK", subscription_state="terminated;reason=noresource")}
{answer_bye()}"""


def refuse_refer(*, status: str, notify_status: str | None = None, cseq: int = 2) -> str:
    """Wait for the bot's REFER with Replaces and answer it with `status` (e.g. "501 Not Implemented").

    With `notify_status` (e.g. "603 Declined") the REFER is accepted with `status` and a final
    NOTIFY then reports that failure, as a caller's UA does when its call to the target fails.
    """
    steps = f"""  <recv request="REFER">
    <action>
      <ereg regexp="Replaces=" search_in="hdr" header="Refer-To:" check_it="true" assign_to="replaces"/>
      <log message="refer refused, Refer-To had [$replaces]"/>
    </action>
  </recv>
{_RESPONSE_TO_REFER.format(status=status)}"""
    if notify_status is not None:
        steps += _notify_sipfrag(cseq=cseq, status_line=notify_status, subscription_state="terminated;reason=noresource")
    return steps


def answer_bye() -> str:
    return """  <recv request="BYE"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
"""


def rep_answers(*, pcap: Path | None, pause_before_play_ms: int = 0) -> str:
    """UAS side of a consult call: 180, 200 with SDP, ACK, optionally play audio, then take the BYE."""
    steps = f"""  <recv request="INVITE">
    <action>
      <ereg regexp="([0-9a-f]{{32}})" search_in="hdr" header="X-Voicebot-Handoff-Id:" assign_to="handoff_id"/>
      <ereg regexp="tag=([^;> \\r\\n]+)" search_in="hdr" header="From:" assign_to="from_header,bot_tag"/>
      <log message="handoff-id [$handoff_id]"/>
      <log message="consult call-id [call_id] bot-tag [$bot_tag] rep-tag [pid]SIPpTag01[call_number]"/>
    </action>
  </recv>
  <Reference variables="from_header"/>
  <send><![CDATA[
SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <send retrans="500"><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:rep@[local_ip]:[local_port]>
Content-Type: application/sdp
Content-Length: [len]

{_sdp("0", "sendrecv", 1).replace("caller", "rep")}]]></send>
  <recv request="ACK"/>
"""
    if pcap is not None:
        steps += pause(pause_before_play_ms) + play(pcap)
    return steps + answer_bye()


def rep_busy() -> str:
    return """  <recv request="INVITE"/>
  <send><![CDATA[
SIP/2.0 486 Busy Here
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <recv request="ACK"/>
"""


def scenario(name: str, *steps: str) -> str:
    return f'<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="{name}">\n{"".join(steps)}</scenario>\n'


@dataclass
class SippResult:
    returncode: int
    output: str
    log: str


class Sipp:
    """One sipp process on 127.0.0.1 running a scenario file."""

    def __init__(self, workdir: Path, xml: str, *, name: str, media_port: int, local_port: int,
                 target_port: int | None, calls: int = 1, rate: int = 1, timeout_s: int = 60) -> None:
        self.workdir = workdir / name
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / f"{name}.xml").write_text(xml, encoding="iso-8859-1")
        self.args = [
            SIPP or "sipp", *([f"{HOST}:{target_port}"] if target_port else []),
            "-sf", f"{name}.xml", "-i", HOST, "-mi", HOST, "-p", str(local_port), "-mp", str(media_port),
            "-m", str(calls), "-l", str(calls), "-r", str(rate), "-nostdin", "-timeout", f"{timeout_s}s",
            "-timeout_error", "-trace_err", "-trace_logs", "-max_recv_loops", "1000",
        ]
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *self.args, cwd=self.workdir, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )

    async def wait(self, *, timeout_s: float = 90.0) -> SippResult:
        assert self.process is not None
        try:
            output, _ = await asyncio.wait_for(self.process.communicate(), timeout=timeout_s)
        except asyncio.TimeoutError:
            self.process.kill()
            output, _ = await self.process.communicate()
        logs = "".join(p.read_text(errors="replace") for p in sorted(self.workdir.glob("*_logs.log")))
        errors = "".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.workdir.glob("*_errors.log")))
        return SippResult(self.process.returncode or 0, output.decode(errors="replace")[-1500:] + errors, logs)


@contextlib.asynccontextmanager
async def capture(path: Path, *, ports: list[int], port_ranges: list[tuple[int, int]] = ()) -> AsyncIterator[Path]:
    """Capture UDP on the loopback to the given ports with tshark (pcap format) for the block's duration."""
    parts = [f"udp port {p}" for p in ports] + [f"udp portrange {lo}-{hi}" for lo, hi in port_ranges]
    process = await asyncio.create_subprocess_exec(
        TSHARK or "tshark", "-i", "lo", "-f", " or ".join(parts), "-F", "pcap", "-w", str(path), "-q",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    # tshark prints "Capturing on 'Loopback: lo'" once the capture runs.
    while True:
        line = await asyncio.wait_for(process.stderr.readline(), timeout=15)
        if not line or b"Capturing on" in line:
            break
    try:
        yield path
    finally:
        await asyncio.sleep(0.3)
        process.send_signal(signal.SIGINT)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(process.wait(), timeout=10)
        if process.returncode is None:
            process.kill()
            await process.wait()


def frame_rms(payload: bytes, payload_type: int = 0) -> float:
    pcm = g711.mulaw_to_pcm(payload) if payload_type == 0 else g711.alaw_to_pcm(payload)
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float64)
    return math.sqrt(float(np.mean(samples * samples))) if len(samples) else 0.0


@dataclass(frozen=True)
class RtpFrame:
    time_s: float
    source_port: int
    destination_port: int
    payload_type: int
    rms: float


def rtp_frames(records: list[PcapRecord]) -> list[RtpFrame]:
    """Return the G.711 RTP packets among captured datagrams, with their levels."""
    frames = []
    for record in records:
        data = record.payload
        if len(data) < 12 or data[0] >> 6 != 2:
            continue
        payload_type = data[1] & 0x7F
        if payload_type not in (0, 8):
            continue
        csrc = (data[0] & 0x0F) * 4
        payload = data[12 + csrc:]
        frames.append(RtpFrame(record.time_s, record.source[1], record.destination[1], payload_type,
                               frame_rms(payload, payload_type)))
    return frames


def sip_messages(records: list[PcapRecord]) -> list[tuple[float, str]]:
    """Return (time, first line) of the SIP messages among captured datagrams."""
    found = []
    for record in records:
        head = record.payload[:80]
        if head.startswith(b"SIP/2.0 ") or b" SIP/2.0\r\n" in head:
            found.append((record.time_s, head.split(b"\r\n", 1)[0].decode("ascii", "replace")))
    return found


def read_capture(path: Path) -> list[PcapRecord]:
    return read_rtp_pcap(path)


def voiced_spans(frames: list[RtpFrame], *, max_gap_s: float = 0.6) -> list[tuple[float, float]]:
    """Group voiced frames into spans (start, end) separated by more than `max_gap_s` of silence."""
    spans: list[list[float]] = []
    for frame in frames:
        if frame.rms < VOICED_RMS:
            continue
        if spans and frame.time_s - spans[-1][1] <= max_gap_s:
            spans[-1][1] = frame.time_s + 0.02
        else:
            spans.append([frame.time_s, frame.time_s + 0.02])
    return [(start, end) for start, end in spans]


def dtmf_pcap(path: Path, digits: str) -> None:
    """Write RFC 4733 key presses (payload type 101), 300 ms apart, as a pcap for play_pcap_audio."""
    from telephony.rtp.pcap import write_rtp_pcap
    from telephony.rtp.sender import RtpPacketizer

    packetizer = RtpPacketizer(payload_type=0, ssrc=0x64746D66, initial_sequence_number=1, initial_timestamp=0)
    silence = bytes(320)
    packets = []
    for digit in digits:
        packets += [packetizer.packetize(silence) for _ in range(5)]
        packets += packetizer.telephone_event(digit, duration_ms=100)
    packets += [packetizer.packetize(silence) for _ in range(5)]
    write_rtp_pcap(path, packets)


async def wait_until(condition: Callable[[], bool], *, timeout_s: float = 20.0) -> bool:
    """Poll `condition` every 50 ms; return its last value (a guard against hanging, not a timed check)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition() and loop.time() < deadline:
        await asyncio.sleep(0.05)
    return condition()


def wav_seconds(path: Path) -> float:
    with open(path, "rb") as f:
        header = f.read(44)
    rate, = struct.unpack_from("<I", header, 24)
    block, = struct.unpack_from("<H", header, 32)
    return (path.stat().st_size - 44) / (rate * block)
