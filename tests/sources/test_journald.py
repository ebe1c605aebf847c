"""JournaldSource reading real journal files through the real journalctl.

The journal files are written by systemd-journal-remote (Debian package
systemd-journal-remote) from journal export format, so no running journald is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sipguard.sources.base import LineBatch, MemoryCheckpointStore
from sipguard.sources.journald import JournaldSource, JournaldUnavailable, format_entry

REMOTE = "/lib/systemd/systemd-journal-remote"
needs_journal = pytest.mark.skipif(
    shutil.which("journalctl") is None or not os.path.exists(REMOTE),
    reason="needs journalctl and systemd-journal-remote",
)
BOOT = "0123456789abcdef0123456789abcdef"


class Journal:
    """A journal directory fed entry by entry through a live systemd-journal-remote."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.n = 0
        self.proc = subprocess.Popen(
            [REMOTE, "-o", str(directory / "remote.journal"), "-"],
            stdin=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )

    def add(self, message: str | bytes, ident: str = "asterisk") -> None:
        self.n += 1
        assert self.proc.stdin is not None
        fields = [
            f"__REALTIME_TIMESTAMP={1_763_773_323_000_000 + self.n}",
            f"__MONOTONIC_TIMESTAMP={self.n}",
            f"_BOOT_ID={BOOT}",
            f"SYSLOG_IDENTIFIER={ident}",
            "_PID=4242",
            "_HOSTNAME=pbx",
        ]
        head = "".join(f + "\n" for f in fields).encode()
        body = message.encode() if isinstance(message, str) else message
        if b"\n" in body:  # export format: binary-safe field with a length prefix
            entry = head + b"MESSAGE\n" + len(body).to_bytes(8, "little") + body + b"\n\n"
        else:
            entry = head + b"MESSAGE=" + body + b"\n\n"
        self.proc.stdin.write(entry)
        self.proc.stdin.flush()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(5)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal(tmp_path)
    try:
        yield j
    finally:
        j.close()


async def collect(src: JournaldSource, want: int, timeout: float = 5.0) -> list[bytes]:
    got: list[bytes] = []

    async def emit(b: LineBatch) -> None:
        got.extend(b.lines())

    task = asyncio.create_task(src.run(emit))
    try:
        end = time.monotonic() + timeout
        while len(got) < want:
            assert time.monotonic() < end, got
            assert not task.done(), task.exception()
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # nothing extra
        return got
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_format_entry() -> None:
    line = format_entry(
        {
            "MESSAGE": "NOTICE[566]: chan_sip.c:28926 handle_request_register: x\ny",
            "__REALTIME_TIMESTAMP": "1763773323000000",
            "_HOSTNAME": "pbx",
            "SYSLOG_IDENTIFIER": "asterisk",
            "_PID": "123",
        }
    )
    assert line == (
        b"2025-11-22T01:02:03+0000 pbx asterisk[123]: "
        b"NOTICE[566]: chan_sip.c:28926 handle_request_register: x y"
    )
    assert format_entry({"MESSAGE": [104, 105, 255]}) is not None
    assert format_entry({"MESSAGE": [104, 105, 999]}) is None
    assert format_entry({"OTHER": "x"}) is None


@needs_journal
def test_follow_and_resume_by_cursor(journal: Journal) -> None:
    store = MemoryCheckpointStore()
    journal.add("old before start")
    time.sleep(0.2)

    async def main() -> None:
        src = JournaldSource("asterisk", store, directory=str(journal.dir))
        task = asyncio.create_task(collect(src, 2))
        await src.started.wait()
        await asyncio.sleep(0.5)  # journalctl is following now
        journal.add("NOTICE[566]: chan_sip.c:28926 handle_request_register: one")
        journal.add("not asterisk", ident="sshd")
        journal.add("two\nlines")
        got = await task
        assert [g.split(b": ", 1)[1] for g in got] == [
            b"NOTICE[566]: chan_sip.c:28926 handle_request_register: one",
            b"two lines",
        ]
        assert got[0].startswith(b"2025-11-22T01:02:03+0000 pbx asterisk[4242]: ")
        cp = store.get("journald:asterisk")
        assert cp is not None and cp.head_hash.startswith("s=") and cp.line_no == 2

        journal.add("three, written while sipguard was down")
        await asyncio.sleep(0.2)
        again = JournaldSource("asterisk", store, directory=str(journal.dir))
        assert (await collect(again, 1))[0].endswith(b"three, written while sipguard was down")

    asyncio.run(asyncio.wait_for(main(), 30))


@needs_journal
def test_from_start_and_long_lines(journal: Journal) -> None:
    journal.add("a" * 20000)
    journal.add("short")
    time.sleep(0.2)

    async def main() -> None:
        src = JournaldSource(directory=str(journal.dir), from_end_if_new=False)
        got = await collect(src, 2)
        assert len(got[0]) == 8192 and got[1].endswith(b": short")
        assert src.stats["truncated_lines"] == 1

    asyncio.run(asyncio.wait_for(main(), 30))


def test_missing_journalctl_is_a_clear_error() -> None:
    async def main() -> None:
        src = JournaldSource(journalctl="no-such-journalctl-binary")

        async def emit(b: LineBatch) -> None:
            pass

        with pytest.raises(JournaldUnavailable, match="not found"):
            await src.run(emit)

    asyncio.run(main())


@needs_journal
def test_journalctl_failure_reported(tmp_path: Path) -> None:
    async def main() -> None:
        src = JournaldSource(directory=str(tmp_path / "missing"), from_end_if_new=False)

        async def emit(b: LineBatch) -> None:
            pass

        with pytest.raises(JournaldUnavailable, match="journalctl exited"):
            await asyncio.wait_for(src.run(emit), 10)

    asyncio.run(main())
