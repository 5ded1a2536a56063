"""Typed errors of voicebot.

Every error a user can meet says what was wrong, with the value, and what to do next.
`retryable` tells callers whether the same request may succeed later (a busy or dead
upstream) or will fail again until the input or configuration changes.
"""

from __future__ import annotations


class VoicebotError(Exception):
    """Base class of all errors raised by voicebot."""

    retryable: bool = False


class ConfigError(VoicebotError):
    """Invalid setting found at start-up."""


class ModelError(VoicebotError):
    """A model file is missing, corrupt or cannot be loaded."""


class ProtocolError(VoicebotError):
    """A peer sent a message that breaks the media-stream protocol."""


class AudioError(VoicebotError):
    """Audio that cannot be decoded or has an unsupported format."""


class KnowledgeBaseError(VoicebotError):
    """A file in dialogs/ is invalid. The message names the file, the entry and the fix."""


class UpstreamError(VoicebotError):
    """A service voicebot depends on (Redis, an LLM server) failed."""

    retryable = True


class OverloadedError(VoicebotError):
    """A bounded worker pool is full. The caller may retry after a short wait."""

    retryable = True
