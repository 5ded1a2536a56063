"""Actions the SIP user agent core returns: messages to send and events for the application.

The core performs no I/O. Every call returns a list of these values in order; the transport
adapter sends each `SendMessage` and hands every other value to the application.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from telephony.sip.sdp import MediaSelection, SessionDescription

# (host, port) of a peer, as asyncio reports it.
Address = tuple[str, int]


@dataclass(frozen=True)
class SendMessage:
    """Send `data` to `address` over `transport` ("UDP" or "TCP")."""

    data: bytes
    address: Address
    transport: str


@dataclass(frozen=True)
class IncomingCall:
    """A new INVITE passed every check. Answer with `ring()`, `answer()` or `reject()`.

    `media` is the negotiated selection when the INVITE carried an offer, and None for an
    offer-less INVITE (the 200 OK then carries our offer and the ACK the answer).
    """

    call_id: str
    offer: SessionDescription | None
    media: MediaSelection | None
    from_uri: str
    to_uri: str
    headers: tuple[tuple[str, str], ...] = field(repr=False)
    source: Address
    transport: str


@dataclass(frozen=True)
class CallProgress:
    """A provisional response (180, 183) to an INVITE the bot sent."""

    call_id: str
    status: int
    reason: str


@dataclass(frozen=True)
class CallAnswered:
    """The call is established: the caller's ACK arrived, or the callee's 200 OK to our INVITE."""

    call_id: str
    media: MediaSelection | None


@dataclass(frozen=True)
class CallEnded:
    """The call is over. `reason` is one of the REASON_* strings; `status` the SIP code if any."""

    call_id: str
    reason: str
    status: int | None = None


@dataclass(frozen=True)
class HoldChanged:
    """A re-INVITE changed the hold state; `direction` is ours after the exchange."""

    call_id: str
    on_hold: bool
    direction: str
    media: MediaSelection


@dataclass(frozen=True)
class MediaChanged:
    """A re-INVITE or an ACK changed the remote RTP address, port or codec."""

    call_id: str
    media: MediaSelection


@dataclass(frozen=True)
class DtmfInfo:
    """A DTMF digit sent in SIP INFO (application/dtmf-relay or application/dtmf)."""

    call_id: str
    digit: str
    duration_ms: int | None


@dataclass(frozen=True)
class ReferResult:
    """Progress of a transfer the bot requested with REFER.

    `status` comes from the REFER response (202, 4xx, 408 on timeout) or from the sipfrag of
    a NOTIFY (100, 180, 200, 486 ...). `final` is True when no more reports will follow.
    """

    call_id: str
    status: int
    reason: str
    final: bool


Event = Union[IncomingCall, CallProgress, CallAnswered, CallEnded, HoldChanged, MediaChanged, DtmfInfo, ReferResult]
Action = Union[SendMessage, Event]

REASON_REMOTE_BYE = "remote-bye"
REASON_LOCAL_BYE = "local-bye"
REASON_CANCELLED = "cancelled"
REASON_REJECTED = "rejected"
REASON_ACK_TIMEOUT = "ack-timeout"
REASON_TIMEOUT = "timeout"
REASON_FAILED = "failed"
