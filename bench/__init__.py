"""Benchmarks of voicebot. Each section module exposes `run() -> str`, a markdown section.

`python -m bench.run` runs every section and writes bench/RESULTS.md.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo, or what the platform module reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def memory_total_gib() -> float | None:
    """Return MemTotal from /proc/meminfo in GiB, or None where the file is missing."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / (1024 * 1024)  # the value is in KiB
    except (OSError, ValueError, IndexError):
        pass
    return None


def describe_machine() -> str:
    """Describe the machine in one line: CPU model, logical cores, usable cores, memory, Python."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    memory = memory_total_gib()
    memory_text = f"{memory:.1f} GiB memory" if memory is not None else "memory unknown"
    return (
        f"{cpu_model()}; {os.cpu_count()} logical cores, {usable} usable by this process; "
        f"{memory_text}; Python {platform.python_version()}"
    )


def load_average_text() -> str:
    """Return the 1, 5 and 15 minute load averages as text."""
    one_min, five_min, fifteen_min = os.getloadavg()
    return f"{one_min:.2f} / {five_min:.2f} / {fifteen_min:.2f}"
