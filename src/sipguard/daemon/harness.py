"""A real `sipguard run` in a subprocess, driven over its control socket, plus Asterisk lines to
feed it. Used by the daemon and end-to-end tests and by bench/reaction."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sipguard.daemon.control import ControlError, request

T = TypeVar("T")
SRC = str(Path(__file__).resolve().parents[2])  # the directory holding the sipguard package


def pjsip_failure(ip: str, n: int, account: str = "1001", port: int = 5301) -> str:
    """One PJSIP wrong-password line exactly as Asterisk 20 writes it (a distinct callid each)."""
    now = time.time()
    ts = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}"
    return (
        f"[{ts}] NOTICE[18562] res_pjsip/pjsip_distributor.c: Request 'REGISTER' from "
        f"'\"{account}\" <sip:{account}@127.0.0.1>' failed for '{ip}:{port}' "
        f"(callid: {ip.replace('.', '')}-{n}) - Failed to authenticate\n"
    )


def own_account(ip: str) -> str:
    """An account of an IPv4 source's own (from its last two octets), for tests and benches
    that must stay per-source: one account guessed from many sources is a distributed attack,
    with rules of its own."""
    *_, third, fourth = ip.split(".")
    return str(2000 + int(third) * 1000 + int(fourth))


def write_config(tmp: Path, extra: str = "", logs: Sequence[str] = ("messages",)) -> Path:
    """A daemon configuration for a test: state, socket and Asterisk logs under `tmp` (the log
    files are created empty), quick ticks and polls, then `extra` TOML."""
    (tmp / "log").mkdir(exist_ok=True)
    for name in logs:
        (tmp / "log" / name).touch()
    paths = ", ".join(f'"{tmp}/log/{name}"' for name in logs)
    cfg = tmp / "sipguard.toml"
    cfg.write_text(
        f"""
[daemon]
state_dir = "{tmp}/state"
control_socket = "{tmp}/ctl.sock"
tick_interval = 0.2
[sources.logs]
paths = [{paths}]
poll_interval = 0.1
{extra}
"""
    )
    return cfg


def append(path: Path, text: str) -> None:
    with path.open("a") as f:
        f.write(text)


def wait_for(cond: Callable[[], T], timeout: float = 10.0, every: float = 0.02) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(every)


class DaemonProc:
    """`sipguard run` in a subprocess (optionally inside a namespace via `prefix`)."""

    def __init__(
        self, config: Path, socket: Path, args: Sequence[str], prefix: Sequence[str] = ()
    ) -> None:
        self.config, self.socket = config, socket
        self.argv = [*prefix, sys.executable, "-m", "sipguard", "run", "--config", str(config)]
        self.argv += args
        self.log = config.parent / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> DaemonProc:
        env = {**os.environ, "PYTHONPATH": SRC}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.argv, stderr=log, stdout=log, env=env)
        wait_for(self._up, 15)
        return self

    def _up(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"daemon exited {self.proc.returncode}: {self.log.read_text()}")
        try:
            self.request("status")
            return True
        except ControlError:
            return False

    def request(self, cmd: str, args: Mapping[str, object] | None = None) -> Any:  # decoded JSON
        return request(str(self.socket), cmd, args, timeout=10)

    def send(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(5)
        self.proc = None
        return rc

    def banned(self) -> set[str]:
        return {b["network"] for b in self.request("bans")}
