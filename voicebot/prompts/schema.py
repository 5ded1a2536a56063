"""Allowed contents of the prompt files: keys, intents, template variables and centre settings."""

from __future__ import annotations

import re

from voicebot.dialog.flows import BUILTIN_VARIABLES as FLOW_BUILTIN_VARIABLES

# Message keys, centre names and flow message keys: lowercase ASCII identifiers.
KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")

# The file of the dialog's own messages. Its keys and their template variables are fixed
# by MESSAGE_VARIABLES, because the dialog code renders them by name.
MESSAGES_FILE = "messages.yaml"
# LLM system prompts and per-intent instructions.
SYSTEM_FILE = "system.yaml"
# Every other prompts/*.yaml (flows.yaml, ...) contains free message keys for flows.
CENTRES_DIR = "centres"
FLOWS_DIR = "flows"
# The FAQ knowledge base and the escalation policy, in the dialogs folder.
FAQ_FILE = "faq.yaml"
ESCALATION_FILE = "escalation.yaml"

# Template variables a flow message may use without the flow declaring them as slots.
# The flow engine fills them in, so its own list is the one checked here.
BUILTIN_VARIABLES: frozenset[str] = frozenset(FLOW_BUILTIN_VARIABLES)

# Step fields of a flow whose values are message keys, as the flow engine reads them.
FLOW_MESSAGE_FIELDS: tuple[str, ...] = ("say", "reprompt", "dtmf_prompt", "confirm")

# system.yaml: top-level keys. `system` and `grounding` are joined into the LLM system
# prompt of each language, and `intents` contains one instruction per intent.
SYSTEM_KEYS: tuple[str, ...] = ("system", "grounding", "intents")

# Intents with an instruction in system.yaml, with the template variables each instruction
# must contain. The LLM client fills them in: approved FAQ passages, and for the handoff
# summary the conversation so far, the handoff reasons and the slots already collected.
INTENT_VARIABLES: dict[str, frozenset[str]] = {
    "lost_card": frozenset(),
    "address_change": frozenset(),
    "card_activation": frozenset(),
    "bill_inquiry": frozenset(),
    "credit_limit_increase": frozenset(),
    "faq": frozenset({"passages"}),
    "free_form": frozenset({"passages"}),
    "summary_for_rep": frozenset({"conversation", "reasons", "collected"}),
}

# Intent instructions are read by the LLM, not spoken, so one Mandarin text is enough.
# A `yue` or `en` text, where present, is used for calls in that language.
INTENT_REQUIRED_LANGUAGES: tuple[str, ...] = ("zh",)

# Centre files: prompts/centres/<centre>.yaml.
CENTRE_KEYS: tuple[str, ...] = (
    "centre",
    "name",
    "automation_level",
    "auto_response_threshold",
    "escalation_sensitivity",
    "extras",
    "messages",
)
CENTRE_REQUIRED_KEYS: tuple[str, ...] = ("automation_level", "auto_response_threshold")
AUTOMATION_LEVELS: tuple[str, ...] = ("low", "medium", "high")
ESCALATION_SENSITIVITIES: tuple[str, ...] = ("low", "medium", "high")
CENTRE_EXTRAS: tuple[str, ...] = ("sentiment_analysis", "proactive_suggestions")

# Auto-response threshold bounds, on the responder's 0-1 confidence scale. Below 0.50 the
# bot would speak answers whose confidence is under one half as fact, and at 1.0 it would
# never speak one.
MIN_AUTO_RESPONSE_THRESHOLD = 0.50
MAX_AUTO_RESPONSE_THRESHOLD = 0.99

# Settings of a call whose centre has no file (centre "default"): the FAQ responder's
# default threshold and middle values.
DEFAULT_CENTRE = "default"
DEFAULT_AUTOMATION_LEVEL = "medium"
DEFAULT_AUTO_RESPONSE_THRESHOLD = 0.80
DEFAULT_ESCALATION_SENSITIVITY = "medium"

