"""SIP message parsing and serialisation (RFC 3261 sections 7, 20 and 25), with no I/O.

`parse_message()` turns bytes into a `SipRequest` or `SipResponse` and validates the headers
every transaction needs (Via, From, To, Call-ID, CSeq, Content-Length). Any input that breaks
the grammar or a size limit raises `SipParseError`, whose `status` is the response a server
sends (400, 505, 513, 416). No other exception leaves this module for malformed input.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Union

from telephony.sip.errors import SipParseError

SIP_VERSION = "SIP/2.0"
# RFC 3261 section 18.1.1: a UDP message should stay under the path MTU, but a datagram can
# carry up to 65,507 bytes of payload, so this is the largest message a peer can send us.
MAX_MESSAGE_BYTES = 65_535
# Real INVITEs carry 10-30 headers; 100 leaves room for SBCs that add many X- headers.
MAX_HEADERS = 100
DEFAULT_SIP_PORT = 5060

# RFC 3261 section 7.3.3 and the IANA "Header Fields" registry: compact form to full name.
COMPACT_FORMS = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}
_KNOWN_NAMES = [
    "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Authorization", "CSeq",
    "Call-ID", "Call-Info", "Contact", "Content-Disposition", "Content-Encoding", "Content-Language",
    "Content-Length", "Content-Type", "Date", "Error-Info", "Event", "Expires", "From", "In-Reply-To",
    "Max-Forwards", "MIME-Version", "Min-Expires", "Organization", "Priority", "Proxy-Authenticate",
    "Proxy-Authorization", "Proxy-Require", "Reason", "Record-Route", "Refer-To", "Referred-By",
    "Replaces", "Reply-To", "Require", "Retry-After", "Route", "Server", "Subject", "Subscription-State",
    "Supported", "Timestamp", "To", "Unsupported", "User-Agent", "Via", "WWW-Authenticate", "Warning",
    "Allow-Events", "Session-Expires", "Min-SE",
]
_CANONICAL = {name.lower(): name for name in _KNOWN_NAMES}
_CANONICAL.update({full.lower(): full for full in COMPACT_FORMS.values()})
# Headers whose grammar is a comma-separated list (RFC 3261 section 7.3.1); each element is
# stored as its own entry. Authorization and WWW-Authenticate are not lists: their commas
# separate parameters.
LIST_HEADERS = frozenset(
    name.lower()
    for name in (
        "Via", "Contact", "Route", "Record-Route", "Allow", "Supported", "Require", "Proxy-Require",
        "Unsupported", "Accept", "Accept-Encoding", "Accept-Language", "Content-Encoding",
        "Content-Language", "Allow-Events", "In-Reply-To", "Error-Info", "Alert-Info", "Call-Info", "Warning",
    )
)

# List headers written as one comma-separated line; Via, Route and Contact keep one line each.
_JOINED_ON_OUTPUT = LIST_HEADERS - {"via", "route", "record-route", "contact", "warning"}

REASON_PHRASES = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued", 183: "Session Progress",
    200: "OK", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 407: "Proxy Authentication Required", 408: "Request Timeout",
    413: "Request Entity Too Large", 415: "Unsupported Media Type", 416: "Unsupported URI Scheme",
    420: "Bad Extension", 480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    482: "Loop Detected", 483: "Too Many Hops", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 489: "Bad Event", 491: "Request Pending", 500: "Server Internal Error", 501: "Not Implemented",
    503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported", 513: "Message Too Large",
    603: "Decline",
}

_TOKEN_RE = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")
_HOSTNAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9\-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9\-]*[A-Za-z0-9])?)*\.?$")
# Characters that can never appear unescaped in a URI (RFC 3986 plus the SIP delimiters).
_URI_FORBIDDEN = frozenset(' \t\r\n<>"{}|\\^`')
_CSEQ_RE = re.compile(r"^(\d{1,10})\s+(\S+)$")
_VIA_RE = re.compile(r"^SIP\s*/\s*2\.0\s*/\s*([A-Za-z0-9\-.!%*_+`'~]+)\s+(.+)$", re.IGNORECASE | re.DOTALL)
_URI_SCHEMES = ("sip", "sips", "tel")


def is_token(text: str) -> bool:
    return bool(_TOKEN_RE.match(text))


def canonical_name(name: str) -> str:
    """Return the registered spelling of a header name, expanding compact forms."""
    lower = name.lower()
    if lower in COMPACT_FORMS:
        return COMPACT_FORMS[lower]
    return _CANONICAL.get(lower, name)


def split_quoted(text: str, separator: str) -> list[str]:
    """Split on `separator` outside double quotes and angle brackets, as RFC 3261 lists need."""
    parts: list[str] = []
    current: list[str] = []
    in_quotes = False
    angle_depth = 0
    escaped = False
    for char in text:
        if in_quotes:
            current.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_quotes = False
            continue
        if char == '"':
            in_quotes = True
        elif char == "<":
            angle_depth += 1
        elif char == ">" and angle_depth:
            angle_depth -= 1
        elif char == separator and angle_depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    if in_quotes:
        raise SipParseError(f"unterminated quoted string in {text[:60]!r}; close it with a double quote")
    parts.append("".join(current))
    return parts


def unquote(text: str) -> str:
    """Remove the quotes and backslash escapes of an RFC 3261 quoted-string."""
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1], flags=re.DOTALL)
    return text


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_params(text: str, where: str) -> dict[str, str | None]:
    """Parse `;name=value;flag` parameters; names are case-insensitive and stored in lower case."""
    params: dict[str, str | None] = {}
    for part in split_quoted(text, ";"):
        part = part.strip()
        if not part:
            continue
        name, sep, value = part.partition("=")
        name = name.strip().lower()
        if not is_token(name):
            raise SipParseError(f"{where}: invalid parameter name {name[:40]!r}")
        params[name] = unquote(value.strip()) if sep else None
    return params


def format_params(params: dict[str, str | None]) -> str:
    out = []
    for name, value in params.items():
        if value is None:
            out.append(f";{name}")
        elif value == "" or not all(is_token(piece) for piece in value.replace(":", "x").split(".") if piece):
            out.append(f";{name}={quote(value)}")
        else:
            out.append(f";{name}={value}")
    return "".join(out)


def _parse_port(text: str, where: str) -> int:
    if not text.isdigit() or len(text) > 5 or not 1 <= int(text) <= 65535:
        raise SipParseError(f"{where}: invalid port {text[:20]!r}; expected 1-65535")
    return int(text)


def _parse_host(text: str, where: str) -> str:
    if text.startswith("["):
        if not text.endswith("]"):
            raise SipParseError(f"{where}: IPv6 reference {text[:50]!r} has no closing ']'")
        try:
            ipaddress.IPv6Address(text[1:-1])
        except ValueError:
            raise SipParseError(f"{where}: invalid IPv6 address {text[:50]!r}") from None
        return text
    if not text or not _HOSTNAME_RE.match(text):
        raise SipParseError(f"{where}: invalid host {text[:50]!r}; expected a hostname or IP address")
    return text


def parse_hostport(text: str, where: str) -> tuple[str, int | None]:
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise SipParseError(f"{where}: IPv6 reference {text[:50]!r} has no closing ']'")
        host, rest = text[: end + 1], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise SipParseError(f"{where}: unexpected {rest[:20]!r} after the IPv6 host")
        return _parse_host(host, where), _parse_port(rest[1:], where) if rest else None
    host, sep, port = text.partition(":")
    return _parse_host(host, where), _parse_port(port, where) if sep else None


@dataclass(frozen=True)
class SipUri:
    """A sip:, sips: or tel: URI (RFC 3261 section 19.1, RFC 3966). For tel: `host` is the number."""

    scheme: str
    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        if self.scheme == "tel":
            return f"tel:{self.host}{format_params(self.params)}"
        userinfo = ""
        if self.user is not None:
            userinfo = self.user + (f":{self.password}" if self.password is not None else "") + "@"
        port = f":{self.port}" if self.port is not None else ""
        text = f"{self.scheme}:{userinfo}{self.host}{port}{format_params(self.params)}"
        if self.headers:
            text += "?" + "&".join(f"{name}={value}" for name, value in self.headers.items())
        return text

    @property
    def address(self) -> tuple[str, int]:
        """Host and port to send to, without DNS: the default port is 5060."""
        return self.host.strip("[]"), self.port or DEFAULT_SIP_PORT


def parse_uri(text: str) -> SipUri:
    """Parse a sip:, sips: or tel: URI; other schemes raise SipParseError with status 416."""
    text = text.strip()
    if any(char in _URI_FORBIDDEN for char in text):
        raise SipParseError(f"URI {text[:60]!r} contains a space, quote or angle bracket; escape it as %XX")
    scheme, sep, rest = text.partition(":")
    scheme = scheme.lower()
    if not sep or not scheme or not re.match(r"^[a-z][a-z0-9+\-.]*$", scheme):
        raise SipParseError(f"invalid URI {text[:60]!r}; expected scheme:address such as sip:user@host")
    if scheme not in _URI_SCHEMES:
        raise SipParseError(
            f"URI scheme {scheme[:20]!r} is not supported; use sip, sips or tel",
            status=416,
            reason="Unsupported URI Scheme",
        )
    if scheme == "tel":
        number, _, params = rest.partition(";")
        if not number or not re.match(r"^[0-9A-Fa-f*#+\-.()pw]+$", number):
            raise SipParseError(f"tel URI {text[:60]!r} has an invalid number")
        return SipUri(scheme="tel", host=number, params=parse_params(params, "tel URI"))
    rest, _, header_text = rest.partition("?")
    user = password = None
    if "@" in rest:
        userinfo, rest = rest.rsplit("@", 1)
        user, has_password, password_text = userinfo.partition(":")
        if not user:
            raise SipParseError(f"URI {text[:60]!r} has an empty user part before '@'")
        password = password_text if has_password else None
    hostport, _, param_text = rest.partition(";")
    host, port = parse_hostport(hostport, f"URI {text[:60]!r}")
    headers: dict[str, str] = {}
    for item in header_text.split("&") if header_text else ():
        name, eq, value = item.partition("=")
        if not name or not eq:
            raise SipParseError(f"URI {text[:60]!r} has an invalid header {item[:40]!r}; expected name=value")
        headers[name] = value
    return SipUri(
        scheme=scheme,
        host=host,
        user=user,
        password=password,
        port=port,
        params=parse_params(param_text, f"URI {text[:60]!r}"),
        headers=headers,
    )


@dataclass(frozen=True)
class NameAddr:
    """A name-addr or addr-spec with header parameters: From, To, Contact, Route, Refer-To."""

    uri: SipUri
    display_name: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def with_tag(self, tag: str) -> NameAddr:
        return NameAddr(uri=self.uri, display_name=self.display_name, params={**self.params, "tag": tag})

    def __str__(self) -> str:
        name = f"{quote(self.display_name)} " if self.display_name else ""
        return f"{name}<{self.uri}>{format_params(self.params)}"


def parse_name_addr(text: str, where: str) -> NameAddr:
    text = text.strip()
    display: str | None = None
    if text.startswith('"'):
        end = 1
        while end < len(text) and text[end] != '"':
            end += 2 if text[end] == "\\" else 1
        if end >= len(text):
            raise SipParseError(f"{where}: unterminated display name in {text[:60]!r}")
        display = unquote(text[: end + 1])
        text = text[end + 1 :].lstrip()
        if not text.startswith("<"):
            raise SipParseError(f"{where}: expected <URI> after the display name in {text[:60]!r}")
    if "<" in text:
        before, _, after = text.partition("<")
        uri_text, closed, param_text = after.partition(">")
        if not closed:
            raise SipParseError(f"{where}: missing '>' in {text[:60]!r}")
        if display is None and before.strip():
            display = before.strip()
        param_text = param_text.strip()
        if param_text and not param_text.startswith(";"):
            raise SipParseError(f"{where}: unexpected {param_text[:30]!r} after the URI")
    else:
        # addr-spec form: parameters after the URI belong to the header, not the URI.
        uri_text, _, param_text = text.partition(";")
    return NameAddr(uri=parse_uri(uri_text), display_name=display, params=parse_params(param_text, where))


@dataclass(frozen=True)
class Via:
    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def sent_by(self) -> tuple[str, int]:
        return self.host.strip("[]"), self.port or DEFAULT_SIP_PORT

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"SIP/2.0/{self.transport} {self.host}{port}{format_params(self.params)}"


def parse_via(text: str) -> Via:
    match = _VIA_RE.match(text.strip())
    if not match:
        raise SipParseError(f"invalid Via {text[:60]!r}; expected SIP/2.0/UDP host:port;branch=...")
    transport, rest = match.group(1).upper(), match.group(2)
    sent_by, _, param_text = rest.partition(";")
    host, port = parse_hostport(sent_by, "Via")
    params = parse_params(param_text, "Via")
    rport = params.get("rport")
    if rport:
        _parse_port(rport, "Via rport")
    return Via(transport=transport, host=host, port=port, params=params)


@dataclass(frozen=True)
class CSeq:
    number: int
    method: str

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


def parse_cseq(text: str) -> CSeq:
    match = _CSEQ_RE.match(text.strip())
    if not match or not is_token(match.group(2)) or int(match.group(1)) >= 2**31:
        raise SipParseError(f"invalid CSeq {text[:40]!r}; expected a number below 2**31 and a method")
    return CSeq(number=int(match.group(1)), method=match.group(2))


class Headers:
    """Ordered, case-insensitive multi-map of header fields; list headers hold one element per entry."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = []
        for name, value in items:
            self.add(name, value)

    def add(self, name: str, value: str) -> None:
        self._items.append((canonical_name(name), value))

    def set(self, name: str, value: str) -> None:
        self.remove(name)
        self.add(name, value)

    def remove(self, name: str) -> None:
        lower = canonical_name(name).lower()
        self._items = [(n, v) for n, v in self._items if n.lower() != lower]

    def get(self, name: str, default: str | None = None) -> str | None:
        lower = canonical_name(name).lower()
        for item_name, value in self._items:
            if item_name.lower() == lower:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        lower = canonical_name(name).lower()
        return [value for item_name, value in self._items if item_name.lower() == lower]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def copy(self) -> Headers:
        return Headers(self._items)


