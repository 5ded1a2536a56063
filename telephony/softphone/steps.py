"""Caller steps of a test call: a WAV file spoken as one turn, or keypad presses (DTMF)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Union

from telephony.mediastream import DTMF_DIGITS
from voicebot.errors import ConfigError

# Time between two key presses in caller-clock seconds (divided by --speed). An estimate of a
# caller keying a number they know. It stays well below the service's 2 s inter-digit timeout
# (DTMF_INTERDIGIT_TIMEOUT_S in voicebot/pipeline/dialog.py), after which the service takes
# the keys pressed so far as the whole entry.
KEY_PRESS_INTERVAL_S = 0.35

KEYS_FIX = "write only the keypad keys 0-9, *, # and A-D, e.g. --keys 6288#"


def check_keys(keys: str) -> str:
    """Check that `keys` contains only DTMF keys and return it.

    Raises ConfigError naming the value and the invalid key otherwise.
    """
    if not keys:
        raise ConfigError(f"no keys given; {KEYS_FIX}")
    for key in keys:
        if key not in DTMF_DIGITS:
            hint = " (upper case)" if key.upper() in DTMF_DIGITS else ""
            raise ConfigError(f"invalid keys {keys!r}: {key!r} is not a keypad key{hint}; {KEYS_FIX}")
    return keys


@dataclass(frozen=True)
class KeyPresses:
    """One caller turn of keypad presses, sent as Twilio `dtmf` events one key at a time.

    The service takes `#` as the end of an entry. Without a final `#` it waits for its
    inter-digit timeout before it replies.
    """

    keys: str

    def __post_init__(self) -> None:
        check_keys(self.keys)


CallerStep = Union[str, Path, KeyPresses]
"""A WAV file path (one spoken turn) or `KeyPresses`."""
