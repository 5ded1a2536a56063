"""SIP digest authentication of inbound requests (RFC 3261 section 22, RFC 2617 and RFC 7616, MD5).

Nonces are stateless: each one carries its creation time and an HMAC of that time under a
server secret, so any process that knows the secret can verify it until it expires.

NOTE: nonce counts (nc) are not tracked, so a captured Authorization header can be replayed
until its nonce expires (nonce_lifetime_s). Combine digest with allowed_networks.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Mapping

from telephony.sip.errors import SipParseError
from telephony.sip.message import SipRequest, quote, split_quoted, unquote
from voicebot.errors import ConfigError


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def parse_digest(value: str) -> dict[str, str]:
    """Parse `Digest name=value, ...` from an Authorization header; raise SipParseError if malformed."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise SipParseError(f"authorization scheme {scheme[:20]!r} is not supported; use Digest")
    params: dict[str, str] = {}
    for part in split_quoted(rest, ","):
        name, eq, item = part.strip().partition("=")
        if not eq or not name.strip():
            raise SipParseError(f"invalid digest parameter {part.strip()[:40]!r}; expected name=value")
        params[name.strip().lower()] = unquote(item.strip())
    return params


@dataclass
class DigestAuthenticator:
    """Challenge requests with 401 (or 407 when `proxy`) and verify their MD5 digest responses."""

    realm: str
    # Username to password. Passwords stay in memory only; they are never logged.
    credentials: Mapping[str, str] = field(repr=False)
    nonce_lifetime_s: float = 300.0
    proxy: bool = False
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)

    def __post_init__(self) -> None:
        if not self.realm or '"' in self.realm:
            raise ConfigError(f"digest realm {self.realm!r} must be non-empty and contain no double quote")
        if not self.credentials:
            raise ConfigError("digest authentication needs at least one username and password in credentials")
        if self.nonce_lifetime_s <= 0:
            raise ConfigError(f"nonce_lifetime_s={self.nonce_lifetime_s} must be positive seconds")

    @property
    def status(self) -> int:
        return 407 if self.proxy else 401

    @property
    def challenge_header(self) -> str:
        return "Proxy-Authenticate" if self.proxy else "WWW-Authenticate"

    @property
    def credentials_header(self) -> str:
        return "Proxy-Authorization" if self.proxy else "Authorization"

    def _nonce_mac(self, issued_ms: int) -> str:
        return hmac.new(self.secret, str(issued_ms).encode("ascii"), hashlib.sha256).hexdigest()[:32]

    def new_nonce(self, now: float) -> str:
        issued_ms = int(now * 1000)
        return f"{issued_ms:x}.{self._nonce_mac(issued_ms)}"

    def challenge(self, now: float, *, stale: bool = False) -> str:
        """Return the value of a WWW-Authenticate (or Proxy-Authenticate) header."""
        value = f"Digest realm={quote(self.realm)}, nonce={quote(self.new_nonce(now))}, algorithm=MD5, qop=\"auth\""
        return value + (", stale=true" if stale else "")

    def _nonce_age_s(self, nonce: str, now: float) -> float | None:
        issued_hex, _, mac = nonce.partition(".")
        if not issued_hex or len(issued_hex) > 16 or any(c not in "0123456789abcdef" for c in issued_hex):
            return None
        issued_ms = int(issued_hex, 16)
        if not hmac.compare_digest(mac, self._nonce_mac(issued_ms)):
            return None
        return now - issued_ms / 1000

    def verify(self, request: SipRequest, now: float) -> tuple[bool, bool]:
        """Return (authorised, stale) for the request's credentials; stale means resend with a new nonce."""
        for value in request.headers.get_all(self.credentials_header):
            try:
                params = parse_digest(value)
            except SipParseError:
                continue
            if params.get("realm") != self.realm:
                continue
            password = self.credentials.get(params.get("username", ""))
            nonce = params.get("nonce", "")
            age_s = self._nonce_age_s(nonce, now)
            if password is None or age_s is None or params.get("algorithm", "MD5").upper() != "MD5":
                return False, False
            ha1 = _md5(f"{params['username']}:{self.realm}:{password}")
            ha2 = _md5(f"{request.method}:{params.get('uri', '')}")
            qop = params.get("qop")
            if qop == "auth":
                expected = _md5(f"{ha1}:{nonce}:{params.get('nc', '')}:{params.get('cnonce', '')}:auth:{ha2}")
            elif qop is None:
                expected = _md5(f"{ha1}:{nonce}:{ha2}")
            else:
                return False, False
            if not hmac.compare_digest(expected, params.get("response", "").lower()):
                return False, False
            if age_s > self.nonce_lifetime_s or age_s < -1.0:
                return False, True
            return True, False
        return False, False