class _MessageBase:
    headers: Headers
    body: bytes

    @property
    def call_id(self) -> str:
        return self.headers.get("Call-ID") or ""

    @property
    def cseq(self) -> CSeq:
        return parse_cseq(self.headers.get("CSeq") or "")

    @property
    def from_(self) -> NameAddr:
        return parse_name_addr(self.headers.get("From") or "", "From")

    @property
    def to(self) -> NameAddr:
        return parse_name_addr(self.headers.get("To") or "", "To")

    @property
    def vias(self) -> list[Via]:
        return [parse_via(value) for value in self.headers.get_all("Via")]

    @property
    def contact(self) -> NameAddr | None:
        value = self.headers.get("Contact")
        if value is None or value.strip() == "*":
            return None
        return parse_name_addr(value, "Contact")

    @property
    def content_type(self) -> str:
        """Media type in lower case without parameters, or '' when absent."""
        return (self.headers.get("Content-Type") or "").partition(";")[0].strip().lower()

    def _serialise(self, start_line: str) -> bytes:
        lines = [start_line]
        previous = ""
        for name, value in self.headers:
            if name == "Content-Length":
                continue
            if name == previous and name.lower() in _JOINED_ON_OUTPUT:
                lines[-1] += f", {value}"
            else:
                lines.append(f"{name}: {value}")
            previous = name
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body


