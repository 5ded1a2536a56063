"""SDP parsing and serialisation (RFC 4566) and the audio offer/answer model (RFC 3264).

voicebot speaks G.711 only: PCMU (static payload type 0) and PCMA (8), plus RFC 4733
telephone-event for DTMF. `answer_offer()` picks one codec from an offer and builds the
answer; `create_offer()` builds an offer for calls the bot places; `parse_answer()` reads
the answer to such an offer. Malformed SDP raises `SdpError` (400); an offer with nothing
voicebot can accept raises `SdpNegotiationError` (488). Nothing else leaves the parser.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field, replace

from telephony.sip.errors import SdpError, SdpNegotiationError

# An SDP body for one audio call is about 300 bytes; this bounds hostile input.
MAX_SDP_LINES = 500
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
# Direction the answerer uses for each offered direction (RFC 3264 section 6.1).
ANSWER_DIRECTION = {"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive"}
# Static payload types of the G.711 codecs (RFC 3551 table 4). Both run at 8000 Hz.
STATIC_PAYLOAD_TYPES = {0: "PCMU", 8: "PCMA"}
SUPPORTED_CODECS = ("PCMU", "PCMA")
# RFC 4733 events 0-15 are DTMF digits 0-9, *, #, A-D and 16 is flash.
SUPPORTED_EVENTS = frozenset(range(17))
DEFAULT_TELEPHONE_EVENT_PT = 101
DEFAULT_PTIME_MS = 20
_LINE_RE = re.compile(r"^([a-z])=(.*)$")


@dataclass
class Origin:
    username: str
    session_id: str
    session_version: int
    nettype: str
    addrtype: str
    address: str

    def __str__(self) -> str:
        return f"{self.username} {self.session_id} {self.session_version} {self.nettype} {self.addrtype} {self.address}"


@dataclass
class Connection:
    nettype: str
    addrtype: str
    address: str

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


@dataclass
class MediaDescription:
    media: str
    port: int
    proto: str
    formats: list[str]
    port_count: int | None = None
    connection: Connection | None = None
    # Lines other than c= and a= (i=, b=, k=) in their original order, as (type, value).
    lines: list[tuple[str, str]] = field(default_factory=list)
    attributes: list[tuple[str, str | None]] = field(default_factory=list)

    def attribute(self, name: str) -> str | None:
        for attr_name, value in self.attributes:
            if attr_name == name:
                return value if value is not None else ""
        return None

    def rtpmap(self) -> dict[int, tuple[str, int]]:
        """Payload type to (encoding name, clock rate in Hz), from a=rtpmap lines."""
        result: dict[int, tuple[str, int]] = {}
        for name, value in self.attributes:
            if name != "rtpmap" or not value:
                continue
            match = re.match(r"^(\d{1,3})\s+([^/\s]+)/(\d{1,6})(?:/\d+)?$", value.strip())
            if match:
                result[int(match.group(1))] = (match.group(2), int(match.group(3)))
        return result

    def fmtp(self) -> dict[int, str]:
        result: dict[int, str] = {}
        for name, value in self.attributes:
            if name == "fmtp" and value:
                payload_type, _, params = value.strip().partition(" ")
                if payload_type.isdigit() and len(payload_type) <= 3:
                    result[int(payload_type)] = params.strip()
        return result

    def direction(self, default: str = "sendrecv") -> str:
        for name, _ in self.attributes:
            if name in DIRECTIONS:
                return name
        return default

    def ptime_ms(self) -> int | None:
        value = self.attribute("ptime")
        if value and value.strip().isdigit() and 0 < int(value.strip()) <= 1000:
            return int(value.strip())
        return None


@dataclass
class SessionDescription:
    origin: Origin
    session_name: str = "-"
    version: int = 0
    connection: Connection | None = None
    # Session-level lines other than v=, o=, s=, c= and a= (i=, u=, e=, p=, b=, t=, r=, z=, k=).
    lines: list[tuple[str, str]] = field(default_factory=list)
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)

    def session_direction(self) -> str:
        for name, _ in self.attributes:
            if name in DIRECTIONS:
                return name
        return "sendrecv"

    def to_bytes(self) -> bytes:
        out = [f"v={self.version}", f"o={self.origin}", f"s={self.session_name}"]
        if self.connection:
            out.append(f"c={self.connection}")
        if not any(kind == "t" for kind, _ in self.lines):
            out.append("t=0 0")
        out.extend(f"{kind}={value}" for kind, value in self.lines)
        out.extend(_format_attribute(name, value) for name, value in self.attributes)
        for media in self.media:
            port = f"{media.port}/{media.port_count}" if media.port_count else str(media.port)
            out.append(f"m={media.media} {port} {media.proto} {' '.join(media.formats)}")
            out.extend(f"{kind}={value}" for kind, value in media.lines if kind != "b")
            if media.connection:
                out.append(f"c={media.connection}")
            out.extend(f"{kind}={value}" for kind, value in media.lines if kind == "b")
            out.extend(_format_attribute(name, value) for name, value in media.attributes)
        return ("\r\n".join(out) + "\r\n").encode("utf-8")


def _format_attribute(name: str, value: str | None) -> str:
    return f"a={name}" if value is None else f"a={name}:{value}"


def _parse_connection(value: str) -> Connection:
    parts = value.split()
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise SdpError(f"invalid SDP c= line {value[:60]!r}; expected 'IN IP4 <address>'")
    # Multicast addresses carry /ttl and /count suffixes; the address is the first part.
    address = parts[2].split("/")[0]
    if not address:
        raise SdpError(f"SDP c= line {value[:60]!r} has an empty address")
    return Connection(nettype=parts[0], addrtype=parts[1], address=address)


def _parse_origin(value: str) -> Origin:
    parts = value.split()
    if len(parts) != 6 or not parts[2].isdigit() or len(parts[2]) > 20:
        raise SdpError(f"invalid SDP o= line {value[:60]!r}; expected 6 fields with a numeric version")
    return Origin(parts[0], parts[1], int(parts[2]), parts[3], parts[4], parts[5])


def _parse_media(value: str) -> MediaDescription:
    parts = value.split()
    if len(parts) < 4:
        raise SdpError(f"invalid SDP m= line {value[:60]!r}; expected '<media> <port> <proto> <format>...'")
    port_text, _, count_text = parts[1].partition("/")
    if not port_text.isdigit() or int(port_text) > 65535 or (count_text and not count_text.isdigit()):
        raise SdpError(f"invalid port {parts[1][:20]!r} in SDP m= line; expected 0-65535")
    if count_text and len(count_text) > 5:
        raise SdpError(f"invalid port count {count_text[:20]!r} in SDP m= line")
    proto = parts[2]
    if proto.upper().startswith("RTP/") and not all(fmt.isdigit() and int(fmt) <= 127 for fmt in parts[3:]):
        raise SdpError(f"RTP payload types in m= line {value[:60]!r} must be integers 0-127")
    return MediaDescription(
        media=parts[0],
        port=int(port_text),
        port_count=int(count_text) if count_text else None,
        proto=proto,
        formats=parts[3:],
    )


def parse_sdp(data: bytes | str) -> SessionDescription:
    """Parse an SDP body; raise SdpError (never anything else) for malformed input."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise SdpError(f"SDP body is not valid UTF-8 (byte {e.start})") from None
    lines = [line[:-1] if line.endswith("\r") else line for line in data.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    if len(lines) > MAX_SDP_LINES:
        raise SdpError(f"SDP body has {len(lines)} lines, more than the limit of {MAX_SDP_LINES}")
    if not lines or lines[0].strip() != "v=0":
        raise SdpError("SDP body must start with v=0")
    session: SessionDescription | None = None
    session_name = "-"
    pending: list[tuple[str, str]] = []
    for line in lines[1:]:
        match = _LINE_RE.match(line)
        if not match:
            raise SdpError(f"invalid SDP line {line[:60]!r}; expected <letter>=<value>")
        kind, value = match.group(1), match.group(2)
        if kind == "o" and session is None:
            session = SessionDescription(origin=_parse_origin(value))
            continue
        if session is None:
            raise SdpError(f"SDP line {line[:40]!r} comes before o=; the origin must follow v=0")
        current = session.media[-1] if session.media else None
        if kind == "s" and current is None:
            session_name = value
        elif kind == "m":
            session.media.append(_parse_media(value))
        elif kind == "c":
            if current is None:
                session.connection = _parse_connection(value)
            else:
                current.connection = _parse_connection(value)
        elif kind == "a":
            name, sep, attr_value = value.partition(":")
            attribute = (name.strip(), attr_value if sep else None)
            (current.attributes if current else session.attributes).append(attribute)
        elif current is not None:
            current.lines.append((kind, value))
        else:
            pending.append((kind, value))
    if session is None:
        raise SdpError("SDP body has no o= line")
    session.session_name = session_name
    session.lines = pending
    return session


@dataclass(frozen=True)
class MediaSelection:
    """Result of a negotiation: what to send, where, and in which direction."""

    codec: str
    payload_type: int
    telephone_event_pt: int | None
    remote_address: str
    remote_port: int
    # Our direction after the exchange: sendrecv, sendonly (we send, the peer holds us),
    # recvonly (the peer put us on hold and only sends), or inactive.
    direction: str
    ptime_ms: int = DEFAULT_PTIME_MS

    @property
    def on_hold(self) -> bool:
        """True when we must not send media: a direction without send or the RFC 2543 hold address."""
        return self.direction in ("recvonly", "inactive") or self.remote_address in ("0.0.0.0", "::")


def _audio_codecs(media: MediaDescription) -> list[tuple[str, int]]:
    """List the offered codecs voicebot supports as (name, payload type), in offer order."""
    rtpmap = media.rtpmap()
    found = []
    for fmt in media.formats:
        if not fmt.isdigit() or len(fmt) > 3:
            continue  # formats of non-RTP streams (udp/BFCP, TCP/MSRP) are not payload types
        payload_type = int(fmt)
        name, clock = rtpmap.get(payload_type, (STATIC_PAYLOAD_TYPES.get(payload_type, ""), 8000))
        if name.upper() in SUPPORTED_CODECS and clock == 8000:
            found.append((name.upper(), payload_type))
    return found


def _telephone_event(media: MediaDescription) -> tuple[int, str] | None:
    """Return the telephone-event payload type and the events both sides support, if offered."""
    fmtp = media.fmtp()
    for payload_type, (name, clock) in media.rtpmap().items():
        if name.lower() != "telephone-event" or clock != 8000 or str(payload_type) not in media.formats:
            continue
        events = _parse_events(fmtp.get(payload_type, "0-15")) & SUPPORTED_EVENTS
        if events:
            return payload_type, _format_events(events)
    return None


def _parse_events(text: str) -> set[int]:
    events: set[int] = set()
    for part in text.replace(" ", "").split(","):
        low, _, high = part.partition("-")
        if low.isdigit() and len(low) <= 3 and (not high or (high.isdigit() and len(high) <= 3)):
            events.update(range(int(low), int(high or low) + 1))
    return events


def _format_events(events: set[int]) -> str:
    ranges: list[str] = []
    ordered = sorted(events)
    start = previous = ordered[0]
    for event in ordered[1:] + [-1]:
        if event != previous + 1:
            ranges.append(str(start) if start == previous else f"{start}-{previous}")
            start = event
        previous = event
    return ",".join(ranges)


def _address_type(address: str) -> str:
    try:
        return "IP6" if ipaddress.ip_address(address).version == 6 else "IP4"
    except ValueError:
        return "IP4"


def _connection_address(offer: SessionDescription, media: MediaDescription) -> str:
    connection = media.connection or offer.connection
    if connection is None:
        raise SdpError("SDP audio stream has no c= line at media or session level")
    return connection.address


def _local_session(*, address: str, session_id: int, session_version: int, username: str) -> SessionDescription:
    addrtype = _address_type(address)
    return SessionDescription(
        origin=Origin(username, str(session_id), session_version, "IN", addrtype, address),
        session_name=username,
        connection=Connection("IN", addrtype, address),
        lines=[("t", "0 0")],
    )


def _audio_media(
    *, port: int, codecs: list[tuple[str, int]], event: tuple[int, str] | None, direction: str, ptime_ms: int
) -> MediaDescription:
    media = MediaDescription(media="audio", port=port, proto="RTP/AVP", formats=[str(pt) for _, pt in codecs])
    for name, payload_type in codecs:
        media.attributes.append(("rtpmap", f"{payload_type} {name}/8000"))
    if event:
        media.formats.append(str(event[0]))
        media.attributes.append(("rtpmap", f"{event[0]} telephone-event/8000"))
        media.attributes.append(("fmtp", f"{event[0]} {event[1]}"))
    media.attributes.append(("ptime", str(ptime_ms)))
    media.attributes.append((direction, None))
    return media


def answer_offer(
    offer: SessionDescription,
    *,
    address: str,
    port: int,
    session_id: int,
    session_version: int,
    codecs: tuple[str, ...] = SUPPORTED_CODECS,
    prefer_offer_order: bool = True,
    telephone_event: bool = True,
    ptime_ms: int = DEFAULT_PTIME_MS,
    username: str = "voicebot",
) -> tuple[SessionDescription, MediaSelection]:
    """Answer an audio offer on our RTP `address`:`port`; raise SdpNegotiationError if nothing fits.

    The first RTP/AVP audio stream with a common codec is accepted. Every other stream is
    answered with port 0 (RFC 3264 section 6), as the answer must list every offered stream.
    With `prefer_offer_order` the offerer's codec order wins, otherwise the order of `codecs`.
    """
    answer = _local_session(address=address, session_id=session_id, session_version=session_version, username=username)
    selection: MediaSelection | None = None
    for media in offer.media:
        offered = _audio_codecs(media) if media.media == "audio" and media.proto.upper() == "RTP/AVP" else []
        usable = [(name, pt) for name, pt in offered if name in codecs]
        if selection is not None or media.port == 0 or not usable:
            answer.media.append(MediaDescription(media=media.media, port=0, proto=media.proto, formats=media.formats[:]))
            continue
        if not prefer_offer_order:
            usable.sort(key=lambda item: codecs.index(item[0]))
        name, payload_type = usable[0]
        event = _telephone_event(media) if telephone_event else None
        direction = ANSWER_DIRECTION[media.direction(offer.session_direction())]
        answer.media.append(
            _audio_media(port=port, codecs=[usable[0]], event=event, direction=direction, ptime_ms=ptime_ms)
        )
        selection = MediaSelection(
            codec=name,
            payload_type=payload_type,
            telephone_event_pt=event[0] if event else None,
            remote_address=_connection_address(offer, media),
            remote_port=media.port,
            direction=direction,
            ptime_ms=media.ptime_ms() or ptime_ms,
        )
    if selection is None:
        offered_names = sorted({name for media in offer.media for name, _ in _audio_codecs(media)})
        raise SdpNegotiationError(
            f"no common audio codec: the offer has {len(offer.media)} stream(s) and supported codecs "
            f"{offered_names or 'none'}; voicebot accepts {', '.join(codecs)} over RTP/AVP"
        )
    return answer, selection


def create_offer(
    *,
    address: str,
    port: int,
    session_id: int,
    session_version: int,
    codecs: tuple[str, ...] = SUPPORTED_CODECS,
    telephone_event_pt: int | None = DEFAULT_TELEPHONE_EVENT_PT,
    direction: str = "sendrecv",
    ptime_ms: int = DEFAULT_PTIME_MS,
    username: str = "voicebot",
) -> SessionDescription:
    """Build an audio offer listing `codecs` in preference order."""
    offer = _local_session(address=address, session_id=session_id, session_version=session_version, username=username)
    static = {name: pt for pt, name in STATIC_PAYLOAD_TYPES.items()}
    event = (telephone_event_pt, "0-16") if telephone_event_pt is not None else None
    offer.media.append(
        _audio_media(
            port=port, codecs=[(name, static[name]) for name in codecs], event=event, direction=direction,
            ptime_ms=ptime_ms,
        )
    )
    return offer


def parse_answer(answer: SessionDescription, offer: SessionDescription) -> MediaSelection:
    """Read the media the peer accepted in its answer to our `offer`; raise SdpNegotiationError if none."""
    for index, media in enumerate(answer.media):
        if index >= len(offer.media) or media.port == 0 or media.media != "audio":
            continue
        offered = dict(_audio_codecs(offer.media[index]))
        chosen = [(name, pt) for name, pt in _audio_codecs(media) if name in offered]
        if not chosen:
            continue
        event = _telephone_event(media)
        return MediaSelection(
            codec=chosen[0][0],
            payload_type=chosen[0][1],
            telephone_event_pt=event[0] if event else None,
            remote_address=_connection_address(answer, media),
            remote_port=media.port,
            direction=ANSWER_DIRECTION[media.direction(answer.session_direction())],
            ptime_ms=media.ptime_ms() or DEFAULT_PTIME_MS,
        )
    raise SdpNegotiationError("the SDP answer accepts none of the offered audio codecs")


def with_direction(description: SessionDescription, direction: str) -> SessionDescription:
    """Return a copy whose audio streams carry `direction`, for hold and resume offers."""
    media = []
    for stream in description.media:
        attributes = [(name, value) for name, value in stream.attributes if name not in DIRECTIONS]
        media.append(replace(stream, attributes=attributes + [(direction, None)]))
    return replace(description, media=media)
