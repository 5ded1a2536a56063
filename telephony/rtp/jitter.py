"""Adaptive jitter buffer for G.711 RTP: reorders packets and plays out one 20 ms PCM frame per `pop()`.

Pure state machine: `push(packet, arrival_s)` and `pop(now_s)` take times in seconds from any
monotonic clock, so tests drive it with made-up times and no socket.

Playout follows sequence numbers (extended past 65535 as in RFC 3550 appendix A.1), and RTP
timestamps size the gaps. The buffer starts playing once it holds the target delay of audio or
its oldest packet has waited that long. The target is `frame_ms + 3 * jitter`, plus a boost of one
frame for every late packet and underrun that decays over time, kept within [min_delay_ms,
max_delay_ms]. When more than two frames above target are buffered, quiet frames are dropped, and
any frame is dropped above max_delay_ms, so the delay follows the target down again.

A missing packet is concealed when a later one is due (see `_conceal`), and an empty buffer
(underrun) plays concealment, then silence, until enough audio is buffered again. Packets
of payload type CN (13, RFC 3389) and telephone-event mark a pause in audio and play as silence.
Telephone-event packets also go to a `DtmfReceiver`. Other payload types are counted and dropped.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from telephony.g711 import alaw_to_pcm, mulaw_to_pcm
from telephony.rtp.dtmf import DtmfDigit, DtmfReceiver
from telephony.rtp.packet import (
    DEFAULT_TELEPHONE_EVENT_PAYLOAD_TYPE,
    PAYLOAD_TYPE_CN,
    PAYLOAD_TYPE_PCMA,
    PAYLOAD_TYPE_PCMU,
    RtpPacket,
)
from voicebot.errors import ConfigError

logger = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 8000  # G.711 clock rate and sample rate
SAMPLE_BYTES = 2  # 16-bit little-endian PCM
DECODERS: dict[str, Callable[[bytes], bytes]] = {"PCMU": mulaw_to_pcm, "PCMA": alaw_to_pcm}
DEFAULT_AUDIO_PAYLOAD_TYPES: Mapping[int, str] = {PAYLOAD_TYPE_PCMU: "PCMU", PAYLOAD_TYPE_PCMA: "PCMA"}

# RFC 3550 appendix A.1: a jump of more than MAX_DROPOUT ahead or MAX_MISORDER behind the
# highest sequence number means the sender restarted, so the buffer starts over.
MAX_DROPOUT = 3000
MAX_MISORDER = 100
# Received sequence numbers remembered to tell a duplicate from a late packet.
REMEMBERED_SEQUENCE_NUMBERS = 512
# A change of (arrival time - RTP time) of more than this many seconds is a timestamp jump by the
# sender, not network jitter, so the jitter estimate skips it.
TIMESTAMP_JUMP_S = 1.0
# Frames quieter than this RMS (16-bit scale, about -45 dBFS) may be dropped to shrink the delay.
QUIET_FRAME_RMS = 180.0
# The late-packet boost of the target delay decays at this rate.
BOOST_DECAY_MS_PER_S = 2.0
# Pitch search range of the concealment: 40-120 samples at 8 kHz is 66-200 Hz, as in ITU-T G.711
# Appendix I, and the history holds 48.75 ms (390 samples) as there.
PITCH_MIN_SAMPLES = 40
PITCH_MAX_SAMPLES = 120
HISTORY_SAMPLES = 390


@dataclass
class JitterBufferStats:
    """Counters since the buffer was created. `lost` includes packets that later arrived late."""

    received: int = 0
    lost: int = 0
    duplicates: int = 0
    late: int = 0
    reordered: int = 0
    unknown_payload_type: int = 0
    comfort_noise: int = 0
    telephone_events: int = 0
    ssrc_changes: int = 0
    sequence_resets: int = 0
    overflow: int = 0
    underruns: int = 0
    concealed_frames: int = 0
    dropped_frames: int = 0
    frames_played: int = 0
    jitter_ms: float = 0.0
    delay_ms: float = 0.0
    target_delay_ms: float = 0.0
    unknown_payload_types: set[int] = field(default_factory=set)


@dataclass(slots=True)
class _Entry:
    timestamp: int
    pcm: bytes  # decoded audio, empty for CN and telephone-event packets
    audio: bool
    marker: bool
    arrival_s: float


class JitterBuffer:
    """Reorders RTP packets of one call and plays them out as 20 ms frames of 16-bit PCM at 8 kHz."""

    def __init__(
        self,
        *,
        frame_ms: int = 20,
        min_delay_ms: float = 20.0,
        max_delay_ms: float = 200.0,
        concealment_ms: float = 60.0,
        audio_payload_types: Mapping[int, str] | None = None,
        telephone_event_payload_type: int | None = DEFAULT_TELEPHONE_EVENT_PAYLOAD_TYPE,
        max_packets: int = 1000,
    ) -> None:
        if frame_ms not in (10, 20, 30, 40):
            raise ConfigError(f"frame_ms={frame_ms} is not supported; use 10, 20, 30 or 40 ms")
        if not 0 <= min_delay_ms <= max_delay_ms:
            raise ConfigError(
                f"min_delay_ms={min_delay_ms} and max_delay_ms={max_delay_ms} are invalid; "
                "use 0 <= min_delay_ms <= max_delay_ms"
            )
        if concealment_ms < 0:
            raise ConfigError(f"concealment_ms={concealment_ms} must be 0 or more")
        payload_types = dict(DEFAULT_AUDIO_PAYLOAD_TYPES if audio_payload_types is None else audio_payload_types)
        for payload_type, encoding in payload_types.items():
            if encoding not in DECODERS:
                raise ConfigError(
                    f"payload type {payload_type} has encoding {encoding!r}; supported are {sorted(DECODERS)}"
                )
        if max_packets < 1:
            raise ConfigError(f"max_packets={max_packets} must be at least 1")

        self.frame_ms = frame_ms
        self.frame_samples = SAMPLE_RATE_HZ * frame_ms // 1000
        self.min_delay_ms = float(min_delay_ms)
        self.max_delay_ms = float(max_delay_ms)
        self.concealment_samples = int(SAMPLE_RATE_HZ * concealment_ms / 1000)
        self.max_packets = max_packets
        self.telephone_event_payload_type = telephone_event_payload_type
        self.dtmf = DtmfReceiver()
        self._decoders = {pt: DECODERS[encoding] for pt, encoding in payload_types.items()}
        self._stats = JitterBufferStats()
        self._ssrc: int | None = None
        self._jitter = 0.0  # RFC 3550 A.8 estimate, in timestamp units (samples)
        self._boost_ms = 0.0
        self._reset_stream()

    # Inbound side.

    def push(self, packet: RtpPacket, arrival_s: float) -> DtmfDigit | None:
        """Add one received packet. Returns a digit when the packet starts a new DTMF key press."""
        if packet.ssrc != self._ssrc:
            if self._ssrc is not None:
                logger.info("RTP SSRC changed from %08x to %08x; restarting the jitter buffer", self._ssrc, packet.ssrc)
                self._stats.ssrc_changes += 1
                self._reset_stream()
                self._jitter = 0.0
            self._ssrc = packet.ssrc

        payload_type = packet.payload_type
        is_event = payload_type == self.telephone_event_payload_type
        decoder = self._decoders.get(payload_type)
        if decoder is None and not is_event and payload_type != PAYLOAD_TYPE_CN:
            if payload_type not in self._stats.unknown_payload_types:
                logger.warning("dropping RTP packets of payload type %d, which was not negotiated", payload_type)
                self._stats.unknown_payload_types.add(payload_type)
            self._stats.unknown_payload_type += 1
            return None

        sequence = self._extend_sequence(packet.sequence_number)
        if self._highest_sequence is not None and (
            sequence - self._highest_sequence > MAX_DROPOUT or self._highest_sequence - sequence > MAX_MISORDER
        ):
            logger.info(
                "RTP sequence number jumped from %d to %d; restarting the jitter buffer",
                self._highest_sequence & 0xFFFF,
                packet.sequence_number,
            )
            self._stats.sequence_resets += 1
            self._reset_stream()
            sequence = self._extend_sequence(packet.sequence_number)
        if sequence in self._received_set:
            self._stats.duplicates += 1
            return None
        self._remember(sequence)
        self._stats.received += 1
        if self._highest_sequence is not None and sequence < self._highest_sequence:
            self._stats.reordered += 1
        if self._highest_sequence is None or sequence > self._highest_sequence:
            self._highest_sequence = sequence

        digit = None
        if is_event:
            self._stats.telephone_events += 1
            digit = self.dtmf.feed(packet)
        elif payload_type == PAYLOAD_TYPE_CN:
            self._stats.comfort_noise += 1
        else:
            self._update_jitter(packet.timestamp, arrival_s)

        if self._next_sequence is not None and sequence < self._next_sequence:
            if self._started:
                self._stats.late += 1
                self._boost_ms = min(self._boost_ms + self.frame_ms, self.max_delay_ms)
                return digit
            self._next_sequence = sequence  # reordered before playout started: still in time
        if len(self._entries) >= self.max_packets:
            self._stats.overflow += 1
            return digit
        pcm = decoder(packet.payload) if decoder is not None else b""
        self._entries[sequence] = _Entry(packet.timestamp, pcm, decoder is not None, packet.marker, arrival_s)
        if self._next_sequence is None:
            self._next_sequence = sequence
        return digit

    def _extend_sequence(self, sequence_number: int) -> int:
        if self._highest_sequence is None:
            # Start one cycle up so that packets reordered before the first one stay positive.
            return sequence_number + 0x10000
        delta = (sequence_number - self._highest_sequence) & 0xFFFF
        if delta >= 0x8000:
            delta -= 0x10000
        return self._highest_sequence + delta

    def _remember(self, sequence: int) -> None:
        if len(self._received_order) == REMEMBERED_SEQUENCE_NUMBERS:
            self._received_set.discard(self._received_order[0])
        self._received_order.append(sequence)
        self._received_set.add(sequence)

    def _update_jitter(self, timestamp: int, arrival_s: float) -> None:
        # RFC 3550 A.8: D = (arrival difference) - (timestamp difference), J += (|D| - J) / 16,
        # with the arrival time converted to timestamp units.
        arrival = arrival_s * SAMPLE_RATE_HZ
        previous = self._last_transit
        self._last_transit = (arrival, timestamp)
        if previous is None:
            return
        timestamp_delta = (timestamp - previous[1]) & 0xFFFFFFFF
        if timestamp_delta >= 0x80000000:
            timestamp_delta -= 0x100000000
        difference = (arrival - previous[0]) - timestamp_delta
        if abs(difference) > TIMESTAMP_JUMP_S * SAMPLE_RATE_HZ:
            return
        self._jitter += (abs(difference) - self._jitter) / 16

    # Outbound side.

    def pop(self, now_s: float) -> bytes:
        """Return the next frame: frame_ms of 16-bit little-endian PCM at 8 kHz, always full length."""
        self._boost_ms = max(0.0, self._boost_ms - BOOST_DECAY_MS_PER_S * self.frame_ms / 1000)
        frame_bytes = self.frame_samples * SAMPLE_BYTES
        self._stats.frames_played += 1

        if not self._playing:
            if not self._ready(now_s):
                return self._conceal_frame()
            self._playing = True
            self._started = True

        self._fill(2 * frame_bytes)
        self._drop_frame_if_too_late(frame_bytes)
        self._fill(frame_bytes)
        if len(self._out) >= frame_bytes:
            frame = bytes(self._out[:frame_bytes])
            del self._out[:frame_bytes]
            return frame

        # Underrun: play what is left, conceal the rest, and buffer again before resuming.
        self._stats.underruns += 1
        if self._last_was_audio:
            # Audio stopped without CN or a telephone event: late packets or the end of a talkspurt.
            self._boost_ms = min(self._boost_ms + self.frame_ms, self.max_delay_ms)
        self._playing = False
        self._expected_timestamp = None
        partial = bytes(self._out)
        self._out.clear()
        self._stats.concealed_frames += 1
        return partial + self._conceal((frame_bytes - len(partial)) // SAMPLE_BYTES)

    def _ready(self, now_s: float) -> bool:
        if not self._entries:
            return False
        target_ms = self.target_delay_ms()
        if self._buffered_samples() * 1000 / SAMPLE_RATE_HZ >= target_ms:
            return True
        oldest_arrival = min(entry.arrival_s for entry in self._entries.values())
        return (now_s - oldest_arrival) * 1000 >= target_ms

    def _fill(self, min_bytes: int) -> None:
        while len(self._out) < min_bytes and self._advance():
            pass

    def _advance(self) -> bool:
        """Move the playout point by one packet or one gap. Returns False when nothing is buffered."""
        if self._next_sequence is None or not self._entries:
            return False
        entry = self._entries.pop(self._next_sequence, None)
        if entry is not None:
            self._append(entry)
            self._next_sequence += 1
            return True

        # The packet at the playout point is missing but a later one is here: it is lost.
        following = min(self._entries)
        missing = following - self._next_sequence
        self._stats.lost += missing
        if self._expected_timestamp is not None:
            gap = (self._entries[following].timestamp - self._expected_timestamp) & 0xFFFFFFFF
            max_gap = int(self.max_delay_ms * SAMPLE_RATE_HZ / 1000)
            if gap == 0 or gap > max_gap:
                gap = min(missing * self._last_packet_samples, max_gap)
            self._out += self._conceal(gap)
            self._stats.concealed_frames += -(-gap // self.frame_samples)
        self._next_sequence = following
        self._expected_timestamp = None
        return True

    def _append(self, entry: _Entry) -> None:
        if not entry.audio:
            # CN or a telephone event: the sender paused audio, so the pause plays as silence
            # (the buffer runs empty), not as concealment.
            self._last_was_audio = False
            self._expected_timestamp = None
            return
        samples = len(entry.pcm) // SAMPLE_BYTES
        if self._expected_timestamp is not None and not entry.marker:
            # A timestamp gap without a sequence gap is a pause the sender did not mark, so it plays as silence.
            gap = (entry.timestamp - self._expected_timestamp) & 0xFFFFFFFF
            if 0 < gap <= self.max_delay_ms * SAMPLE_RATE_HZ / 1000:
                self._out += bytes(gap * SAMPLE_BYTES)
        # NOTE: real audio after concealment starts without the overlap-add of G.711 Appendix I,
        # so a click is possible at that boundary.
        self._out += entry.pcm
        self._history = np.concatenate([self._history, np.frombuffer(entry.pcm, dtype="<i2")])[-HISTORY_SAMPLES:]
        self._expected_timestamp = (entry.timestamp + samples) & 0xFFFFFFFF
        if samples:
            self._last_packet_samples = samples
        self._last_was_audio = True
        self._concealed = 0

    def _drop_frame_if_too_late(self, frame_bytes: int) -> None:
        if len(self._out) < frame_bytes:
            return
        delay_ms = self._buffered_samples() * 1000 / SAMPLE_RATE_HZ
        if delay_ms <= self.target_delay_ms() + 2 * self.frame_ms:
            return
        frame = np.frombuffer(bytes(self._out[:frame_bytes]), dtype="<i2").astype(np.float64)
        quiet = float(np.sqrt(np.mean(frame**2))) < QUIET_FRAME_RMS
        if quiet or delay_ms > self.max_delay_ms + self.frame_ms:
            del self._out[:frame_bytes]
            self._stats.dropped_frames += 1
            self._fill(frame_bytes)

    # Packet-loss concealment.

    def _conceal_frame(self) -> bytes:
        if self._last_was_audio and self._concealed < self.concealment_samples:
            self._stats.concealed_frames += 1
        return self._conceal(self.frame_samples)

    def _conceal(self, samples: int) -> bytes:
        """Synthesise `samples` of concealment after the last real audio.

        Repeats the last pitch period of the history (ITU-T G.711 Appendix I style waveform
        repetition), fading linearly to zero over concealment_ms, then plays silence.
        After CN, a telephone event or no audio at all, it plays silence.
        """
        start = self._concealed
        self._concealed += samples
        if samples <= 0:
            return b""
        if not self._last_was_audio or len(self._history) < PITCH_MAX_SAMPLES or start >= self.concealment_samples:
            return bytes(samples * SAMPLE_BYTES)
        if start == 0:
            self._pitch_period = self._estimate_pitch_period()
        period = self._history[-self._pitch_period :].astype(np.float64)
        positions = np.arange(start, start + samples)
        waveform = period[positions % self._pitch_period]
        gain = np.clip(1.0 - positions / max(1, self.concealment_samples), 0.0, 1.0)
        return np.round(waveform * gain).astype("<i2").tobytes()

    def _estimate_pitch_period(self) -> int:
        # The lag whose shifted copy of the last 20 ms correlates best (normalised) with the original.
        history = self._history.astype(np.float64)
        window = min(self.frame_samples, len(history) - PITCH_MAX_SAMPLES)
        if window < PITCH_MIN_SAMPLES:
            return min(len(history), PITCH_MAX_SAMPLES)
        target = history[-window:]
        best_lag, best_score = PITCH_MAX_SAMPLES, -np.inf
        for lag in range(PITCH_MIN_SAMPLES, PITCH_MAX_SAMPLES + 1):
            candidate = history[-window - lag : len(history) - lag]
            energy = float(np.dot(candidate, candidate))
            if energy <= 0.0:
                continue
            score = float(np.dot(target, candidate)) / np.sqrt(energy)
            if score > best_score:
                best_lag, best_score = lag, score
        return best_lag

    # State and statistics.

    def target_delay_ms(self) -> float:
        """Playout delay the buffer aims for: frame + 3 x jitter + late-packet boost, within [min, max]."""
        jitter_ms = self._jitter * 1000 / SAMPLE_RATE_HZ
        target = self.frame_ms + 3 * jitter_ms + self._boost_ms
        return min(max(target, self.min_delay_ms), self.max_delay_ms)

    def _buffered_samples(self) -> int:
        return len(self._out) // SAMPLE_BYTES + sum(len(entry.pcm) for entry in self._entries.values()) // SAMPLE_BYTES

    @property
    def stats(self) -> JitterBufferStats:
        """A snapshot of the counters with the current jitter, delay and target delay in ms."""
        self._stats.jitter_ms = self._jitter * 1000 / SAMPLE_RATE_HZ
        self._stats.delay_ms = self._buffered_samples() * 1000 / SAMPLE_RATE_HZ
        self._stats.target_delay_ms = self.target_delay_ms()
        return dataclasses.replace(self._stats, unknown_payload_types=set(self._stats.unknown_payload_types))

    def _reset_stream(self) -> None:
        self._entries: dict[int, _Entry] = {}
        self._next_sequence: int | None = None
        self._highest_sequence: int | None = None
        self._received_order: deque[int] = deque(maxlen=REMEMBERED_SEQUENCE_NUMBERS)
        self._received_set: set[int] = set()
        self._out = bytearray()
        self._playing = False
        self._started = False
        self._expected_timestamp: int | None = None
        self._last_transit: tuple[float, int] | None = None
        self._last_packet_samples = self.frame_samples
        self._history = np.zeros(0, dtype=np.int16)
        self._last_was_audio = False
        self._concealed = 0
        self._pitch_period = PITCH_MAX_SAMPLES
        self._boost_ms = 0.0