@dataclass
class SipRequest(_MessageBase):
    method: str
    uri: SipUri
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def to_bytes(self) -> bytes:
        return self._serialise(f"{self.method} {self.uri} {SIP_VERSION}")


@dataclass
class SipResponse(_MessageBase):
    status: int
    reason: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def to_bytes(self) -> bytes:
        return self._serialise(f"{SIP_VERSION} {self.status} {self.reason}")


SipMessage = Union[SipRequest, SipResponse]


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    crlf = data.find(b"\r\n\r\n")
    lf = data.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf < lf):
        return data[:crlf], data[crlf + 4 :]
    if lf >= 0:
        # Bare LF line ends break RFC 3261 but some test tools send them; accept them.
        return data[:lf], data[lf + 2 :]
    raise SipParseError("message has no empty line after the headers; end the header section with CRLF CRLF")


def _header_lines(head: str, max_headers: int) -> list[tuple[str, str]]:
    fields: list[list[str]] = []
    for line in head.split("\n"):
        if line.endswith("\r"):
            line = line[:-1]
        if "\r" in line or "\x00" in line:
            raise SipParseError("header section contains a bare CR or NUL byte")
        if line[:1] in (" ", "\t"):
            # Folded continuation line (RFC 3261 section 7.3.1): joined with one space.
            if not fields:
                raise SipParseError("first header line starts with whitespace; folded lines need a header before them")
            fields[-1][1] += " " + line.strip()
            continue
        if not line:
            raise SipParseError("empty line inside the header section")
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")
        if not colon or not is_token(name):
            raise SipParseError(f"invalid header line {line[:60]!r}; expected Name: value")
        fields.append([name, value.strip()])
        if len(fields) > max_headers:
            raise SipParseError(f"message has more than {max_headers} header lines; remove unneeded headers")
    return [(name, value) for name, value in fields]


