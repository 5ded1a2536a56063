"""Settings of the SIP gateway, built once at start-up from keyword arguments or VOICEBOT_SIP_* variables."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from telephony.sip import sdp
from telephony.sip.errors import SipParseError
from telephony.sip.message import parse_uri
from voicebot.errors import ConfigError

TRANSFER_MODES = ("blind", "warm")
# Ways a warm transfer can join the caller to the rep after the whisper.
WARM_TRANSFER_CONNECTS = ("bridge", "replaces")
TRANSPORTS = ("udp", "tcp")


@dataclass(frozen=True, kw_only=True)
class SipSettings:
    """What the SIP gateway listens on, whom it accepts and where it transfers calls. Durations are in seconds."""

    # Address the SIP server and the RTP sockets bind to. It is also written into Via, Contact
    # and the SDP, so it must be the address the PBX reaches (no NAT traversal is done).
    host: str = "127.0.0.1"
    port: int = 5060
    transports: tuple[str, ...] = TRANSPORTS
    codecs: tuple[str, ...] = sdp.SUPPORTED_CODECS
    # CIDR networks allowed to send SIP requests; empty allows every source.
    allowed_networks: tuple[str, ...] = ()
    # Username to password for digest authentication of new INVITEs; empty turns it off.
    digest_users: Mapping[str, str] = field(default_factory=dict, repr=False)
    digest_realm: str = "voicebot"
    max_calls: int = 20
    retry_after_s: int = 30
    # Inclusive range of UDP ports for RTP; each call takes one even port.
    rtp_port_range: tuple[int, int] = (20000, 20999)
    # Time between 180 Ringing and 200 OK. The caller can CANCEL in this window.
    ring_s: float = 0.0
    # "blind": REFER the caller to `queue_uri`. "warm": consult call to a rep, whisper, bridge.
    transfer_mode: str = "blind"
    queue_uri: str | None = None
    rep_uris: tuple[str, ...] = ()
    # Warm transfers only. "bridge": the gateway relays media between the caller's and the rep's
    # legs. "replaces": REFER the caller to the rep with Replaces naming the consult call
    # (RFC 3891, RFC 5589 attended transfer), and bridge instead if the caller's side rejects it.
    warm_transfer_connect: str = "bridge"
    # How long a consult call may ring before the gateway cancels it.
    consult_timeout_s: float = 20.0
    # How long a REFER may wait for its final NOTIFY before the bot takes the call back.
    refer_timeout_s: float = 30.0
    # Lifetime of the handoff context in Redis (key voicebot:sip:handoff:{id}).
    handoff_ttl_s: int = 3600
    # Time allowed for a call's pipeline and RTP to stop after BYE or CANCEL.
    hangup_timeout_s: float = 2.0
    language: str | None = None
    centre: str = "default"

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"SIP port {self.port} is out of range; use 1-65535, or 0 to pick a free port")
        unknown = [t for t in self.transports if t not in TRANSPORTS]
        if not self.transports or unknown:
            raise ConfigError(f"SIP transports {self.transports!r} must be a non-empty subset of {TRANSPORTS}")
        bad_codecs = [c for c in self.codecs if c not in sdp.SUPPORTED_CODECS]
        if not self.codecs or bad_codecs:
            raise ConfigError(f"SIP codecs {self.codecs!r} must be a non-empty subset of {sdp.SUPPORTED_CODECS}")
        for network in self.allowed_networks:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ConfigError(f"allowed network {network!r} is not a CIDR network such as 10.0.0.0/8") from None
        if self.max_calls < 1:
            raise ConfigError(f"SIP max_calls={self.max_calls} must be at least 1")
        low, high = self.rtp_port_range
        if not 1024 <= low < high <= 65535:
            raise ConfigError(f"RTP port range {low}-{high} is invalid; use 1024 <= low < high <= 65535")
        if self.transfer_mode not in TRANSFER_MODES:
            raise ConfigError(f"transfer mode {self.transfer_mode!r} is unknown; use one of {TRANSFER_MODES}")
        if self.warm_transfer_connect not in WARM_TRANSFER_CONNECTS:
            raise ConfigError(
                f"warm_transfer_connect={self.warm_transfer_connect!r} is invalid; "
                f"set VOICEBOT_SIP_WARM_TRANSFER_CONNECT to one of {WARM_TRANSFER_CONNECTS}"
            )
        for uri in ((self.queue_uri,) if self.queue_uri else ()) + self.rep_uris:
            try:
                parse_uri(uri)
            except SipParseError as e:
                raise ConfigError(f"transfer target {uri!r} is not a SIP URI such as sip:queue@10.0.0.9:5060") from e
        for name in ("ring_s", "consult_timeout_s", "refer_timeout_s", "hangup_timeout_s"):
            if getattr(self, name) < 0:
                raise ConfigError(f"SIP {name}={getattr(self, name)} must be zero or more seconds")
        if self.handoff_ttl_s <= 0:
            raise ConfigError(f"handoff_ttl_s={self.handoff_ttl_s} must be a positive number of seconds")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> SipSettings:
        """Build settings from VOICEBOT_SIP_* variables (see docs/sip-gateway.md); `overrides` win."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}

        def text(name: str) -> str | None:
            value = env.get(f"VOICEBOT_SIP_{name}")
            return value.strip() if value is not None and value.strip() else None

        def items(name: str) -> tuple[str, ...] | None:
            value = text(name)
            return None if value is None else tuple(v.strip() for v in value.split(",") if v.strip())

        def number(name: str, kind: type) -> object | None:
            value = text(name)
            if value is None:
                return None
            try:
                return kind(value)
            except ValueError:
                raise ConfigError(f"VOICEBOT_SIP_{name}={value!r} is not a number; set it to a {kind.__name__}") from None

        for key, name in (("host", "HOST"), ("digest_realm", "DIGEST_REALM"), ("transfer_mode", "TRANSFER_MODE"),
                          ("queue_uri", "QUEUE_URI"), ("language", "LANGUAGE"), ("centre", "CENTRE"),
                          ("warm_transfer_connect", "WARM_TRANSFER_CONNECT")):
            if (value := text(name)) is not None:
                values[key] = value
        for key, name in (("transports", "TRANSPORTS"), ("allowed_networks", "ALLOWED_NETWORKS"),
                          ("rep_uris", "REP_URIS")):
            if (listed := items(name)) is not None:
                values[key] = tuple(v.lower() for v in listed) if key == "transports" else listed
        if (codecs := items("CODECS")) is not None:
            values["codecs"] = tuple(c.upper() for c in codecs)
        for key, name, kind in (("port", "PORT", int), ("max_calls", "MAX_CALLS", int),
                                ("retry_after_s", "RETRY_AFTER_S", int), ("handoff_ttl_s", "HANDOFF_TTL_S", int),
                                ("ring_s", "RING_S", float), ("consult_timeout_s", "CONSULT_TIMEOUT_S", float),
                                ("refer_timeout_s", "REFER_TIMEOUT_S", float),
                                ("hangup_timeout_s", "HANGUP_TIMEOUT_S", float)):
            if (parsed := number(name, kind)) is not None:
                values[key] = parsed
        if (users := items("DIGEST_USERS")) is not None:
            values["digest_users"] = _parse_users(users)
        if (ports := text("RTP_PORTS")) is not None:
            values["rtp_port_range"] = _parse_port_range(ports)
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


def _parse_users(entries: tuple[str, ...]) -> dict[str, str]:
    users = {}
    for entry in entries:
        name, colon, password = entry.partition(":")
        if not colon or not name or not password:
            raise ConfigError("VOICEBOT_SIP_DIGEST_USERS entries must look like user:password, separated by commas")
        users[name] = password
    return users


def _parse_port_range(value: str) -> tuple[int, int]:
    low, dash, high = value.partition("-")
    try:
        if not dash:
            raise ValueError(value)
        return int(low), int(high)
    except ValueError:
        raise ConfigError(f"VOICEBOT_SIP_RTP_PORTS={value!r} must look like 20000-20999") from None
