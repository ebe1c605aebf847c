"""`sipguard scan FILE...`: who attacked this PBX, and what would have been banned.

Reads plain files, .gz (by magic bytes, whatever the name) and `-` (stdin); rotated sets
(messages.2.gz, messages.1, messages) are read oldest first. Exit 0: no attack, 1: attack found,
2: error (one line naming the file and the reason).
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO

from sipguard.cli.main import CliError
from sipguard.config.errors import ConfigError
from sipguard.detect.sourcekeys import clear_caches
from sipguard.policy import AllowList, Policy, PolicyError
from sipguard.report.aggregate import ScanReport
from sipguard.report.render import FORMATS, render
from sipguard.report.scan import CHUNK, Scanner

_ROTATED = re.compile(r"^(?P<base>.+?)(?:[.-](?P<n>\d{1,8}))?(?P<gz>\.gz)?$")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "scan",
        help="scan Asterisk logs offline and report attackers",
        description="Scan Asterisk logs (plain, .gz, or - for stdin) and report every attacker, "
        "the accounts under attack, and what would have been banned (simulation).",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="log files, .gz, or - for stdin")
    p.add_argument("--format", choices=FORMATS, default="text", help="output format")
    p.add_argument("--rules", metavar="DIR", action="append", help="rules directory (repeatable)")
    p.add_argument("--year", type=int, help="year for dates without one (default: this year)")
    p.add_argument(
        "--allow",
        metavar="NET",
        action="append",
        default=[],
        help="address or network on the allow-list (repeatable): reported, never banned",
    )
    p.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    p.set_defaults(func=run)


def rotation_order(paths: list[str]) -> list[str]:
    """Oldest first within each rotated set: name.3.gz, name.2.gz, name.1, name.

    Sets keep the order in which they were first named; "-" stays where it is. Date-stamped
    rotations (messages-20261120) sort by their stamp, which is oldest first too.
    """
    groups: dict[str, list[tuple[tuple[int, int], str]]] = {}
    for path in paths:
        m = _ROTATED.match(os.path.basename(path)) if path != "-" else None
        base = path if m is None else os.path.join(os.path.dirname(path), m["base"])
        n = int(m["n"]) if m is not None and m["n"] else 0
        dated = n >= 19_000_000  # a date stamp, not a rotation count: larger is newer
        # the live file (no number) is the newest; numbered ones count down, dates count up
        order = (1, 0) if n == 0 else (0, n if dated else -n)
        groups.setdefault(base, []).append((order, path))
    out: list[str] = []
    for members in groups.values():
        out.extend(path for _, path in sorted(members, key=lambda m: m[0]))
    return out


@contextmanager
def _open(path: str) -> Iterator[IO[bytes]]:
    """The file's bytes, decompressed when it starts with the gzip magic."""
    if path == "-":
        raw: IO[bytes] = sys.stdin.buffer
    else:
        if os.path.isdir(path):
            raise CliError(f"{path}: is a directory")
        try:
            raw = open(path, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise CliError(f"{path}: {exc.strerror or exc}") from None
    try:
        peek = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
        if peek == b"\x1f\x8b":
            import gzip  # here: most scans read plain files, and every import is start-up time

            with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
                yield gz  # type: ignore[misc]
        else:
            yield raw
    finally:
        if path != "-":
            raw.close()


class LogSniffer:
    """Whether anything in the input reads as an Asterisk log line: a file of binary junk or of
    some other program's text would otherwise pass as a log without attacks.

    Looks at the first lines of each chunk until one line has an Asterisk prefix; a real log
    has one on almost every line, so after the first chunk this costs nothing."""

    LINES_PER_CHUNK = 200

    def __init__(self, year: int) -> None:
        from sipguard.core.asterisk.prefix import TimeParser

        self.found = False
        self._clock = TimeParser(year, None)

    def check(self, data: bytes) -> None:
        if self.found:
            return
        from sipguard.core.asterisk.prefix import split_prefix

        for raw in data.split(b"\n", self.LINES_PER_CHUNK)[: self.LINES_PER_CHUNK]:
            if split_prefix(raw[:512].decode("utf-8", "replace"), self._clock) is not None:
                self.found = True
                return

    def sniffed(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        for data in chunks:
            self.check(data)
            yield data


def _check_readable(path: str) -> None:
    if path != "-" and not os.access(path, os.R_OK):
        reason = "No such file or directory" if not os.path.exists(path) else "Permission denied"
        raise CliError(f"{path}: {reason}")


def _chunks(path: str, f: IO[bytes], advance: Callable[[int], None]) -> Iterator[bytes]:
    raw = getattr(f, "fileobj", None) or f
    pos = 0
    while True:
        try:
            data = f.read(CHUNK)
        except (OSError, EOFError, zlib.error) as exc:
            raise CliError(f"{path}: cannot read: {exc}") from None
        if not data:
            return
        try:
            now = raw.tell()
        except (OSError, ValueError):
            now = pos + len(data)
        advance(max(0, now - pos))
        pos = now
        yield data


def run(args: argparse.Namespace) -> int:
    from sipguard.config.rules import load_rules

    try:
        rules = load_rules(args.rules)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    paths = rotation_order(list(args.files))
    if paths.count("-") > 1:
        raise CliError("-: standard input named more than once")
    for p in paths:  # fail on a missing file before reading anything
        _check_readable(p)
    year = args.year or time.gmtime().tm_year
    try:
        allow = AllowList.from_strings(args.allow, "--allow")
    except PolicyError as exc:
        raise CliError(str(exc)) from None
    policy = Policy(allowlist=allow, simulate=True)
    for rule in rules:
        if policy.unknown_profiles([rule.profile]):
            raise CliError(f"rule {rule.id}: profile: no such profile {rule.profile!r}")
    scanner = Scanner(rules, year, policy)
    sniffer = LogSniffer(year)
    # The scan allocates millions of short-lived objects while holding tens of thousands of
    # long-lived aggregates (attackers, buckets, cached keys), and the cycle collector kept
    # rescanning the latter: ~40% of a run with the default thresholds, still ~0.2 s of a
    # 50k-source scan with raised ones. The pipeline makes no reference cycles (no cyclic
    # garbage per line, whatever the input: tests/report/test_scan_no_cycles.py), so memory is
    # freed by reference counting alone and the collector is off until the report is written.
    # With a progress bar, rich's refresh thread runs too, which is not ours to vouch for: the
    # collector stays on there, only less often.
    interactive = not args.no_progress and sys.stderr.isatty()
    collecting = gc.isenabled()
    thresholds = gc.get_threshold()
    if interactive:
        gc.set_threshold(200_000, 50, 1000)
    else:
        gc.disable()
    try:
        if interactive:
            _scan_with_progress(scanner, paths, sniffer)
        else:
            for path in paths:
                with _open(path) as f:
                    chunks = _chunks(path, f, lambda n: None)
                    scanner.feed_file_chunks(path, sniffer.sniffed(chunks))
        report = scanner.finish()
        _refuse_unreadable(report, sniffer, paths)
        render(report, args.format, sys.stdout)
        sys.stdout.flush()
    finally:
        gc.set_threshold(*thresholds)
        if collecting:
            gc.enable()
        clear_caches()
    return 1 if report.attack_found else 0


def _refuse_unreadable(report: ScanReport, sniffer: LogSniffer, paths: list[str]) -> None:
    """Input with lines, none of them an Asterisk log line and no event: an error, not a clean
    bill (empty input stays a clean report: a freshly rotated log is empty)."""
    if sniffer.found:
        return
    stats = report.to_dict()["stats"]  # nothing was recognised, so the report is small
    assert isinstance(stats, dict)
    norm = dict(stats.get("normalizer") or {})
    if not norm.get("lines") or norm.get("events"):
        return
    binary = f", {norm['binary']} of them binary" if norm.get("binary") else ""
    raise CliError(
        f"{', '.join(paths)}: nothing in it reads as an Asterisk log "
        f"({norm['lines']} lines{binary}); expected e.g. /var/log/asterisk/messages"
    )


def _scan_with_progress(scanner: Scanner, paths: list[str], sniffer: LogSniffer) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    total = 0
    for path in paths:
        try:
            total += os.path.getsize(path) if path != "-" else 0
        except OSError:
            pass
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn())
    with Progress(
        *columns, TimeRemainingColumn(), console=Console(stderr=True), transient=True
    ) as progress:
        task = progress.add_task("scanning", total=total or None)
        for path in paths:
            progress.update(task, description=os.path.basename(path))
            with _open(path) as f:
                chunks = _chunks(path, f, lambda n: progress.advance(task, n))
                scanner.feed_file_chunks(path, sniffer.sniffed(chunks))
