"""RTP media for SIP calls.

Pure packet, DTMF, jitter-buffer and packetizer state machines, and an asyncio socket adapter.
"""
