"""The "a source stopped" and "the kernel refused" checks, run by the daemon every few
seconds: a followed log that stopped growing while Asterisk runs, AMI that disconnected, new
firewall errors, a fleet that lost Redis. Each condition is reported once when it starts, and
again only after it cleared (a log that grows again, AMI back)."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from sipguard.notify.notifier import Message

ASTERISK_PID_FILES = ("/var/run/asterisk/asterisk.pid", "/run/asterisk/asterisk.pid")


class HealthWatch:
    def __init__(self, log_silence: float) -> None:
        self.log_silence = log_silence
        self._size: dict[str, tuple[int, float]] = {}  # path -> (size, when it last changed)
        self._silent: set[str] = set()
        self._ami_up: bool | None = None
        self._fleet_up: bool | None = None
        self._errors = 0

    def check(
        self,
        now: float,
        sizes: Mapping[str, int],
        asterisk: bool,
        ami: bool | None,
        kernel_errors: int,
        fleet: tuple[bool, str] | None = None,
    ) -> list[Message]:
        """`sizes`: followed log files and their sizes; `ami`: connected (None: not used);
        `fleet`: (connected, last error), None when there is no fleet."""
        out: list[Message] = []
        for path, size in sizes.items():
            last = self._size.get(path)
            if last is None or last[0] != size:
                self._size[path] = (size, now)
                self._silent.discard(path)
                continue
            if asterisk and path not in self._silent and now - last[1] >= self.log_silence:
                self._silent.add(path)
                out.append(
                    Message(
                        "source",
                        "high",
                        f"sipguard: {path} stopped growing",
                        f"Asterisk runs but {path} has not grown for {now - last[1]:.0f}s: "
                        "its logger may be off (logger.conf) and attacks go unseen",
                    )
                )
        if ami is not None:
            if self._ami_up and not ami:
                out.append(
                    Message(
                        "source",
                        "high",
                        "sipguard: AMI disconnected",
                        "the AMI connection was lost; reconnecting",
                    )
                )
            self._ami_up = ami
        if fleet is not None:
            up, error = fleet
            if self._fleet_up and not up:
                why = error or "the Redis connection was lost"
                out.append(
                    Message(
                        "fleet",
                        "high",
                        "sipguard: fleet disconnected",
                        f"{why}; local protection goes on, decisions wait in the outbox",
                    )
                )
            self._fleet_up = up
        if kernel_errors > self._errors:
            out.append(
                Message(
                    "kernel",
                    "critical",
                    "sipguard: the kernel refused a firewall change",
                    f"{kernel_errors - self._errors} failed change(s); the bans are retried",
                )
            )
        self._errors = kernel_errors
        return out


def log_sizes(patterns: Iterable[str]) -> dict[str, int]:
    """The size of each existing file the log patterns name."""
    out: dict[str, int] = {}
    for pattern in patterns:
        for path in glob.glob(pattern) if glob.has_magic(pattern) else [pattern]:
            try:
                out[path] = os.stat(path).st_size
            except OSError:
                continue
    return out


def asterisk_running(proc: Path = Path("/proc")) -> bool:
    """An Asterisk process on this host: its pid file, else a process named asterisk."""
    for pid_file in ASTERISK_PID_FILES:
        try:
            pid = int(Path(pid_file).read_text().strip())
            if (proc / str(pid)).exists():
                return True
        except (OSError, ValueError):
            pass
    try:
        entries = list(proc.iterdir())
    except OSError:
        return False
    for entry in entries:
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "asterisk":
                    return True
            except OSError:
                continue
    return False
