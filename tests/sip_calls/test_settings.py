"""SipSettings: the warm-transfer connect option from keyword arguments and VOICEBOT_SIP_* variables."""

from __future__ import annotations

import pytest

from telephony.gateway import SipSettings
from voicebot.errors import ConfigError


def test_warm_transfer_connect_defaults_to_bridge():
    assert SipSettings().warm_transfer_connect == "bridge"


def test_warm_transfer_connect_from_env():
    settings = SipSettings.from_env({"VOICEBOT_SIP_WARM_TRANSFER_CONNECT": "replaces"})
    assert settings.warm_transfer_connect == "replaces"


def test_warm_transfer_connect_unknown_value_rejected():
    with pytest.raises(ConfigError) as error:
        SipSettings.from_env({"VOICEBOT_SIP_WARM_TRANSFER_CONNECT": "refer"})
    assert "'refer'" in str(error.value)
    assert "VOICEBOT_SIP_WARM_TRANSFER_CONNECT" in str(error.value)
    assert "'bridge', 'replaces'" in str(error.value)
