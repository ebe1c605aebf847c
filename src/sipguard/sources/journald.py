"""Follow Asterisk in the systemd journal through `journalctl -f -o json` (argv, no shell).

Each entry becomes one line in the `journalctl -o short-iso` form
(`2026-11-22T01:02:03+0000 host asterisk[123]: MESSAGE`), so the log normalizer sees the
same shape as a syslog file. The journal cursor of the last emitted entry is checkpointed
(in `Checkpoint.head_hash`, with the entry count in `line_no`) after `emit` returns, and a
restart continues with `--after-cursor`. The source is optional: `journald_available()`
tells whether journalctl is installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import time

from sipguard.sources.base import (
    Checkpoint,
    CheckpointStore,
    Emit,
    LineBatch,
    MemoryCheckpointStore,
)

MAX_LINE = 8192
MAX_ENTRY = 1 << 20  # one JSON entry; bigger ones are skipped and counted


class JournaldUnavailable(RuntimeError):
    """journalctl is not installed (or the journal cannot be read)."""


def journald_available(journalctl: str = "journalctl") -> bool:
    return shutil.which(journalctl) is not None


def _text(value: object) -> str | None:
    """journalctl -o json prints non-UTF-8 fields as arrays of byte values."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(b, int) and 0 <= b < 256 for b in value):
        return bytes(value).decode("utf-8", "replace")
    return None


def format_entry(entry: dict[str, object]) -> bytes | None:
    """One journal entry as a short-iso line (without the newline), or None without MESSAGE."""
    message = _text(entry.get("MESSAGE"))
    if message is None:
        return None
    try:
        usec = int(str(entry.get("__REALTIME_TIMESTAMP", "0")))
    except ValueError:
        usec = 0
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(usec / 1e6))
    host = _text(entry.get("_HOSTNAME")) or "localhost"
    ident = _text(entry.get("SYSLOG_IDENTIFIER")) or _text(entry.get("_COMM")) or "-"
    pid = _text(entry.get("SYSLOG_PID")) or _text(entry.get("_PID"))
    tag = f"{ident}[{pid}]" if pid else ident
    # a multi-line MESSAGE stays one line: each line of ours is one log record
    message = message.replace("\r", " ").replace("\n", " ")
    return f"{stamp} {host} {tag}: {message}".encode()


class JournaldSource:
    def __init__(
        self,
        identifier: str | None = "asterisk",
        checkpoints: CheckpointStore | None = None,
        *,
        unit: str | None = None,
        directory: str | None = None,  # read journal files there instead of the system journal
        journalctl: str = "journalctl",
        from_end_if_new: bool = True,
        max_line: int = MAX_LINE,
    ) -> None:
        self.checkpoints = checkpoints if checkpoints is not None else MemoryCheckpointStore()
        self.identifier, self.unit, self.directory = identifier, unit, directory
        self.journalctl = journalctl
        self.from_end_if_new = from_end_if_new
        self.max_line = max_line
        self.source = "journald:" + (unit or identifier or "all")
        self.stats = {"entries": 0, "batches": 0, "bad_entries": 0, "truncated_lines": 0}
        self.started = asyncio.Event()  # set once journalctl runs

    def argv(self) -> list[str]:
        # --all: without it, -o json prints fields over 4096 bytes as null
        args = [self.journalctl, "--follow", "--output=json", "--all", "--no-pager", "--quiet"]
        if self.directory:
            args.append(f"--directory={self.directory}")
        if self.identifier:
            args.append(f"--identifier={self.identifier}")
        if self.unit:
            args.append(f"--unit={self.unit}")
        cp = self.checkpoints.get(self.source)
        if cp is not None and cp.head_hash:
            args.append(f"--after-cursor={cp.head_hash}")
        else:
            args.append("--lines=0" if self.from_end_if_new else "--lines=all")
        return args

    async def run(self, emit: Emit) -> None:
        path = shutil.which(self.journalctl)
        if path is None:
            raise JournaldUnavailable(f"{self.journalctl} not found; journald source disabled")
        argv = [path, *self.argv()[1:]]
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stderr is not None
        self.started.set()
        try:
            await self._pump(proc.stdout, emit)
            err = (await proc.stderr.read(4096)).decode("utf-8", "replace").strip()
            code = await proc.wait()
            last = err.splitlines()[-1] if err else "no output"
            raise JournaldUnavailable(f"journalctl exited with status {code}: {last}")
        finally:
            if proc.returncode is None:
                proc.terminate()
                with contextlib.suppress(ProcessLookupError):
                    try:
                        async with asyncio.timeout(2):
                            await proc.wait()
                    except TimeoutError:
                        proc.kill()
                        await proc.wait()

    async def _pump(self, stdout: asyncio.StreamReader, emit: Emit) -> None:
        cp = self.checkpoints.get(self.source)
        count = cp.line_no if cp is not None else 0
        buf = bytearray()
        skipping = False
        while True:
            data = await stdout.read(1 << 16)
            if not data:
                return
            buf += data
            last_nl = buf.rfind(b"\n")
            if last_nl < 0:
                if len(buf) > MAX_ENTRY:  # one huge entry: drop up to its end
                    self.stats["bad_entries"] += 1
                    buf.clear()
                    skipping = True
                continue
            chunk, buf = bytes(buf[: last_nl + 1]), buf[last_nl + 1 :]
            raw_lines = chunk.split(b"\n")[:-1]
            if skipping:
                raw_lines, skipping = raw_lines[1:], False
            out: list[bytes] = []
            cursor = None
            for raw in raw_lines:
                line, cur = self._parse(raw)
                cursor = cur or cursor
                if line is not None:
                    out.append(line)
            if out:
                await emit(LineBatch(self.source, count + 1, b"\n".join(out) + b"\n"))
                count += len(out)
                self.stats["batches"] += 1
                self.stats["entries"] += len(out)
            if cursor is not None:
                self.checkpoints.set(self.source, Checkpoint(0, 0, 0, count, cursor))

    def _parse(self, raw: bytes) -> tuple[bytes | None, str | None]:
        try:
            entry = json.loads(raw)
        except ValueError:
            self.stats["bad_entries"] += 1
            return None, None
        if not isinstance(entry, dict):
            self.stats["bad_entries"] += 1
            return None, None
        cursor = entry.get("__CURSOR")
        line = format_entry(entry)
        if line is not None and len(line) > self.max_line:
            self.stats["truncated_lines"] += 1
            line = line[: self.max_line]
        return line, cursor if isinstance(cursor, str) else None
