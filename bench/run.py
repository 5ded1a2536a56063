"""Run the benchmark sections and write one markdown page (default bench/RESULTS.md).

Usage: `python -m bench.run [--only asr,faq,tts,calls] [--out bench/RESULTS.md]` from the
repository root, or `scripts/bench.sh` to set up the environment first. A section that
raises is reported as failed in its place on the page, and the other sections still run.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import logging
import shlex
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from bench import describe_machine, load_average_text

logger = logging.getLogger("bench.run")  # not __name__, which is __main__ under -m

REPO_ROOT = Path(__file__).resolve().parents[1]
# Section name to module; each module exposes run() -> str, a markdown section.
SECTIONS = {
    "asr": "bench.asr",
    "faq": "bench.faq",
    "tts": "bench.tts",
    "calls": "bench.calls",
    "dialog": "bench.dialog",
    "escalation": "bench.escalation",
    "llm": "bench.llm",
    "turns": "bench.turns",
    # Twenty SIP calls with realistic traffic, then a burst of twenty as the worst case, take
    # about 5 minutes, so the section runs only when named: --only sip.
    "sip": "bench.sip",
}
DEFAULT_SECTIONS = ("asr", "faq", "tts", "calls", "dialog", "escalation", "llm", "turns")
DEFAULT_OUT = REPO_ROOT / "bench" / "RESULTS.md"


def git_commit() -> str:
    """Return the short commit of the checkout, with `+ uncommitted changes` when the tree is dirty."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as e:
        return f"unknown ({e})"
    return f"{commit} + uncommitted changes" if status else commit


def run_section(name: str) -> tuple[str, float]:
    """Run one section and return its markdown and its wall time in seconds.

    Any exception becomes the section's text, so that one broken section does not stop the page.
    """
    started = time.perf_counter()
    try:
        module = importlib.import_module(SECTIONS[name])
        text = module.run()
    except Exception as e:  # noqa: BLE001 - reported on the page and in the log, then the next section runs
        logger.exception("benchmark section %s failed", name)
        detail = "".join(traceback.format_exception_only(e)).strip()
        text = f"## {name}\n\n**Failed:** `{detail}`\n\nThe full traceback is in the log on standard error.\n"
    return text, time.perf_counter() - started


def build_page(names: Sequence[str], command: str) -> str:
    """Run the named sections and return the whole markdown page."""
    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    header = [
        "# voicebot benchmark results",
        "",
        f"- Date: {started}",
        f"- Machine: {describe_machine()}",
        f"- Load average (1/5/15 min) at start: {load_average_text()}",
        f"- Git commit: {git_commit()}",
        f"- Command: `{command}`",
        f"- Sections: {', '.join(names)}",
        "",
    ]
    sections = []
    timings = []
    for name in names:
        logger.info("running benchmark section %s", name)
        text, seconds = run_section(name)
        sections.append(text.rstrip("\n") + "\n")
        timings.append(f"{name} {seconds:.0f} s")
    header.insert(-1, f"- Wall time per section: {', '.join(timings)}")
    return "\n".join(header) + "\n" + "\n".join(sections)


def parse_sections(value: str) -> list[str]:
    names = [part.strip() for part in value.split(",") if part.strip()]
    unknown = [name for name in names if name not in SECTIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"invalid section(s) {', '.join(unknown) or '(none)'}; choose from {','.join(SECTIONS)}"
        )
    return names


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        type=parse_sections,
        default=list(DEFAULT_SECTIONS),
        metavar="NAMES",
        help=f"comma-separated sections to run, in page order (default: {','.join(DEFAULT_SECTIONS)}; also: sip)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="markdown file to write (default bench/RESULTS.md)")
    args = parser.parse_args(argv)

    from voicebot.cli import configure_logging

    # WARNING keeps pipecat's debug frames, which carry transcripts, out of the log.
    configure_logging("WARNING")
    logging.getLogger("bench").setLevel(logging.INFO)

    arguments = sys.argv[1:] if argv is None else list(argv)
    command = shlex.join(["python", "-m", "bench.run", *arguments])
    page = build_page(args.only, command)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(page, encoding="utf-8")
    print(page)
    logger.info("benchmark page written to %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
