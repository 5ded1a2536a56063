"""SIP gateway: answers SIP calls with the voicebot pipeline over RTP and transfers them to people.

See docs/sip-gateway.md for settings, transfers, the handoff context endpoint and limits.
"""

from telephony.gateway.gateway import SipGateway, start_sip_gateway
from telephony.gateway.handoff import HANDOFF_ID_HEADER, REASON_HEADER, add_sip_routes
from telephony.gateway.settings import SipSettings

__all__ = ["HANDOFF_ID_HEADER", "REASON_HEADER", "SipGateway", "SipSettings", "add_sip_routes", "start_sip_gateway"]