def _parse_start_line(line: str) -> SipRequest | SipResponse:
    if line.upper().startswith("SIP/"):
        parts = line.split(" ", 2)
        version = parts[0]
        if version.upper() != SIP_VERSION:
            raise SipParseError(f"version {version[:20]!r} is not supported; use SIP/2.0", status=505,
                                reason="Version Not Supported")
        if len(parts) < 2 or not re.match(r"^[1-6]\d\d$", parts[1]):
            raise SipParseError(f"invalid status line {line[:60]!r}; expected SIP/2.0 <100-699> <reason>")
        return SipResponse(status=int(parts[1]), reason=parts[2] if len(parts) > 2 else "")
    parts = line.split(" ")
    if len(parts) != 3:
        raise SipParseError(f"invalid request line {line[:60]!r}; expected METHOD URI SIP/2.0 with single spaces")
    method, uri_text, version = parts
    if not is_token(method):
        raise SipParseError(f"invalid method {method[:20]!r}")
    if not version.upper().startswith("SIP/"):
        raise SipParseError(f"invalid request line {line[:60]!r}; it must end with SIP/2.0")
    if version.upper() != SIP_VERSION:
        raise SipParseError(f"version {version[:20]!r} is not supported; use SIP/2.0", status=505,
                            reason="Version Not Supported")
    return SipRequest(method=method, uri=parse_uri(uri_text))


