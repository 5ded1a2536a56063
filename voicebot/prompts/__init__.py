"""Prompt and message files: validation, immutable versions, hot reload and rollback.

`load_bundle` validates prompts/ and the flows' message references and returns a
`PromptBundle`. `PromptStore` keeps every version in Redis, watches the files and
activates a new version only when the whole set is valid. See docs/prompts.md.
"""

from voicebot.prompts.bundle import CentreSettings, PromptBundle, build_bundle, load_bundle
from voicebot.prompts.store import PromptStore, PromptVersionError, VersionRecord

__all__ = [
    "CentreSettings",
    "PromptBundle",
    "PromptStore",
    "PromptVersionError",
    "VersionRecord",
    "build_bundle",
    "load_bundle",
]
