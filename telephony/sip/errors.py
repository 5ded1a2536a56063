"""Typed errors of the SIP and SDP code.

Each error carries the SIP status code a server answers with, so the user agent core can
turn any rejected input into a response without knowing which check failed.
"""

from __future__ import annotations

from voicebot.errors import ProtocolError


class SipError(ProtocolError):
    """A SIP peer sent something voicebot rejects; `status` is the response to send."""

    def __init__(self, message: str, *, status: int = 400, reason: str = "Bad Request") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class SipParseError(SipError):
    """A SIP message that breaks the RFC 3261 grammar or a size limit."""


class SdpError(SipError):
    """An SDP body that breaks the RFC 4566 grammar."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=400, reason="Bad Request")


class SdpNegotiationError(SipError):
    """An SDP offer with no media voicebot can accept (answered with 488)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=488, reason="Not Acceptable Here")