def _content_length(headers: Headers) -> int | None:
    values = {value.strip() for value in headers.get_all("Content-Length")}
    if not values:
        return None
    if len(values) > 1:
        raise SipParseError(f"conflicting Content-Length values {sorted(values)[:3]}")
    text = values.pop()
    if not text.isdigit() or len(text) > 9:
        raise SipParseError(f"invalid Content-Length {text[:20]!r}; expected a non-negative integer")
    return int(text)


def _validate(message: SipRequest | SipResponse) -> None:
    for name in ("Call-ID", "From", "To", "CSeq"):
        if not message.headers.get(name):
            raise SipParseError(f"missing mandatory header {name}")
    if not message.headers.get_all("Via"):
        raise SipParseError("missing mandatory header Via")
    if len(message.headers.get_all("Call-ID")) > 1 or re.search(r"\s", message.call_id):
        raise SipParseError(f"invalid Call-ID {message.call_id[:40]!r}; expected one word without whitespace")
    for name in ("From", "To", "CSeq"):
        if len(message.headers.get_all(name)) > 1:
            raise SipParseError(f"header {name} appears more than once")
    # Parse the structured headers once here, so later property reads on a parsed message
    # cannot raise.
    message.vias, message.from_, message.to
    cseq = message.cseq
    for contact in message.headers.get_all("Contact"):
        if contact.strip() != "*":
            parse_name_addr(contact, "Contact")
    for name in ("Route", "Record-Route"):
        for value in message.headers.get_all(name):
            parse_name_addr(value, name)
    max_forwards = message.headers.get("Max-Forwards")
    if max_forwards is not None and (not max_forwards.isdigit() or int(max_forwards) > 255):
        raise SipParseError(f"invalid Max-Forwards {max_forwards[:20]!r}; expected 0-255")
    if isinstance(message, SipRequest) and cseq.method != message.method:
        raise SipParseError(f"CSeq method {cseq.method[:20]!r} does not match the request method {message.method}")


