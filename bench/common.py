"""Helpers shared by the bench scripts: run a child and measure its wall time and peak RSS."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Measured:
    seconds: float
    max_rss_mib: float  # peak resident set of the child (and its waited-for descendants)
    returncode: int
    cpu: float = 0.0  # user + system seconds of the child: the "one core" figure on a busy host


def run_measured(argv: list[str], stdout: Path, stderr: Path | None = None) -> Measured:
    """Run argv with stdout (and stderr) to files; os.wait4 gives this child's own rusage."""
    with open(stdout, "wb") as out, open(stderr or os.devnull, "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return Measured(seconds, usage.ru_maxrss / 1024.0, proc.returncode, cpu)


def rate(lines: int, seconds: float) -> float:
    return lines / seconds if seconds > 0 else float("inf")


def human(n: float) -> str:
    if n >= 1e6:
        return f"{n / 1e6:.2f}M"
    if n >= 1e3:
        return f"{n / 1e3:.1f}k"
    return f"{n:.0f}"
