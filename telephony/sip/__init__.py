"""SIP user agent for calls from a PBX or SBC: pure protocol core plus asyncio transports.

See docs/sip.md for the design, the supported subset of RFC 3261 and the configuration.
"""

from telephony.sip.auth import DigestAuthenticator
from telephony.sip.callstate import UserAgentConfig
from telephony.sip.errors import SdpError, SdpNegotiationError, SipError, SipParseError
from telephony.sip.events import (
    Action,
    CallAnswered,
    CallEnded,
    CallProgress,
    DtmfInfo,
    Event,
    HoldChanged,
    IncomingCall,
    MediaChanged,
    ReferResult,
    SendMessage,
)
from telephony.sip.transaction import TimerConfig
from telephony.sip.uas import SipUserAgent

__all__ = [
    "Action",
    "CallAnswered",
    "CallEnded",
    "CallProgress",
    "DigestAuthenticator",
    "DtmfInfo",
    "Event",
    "HoldChanged",
    "IncomingCall",
    "MediaChanged",
    "ReferResult",
    "SdpError",
    "SdpNegotiationError",
    "SendMessage",
    "SipError",
    "SipParseError",
    "SipUserAgent",
    "TimerConfig",
    "UserAgentConfig",
]