def parse_message(
    data: bytes,
    *,
    datagram: bool = True,
    max_message_bytes: int = MAX_MESSAGE_BYTES,
    max_headers: int = MAX_HEADERS,
) -> SipRequest | SipResponse:
    """Parse one SIP message; raise SipParseError (never anything else) for malformed input.

    `datagram` is True for UDP: the body is the rest of the datagram and a Content-Length
    larger than the rest means a truncated message. On a stream the framer has already cut
    the message at Content-Length, and a missing Content-Length means an empty body.
    """
    if len(data) > max_message_bytes:
        raise SipParseError(
            f"message of {len(data)} bytes exceeds the {max_message_bytes}-byte limit",
            status=513,
            reason="Message Too Large",
        )
    data = data.lstrip(b"\r\n")
    head_bytes, rest = _split_head(data)
    try:
        head = head_bytes.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SipParseError(f"header section is not valid UTF-8 (byte {e.start})") from None
    start_line, _, header_text = head.partition("\n")
    message = _parse_start_line(start_line.rstrip("\r"))
    headers = Headers()
    for name, value in _header_lines(header_text, max_headers) if header_text else ():
        if canonical_name(name).lower() in LIST_HEADERS:
            for element in split_quoted(value, ","):
                if element.strip():
                    headers.add(name, element.strip())
        else:
            headers.add(name, value)
    message.headers = headers
    length = _content_length(headers)
    if length is None:
        message.body = rest if datagram else b""
    elif length > len(rest):
        raise SipParseError(
            f"Content-Length {length} is larger than the {len(rest)} body bytes received; the message was truncated"
        )
    else:
        message.body = rest[:length]
    _validate(message)
    return message


def make_response(
    request: SipRequest,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> SipResponse:
    """Build a response that copies Via, From, To, Call-ID and CSeq (RFC 3261 section 8.2.6.2)."""
    response = SipResponse(status=status, reason=reason or REASON_PHRASES.get(status, "Unknown"))
    for via in request.headers.get_all("Via"):
        response.headers.add("Via", via)
    response.headers.add("From", request.headers.get("From") or "")
    to = request.to
    if to_tag is not None and to.tag is None and status != 100:
        response.headers.add("To", str(to.with_tag(to_tag)))
    else:
        response.headers.add("To", request.headers.get("To") or "")
    response.headers.add("Call-ID", request.call_id)
    response.headers.add("CSeq", request.headers.get("CSeq") or "")
    for name, value in headers:
        response.headers.add(name, value)
    response.body = body
    return response
