"""Per-call state and settings of the SIP user agent core."""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass, field
from typing import Callable

from telephony.sip import sdp
from telephony.sip.auth import DigestAuthenticator
from telephony.sip.dialog import Dialog
from telephony.sip.events import Address
from telephony.sip.message import MAX_HEADERS, MAX_MESSAGE_BYTES, SipRequest
from telephony.sip.transaction import ServerInviteTransaction, TimerConfig
from voicebot.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class UserAgentConfig:
    """Settings of the SIP user agent. Durations are in seconds."""

    # Address written into Via and Contact; the address the transport is bound to.
    host: str
    port: int
    user: str = "voicebot"
    codecs: tuple[str, ...] = sdp.SUPPORTED_CODECS
    # True: pick the first offered codec we support. False: pick by the order of `codecs`.
    prefer_offer_order: bool = True
    telephone_event: bool = True
    ptime_ms: int = sdp.DEFAULT_PTIME_MS
    # Networks (CIDR) allowed to send requests; empty allows every source. Requests from other
    # sources are dropped without a response, so scanners learn nothing.
    allowed_networks: tuple[str, ...] = ()
    digest: DigestAuthenticator | None = None
    # Returns False when no new call can be taken; the INVITE then gets 503 with Retry-After.
    capacity_available: Callable[[], bool] | None = None
    retry_after_s: int = 30
    timers: TimerConfig = field(default_factory=TimerConfig)
    max_message_bytes: int = MAX_MESSAGE_BYTES
    max_headers: int = MAX_HEADERS
    server_name: str = "voicebot"

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"SIP port {self.port} is out of range; use 1-65535 (0 only before binding)")
        unknown = [codec for codec in self.codecs if codec not in sdp.SUPPORTED_CODECS]
        if not self.codecs or unknown:
            raise ConfigError(f"codecs {self.codecs!r} must be a non-empty subset of {sdp.SUPPORTED_CODECS}")
        if self.retry_after_s < 0:
            raise ConfigError(f"retry_after_s={self.retry_after_s} must be zero or more seconds")
        for network in self.allowed_networks:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ConfigError(f"allowed_networks entry {network!r} is not a CIDR network such as 10.0.0.0/8")


@dataclass
class Call:
    """State of one call, inbound or placed by the bot, keyed by Call-ID."""

    call_id: str
    inbound: bool
    dialog: Dialog
    invite: SipRequest
    # Inbound: the caller's offer (None for an offer-less INVITE). Outbound: our offer.
    offer: sdp.SessionDescription | None
    media: sdp.MediaSelection | None = None
    local_rtp: Address | None = None
    local_sdp: sdp.SessionDescription | None = None
    session_id: int = field(default_factory=lambda: secrets.randbelow(2**31))
    session_version: int = 0
    server_tx: ServerInviteTransaction | None = None
    # 2xx retransmission by the UAS core (RFC 3261 section 13.3.1.4) until the ACK arrives.
    ok_response: bytes | None = None
    ok_cseq: int = 0
    ok_interval_s: float = 0.0
    # True when our 2xx carried the offer, so the ACK carries the answer.
    offer_in_ok: bool = False
    timers: dict[str, float] = field(default_factory=dict)
    confirmed: bool = False
    ended: bool = False
    # Outbound calls only.
    ack: SipRequest | None = None
    provisional_seen: bool = False
    cancel_requested: bool = False
