"""A throw-away `redis-server` for tests and bench/fleet: its own directory, a unix socket or
a port the caller picks, append-only file with fsync on every write (a kill -9 loses nothing
it acknowledged), never the system instance."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path


def redis_available() -> bool:
    return shutil.which("redis-server") is not None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    def __init__(
        self,
        workdir: Path,
        port: int = 0,
        bind: str = "127.0.0.1",
        prefix: Sequence[str] = (),
        extra: Sequence[str] = (),
    ) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.sock = self.dir / "redis.sock"
        self.port, self.bind = port, bind
        self.prefix, self.extra = list(prefix), list(extra)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.bind}:{self.port}/0" if self.port else f"unix://{self.sock}"

    def start(self) -> RedisServer:
        argv = [
            *self.prefix,
            "redis-server",
            "--dir", str(self.dir),
            "--port", str(self.port),
            "--bind", self.bind,
            "--unixsocket", str(self.sock),
            "--unixsocketperm", "700",
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--protected-mode", "no",
            *self.extra,
        ]  # fmt: skip
        with (self.dir / "redis.log").open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while not self._ping():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start: {self.log()[-500:]}")
            time.sleep(0.02)
        return self

    def _ping(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(1)
                s.connect(str(self.sock))
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def cli(self, *args: str) -> str:
        """redis-cli against this server (tests poke the stream directly)."""
        out = subprocess.run(
            ["redis-cli", "-s", str(self.sock), *args], capture_output=True, timeout=10
        )
        return out.stdout.decode(errors="replace").strip()

    def log(self) -> str:
        try:
            return (self.dir / "redis.log").read_text(errors="replace")
        except OSError:
            return ""

    def kill(self) -> None:
        """kill -9: what a crash or an OOM kill does."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
