"""Command line: `voicebot serve`, `voicebot call` and `voicebot demo`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from voicebot.config import REPO_ROOT, Settings, settings_from_env
from voicebot.errors import VoicebotError

logger = logging.getLogger("voicebot")

DEMO_CLIPS = ("faq_annual_fee.wav", "faq_card_activation.wav", "faq_installment_fee.wav")


def configure_logging(level: str) -> None:
    """Send stdlib logging to stderr and keep pipecat's loguru output at warnings only.

    pipecat logs frames at debug level, and frames carry transcripts, so its logger must
    stay above debug in production.
    """
    from loguru import logger as loguru_logger

    from voicebot.privacy import PiiRedactingFilter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(PiiRedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    loguru_logger.remove()
    loguru_logger.add(sys.stderr, level="WARNING")


def _add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="TCP port (serve: default 8080; demo: a free port; 0 picks a free port)")
    parser.add_argument("--redis-url", help="Redis for call records (default redis://127.0.0.1:6379/0)")
    parser.add_argument(
        "--whisper-model",
        help='"embedded" (Whisper base from PyPI packages, the default), a faster-whisper model name such as '
        "large-v3, or a path to a CTranslate2 model folder",
    )
    parser.add_argument("--max-calls", type=int, help="maximum calls served at once; more are rejected with close code 1013 (default 8)")
    parser.add_argument("--knowledge-base", type=Path, help="FAQ knowledge base file (default dialogs/faq.yaml)")
    parser.add_argument("--messages", type=Path, help="spoken system messages file (default prompts/messages.yaml)")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    parser.add_argument(
        "--sip", dest="sip_enabled", action="store_const", const=True,
        help="also answer SIP calls (VOICEBOT_SIP_* variables set the port and peers; see docs/sip-gateway.md)",
    )
    parser.add_argument(
        "--llm",
        dest="llm_base_url",
        help='LLM for questions the FAQ cannot answer: "embedded" (local Qwen2.5 0.5B on 127.0.0.1) or an '
        "OpenAI-compatible base URL ending in /v1 (default: no LLM)",
    )
    parser.add_argument("--console-users", help="users file of the rep console (YAML with scrypt hashes); enables /console/")


def _settings(args: argparse.Namespace, **overrides: object) -> Settings:
    values = {
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
        "redis_url": getattr(args, "redis_url", None),
        "whisper_model": getattr(args, "whisper_model", None),
        "max_calls": getattr(args, "max_calls", None),
        "knowledge_base": getattr(args, "knowledge_base", None),
        "messages": getattr(args, "messages", None),
        "log_level": getattr(args, "log_level", None),
        "sip_enabled": getattr(args, "sip_enabled", None),
        "console_users": getattr(args, "console_users", None),
        "llm_base_url": getattr(args, "llm_base_url", None),
    }
    values.update(overrides)
    return settings_from_env(**values)


async def _serve(settings: Settings) -> None:
    from voicebot.server import running_server

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with running_server(settings) as (url, _):
        ws_url = url.replace("http://", "ws://") + "/media"
        print(f"voicebot is answering calls at {ws_url} (Ctrl-C stops it)", flush=True)
        await stop.wait()
        # Calls in progress get hangup_timeout_s to finish and save their records.
        print("voicebot is stopping: ending the calls in progress", flush=True)
    print("voicebot stopped", flush=True)


async def _demo(settings: Settings, wavs: list[Path], out: Path, speed: float, as_json: bool, language: str) -> int:
    from telephony.softphone import format_summary, place_call, print_event
    from voicebot.server import running_server

    async with running_server(settings) as (url, _):
        ws_url = url.replace("http://", "ws://") + "/media"
        print(f"# voicebot started at {ws_url}; calling it with {len(wavs)} caller clip(s)", file=sys.stderr)
        summary = await place_call(
            ws_url,
            [str(w) for w in wavs],
            out=str(out),
            speed=speed,
            params={"language": language},
            on_event=lambda event: print_event(event, as_json=as_json),
        )
    if as_json:
        print_event(summary.summary_event(), as_json=True)
    else:
        print(format_summary(summary), flush=True)
    print(f"# bot audio written to {out}", file=sys.stderr)
    return 0


def _shared_speech() -> Path:
    return Path(os.environ.get("VOICEBOT_SHARED_SPEECH", REPO_ROOT.parent / "shared" / "speech"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="voicebot", description="Voice bot for credit-card hotlines")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="answer calls on a media-stream WebSocket at ws://HOST:PORT/media")
    _add_serve_arguments(serve)

    from telephony.softphone import add_call_arguments, run_call_command

    call = commands.add_parser(
        "call", help="place a test call with WAV files and keypad presses (--keys) as the caller's turns"
    )
    add_call_arguments(call)

    demo = commands.add_parser("demo", help="start the service on 127.0.0.1 and place a call with caller clips")
    _add_serve_arguments(demo)
    demo.add_argument("--wav", action="append", type=Path, help="caller WAV (repeat for more turns)")
    demo.add_argument("--out", type=Path, default=Path("out/demo-bot.wav"), help="where to write the bot audio")
    demo.add_argument("--speed", type=float, default=1.0, help="send caller audio N times faster than real time")
    demo.add_argument("--json", action="store_true", help="print one JSON object per line")
    demo.add_argument("--language", choices=("zh", "yue"), default="zh", help="language of the call (default zh)")

    from voicebot.prompts.cli import add_prompts_commands, run_prompts_command

    add_prompts_commands(commands)

    args = parser.parse_args(argv)
    try:
        if args.command == "prompts":
            return run_prompts_command(args)
        if args.command == "call":
            configure_logging("WARNING")
            return run_call_command(args)
        overrides: dict[str, object] = {}
        if args.command == "demo" and args.port is None:
            overrides["port"] = 0  # any free port, so the demo never collides with a running service
        settings = _settings(args, **overrides)
        configure_logging(settings.log_level if args.command == "serve" else "WARNING")
        if args.command == "serve":
            asyncio.run(_serve(settings))
            return 0
        wavs = args.wav or [_shared_speech() / "callers" / name for name in DEMO_CLIPS]
        missing = [str(w) for w in wavs if not Path(w).is_file()]
        if missing:
            print(
                f"error: caller WAV not found: {', '.join(missing)}; pass your own with --wav FILE "
                "or set VOICEBOT_SHARED_SPEECH to the folder that holds callers/",
                file=sys.stderr,
            )
            return 2
        args.out.parent.mkdir(parents=True, exist_ok=True)
        return asyncio.run(_demo(settings, wavs, args.out, args.speed, args.json, args.language))
    except VoicebotError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
