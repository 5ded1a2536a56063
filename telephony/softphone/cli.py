"""Command line of the test softphone: `voicebot call` and `python -m telephony.softphone`."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import sys
from collections.abc import Sequence
from typing import Any

from telephony.softphone.call import ServiceUnreachableError, place_call
from telephony.softphone.steps import KEY_PRESS_INTERVAL_S, KeyPresses
from telephony.softphone.summary import CallSummary
from voicebot.errors import AudioError, ConfigError, ProtocolError

EXIT_OK = 0
EXIT_INVALID_INPUT = 2
EXIT_UNREACHABLE = 3
EXIT_PROTOCOL = 4
EXIT_TURN_TIMEOUT = 5


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


def _key_presses(text: str) -> KeyPresses:
    try:
        return KeyPresses(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


class _AppendStep(argparse.Action):
    """Append the value to one list shared by --wav and --keys, so the caller turns keep their command-line order."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        steps = list(getattr(namespace, self.dest, None) or [])
        steps.append(values)
        setattr(namespace, self.dest, steps)


def add_call_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of `voicebot call` to parser."""
    parser.add_argument("url", metavar="URL", help="media-stream URL of the service, e.g. ws://127.0.0.1:8080/media")
    parser.add_argument(
        "--wav",
        dest="steps",
        metavar="FILE",
        action=_AppendStep,
        help="WAV file spoken as one caller turn (any rate, mono or stereo); repeat for more turns",
    )
    parser.add_argument(
        "--keys",
        dest="steps",
        metavar="DIGITS",
        type=_key_presses,
        action=_AppendStep,
        help=f"keypad keys (0-9, *, #, A-D) pressed as one caller turn, e.g. 6288#, {KEY_PRESS_INTERVAL_S} s apart "
        "divided by --speed; repeatable, and --wav and --keys turns run in command-line order. "
        "Quote the value in the shell when it contains * or starts with #",
    )
    parser.add_argument(
        "--out",
        metavar="BOT.wav",
        help="write the bot audio as played to an 8 kHz 16-bit mono WAV file: the replies back to back, "
        "without the silence between them, and without audio dropped by `clear`",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object per line instead of text")
    parser.add_argument(
        "--speed",
        type=_positive_float,
        default=1.0,
        metavar="N",
        help="run the caller-side clock N times faster than real time (default 1); bot audio plays in real time",
    )
    parser.add_argument(
        "--param",
        dest="params",
        metavar="KEY=VALUE",
        type=_key_value,
        action="append",
        default=[],
        help="custom parameter sent in `start`; repeatable",
    )
    parser.add_argument(
        "--turn-timeout",
        dest="turn_timeout",
        type=_positive_float,
        default=30.0,
        metavar="SECONDS",
        help="hang up when the service sends nothing for this many seconds while a reply is due (default 30)",
    )
    parser.add_argument(
        "--language",
        choices=("zh", "yue"),
        help="language of the call, sent as the custom parameter `language` (overrides --param language=)",
    )


def print_event(event: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(event, ensure_ascii=False), flush=True)
        return
    kind = event["event"]
    if kind == "keys":
        print(f"caller keys: {event['digits']}", flush=True)
    elif kind == "user":
        print(f"caller: {event['text']}", flush=True)
    elif kind == "bot":
        confidence = event.get("confidence")
        label = f"bot ({float(confidence):.2f})" if isinstance(confidence, (int, float)) else "bot"
        print(f"{label}: {event['text']}", flush=True)
    elif kind == "handoff":
        print(f"handoff: {event['reason']}", flush=True)


def format_summary(summary: CallSummary) -> str:
    stats = summary.latency_stats_ms()
    if stats["max"] is None:
        latency = "latency not measured"
    else:
        latency = f"latency p50 {stats['p50']:.0f} ms, p95 {stats['p95']:.0f} ms, max {stats['max']:.0f} ms"
    text = f"call {summary.call_id or summary.call_sid}: {len(summary.turns)} caller turn(s), {latency}"
    if summary.handoff_reason is not None:
        text += ", handed off"
    if summary.clears:
        text += f", queued bot audio cleared {summary.clears} time(s)"
    return text


def run_call_command(args: argparse.Namespace) -> int:
    """Run `voicebot call` with parsed arguments and return the process exit code."""
    if not args.steps:
        print(
            "voicebot call: no caller turn given; pass --wav FILE or --keys DIGITS at least once",
            file=sys.stderr,
        )
        return EXIT_INVALID_INPUT
    params = dict(args.params)
    if args.language:
        params["language"] = args.language

    def on_event(event: dict[str, Any]) -> None:
        print_event(event, as_json=args.json)

    try:
        summary = asyncio.run(
            place_call(
                args.url,
                args.steps,
                out=args.out,
                speed=args.speed,
                params=params,
                turn_timeout_s=args.turn_timeout,
                on_event=on_event,
            )
        )
    except (AudioError, ConfigError, ServiceUnreachableError, ProtocolError) as e:
        print(f"voicebot call: {e}", file=sys.stderr)
        if isinstance(e, ServiceUnreachableError):
            return EXIT_UNREACHABLE
        return EXIT_PROTOCOL if isinstance(e, ProtocolError) else EXIT_INVALID_INPUT
    except KeyboardInterrupt:
        print("voicebot call: interrupted; the call was not completed", file=sys.stderr)
        return 130

    if args.json:
        print(json.dumps(summary.summary_event(), ensure_ascii=False), flush=True)
    else:
        print(format_summary(summary), flush=True)
    if summary.timed_out:
        if summary.turns:
            what = f"reply to caller turn {len(summary.turns)} ({summary.turns[-1].describe()})"
        else:
            what = "greeting"
        print(
            f"voicebot call: no {what} within {args.turn_timeout} s; hung up. "
            "Check the service log, or raise --turn-timeout.",
            file=sys.stderr,
        )
        return EXIT_TURN_TIMEOUT
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m telephony.softphone`, the same as `voicebot call`."""
    parser = argparse.ArgumentParser(
        prog="voicebot call",
        description="Call a voicebot media-stream endpoint as a test softphone.",
        epilog="Exit codes: 0 done, 2 invalid input, 3 service unreachable, 4 protocol error, 5 no reply in time.",
    )
    add_call_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return run_call_command(args)
