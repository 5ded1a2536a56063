"""RTP media for SIP calls: pure packet, DTMF, jitter-buffer and packetizer state machines, and an asyncio socket adapter."""
