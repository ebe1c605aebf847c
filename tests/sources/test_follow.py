"""FileFollower on real files in tmp_path: append, rotation, truncation, restart, latency."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from sipguard.sources.base import LineBatch, MemoryCheckpointStore
from sipguard.sources.follow import FileFollower


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 30))  # type: ignore[arg-type]


def write(path: Path, text: str) -> None:
    with open(path, "ab") as f:  # O_APPEND, as Asterisk's logger writes
        f.write(text.encode())


class Follow:
    """Run a FileFollower in a task and collect (source, line_no, line)."""

    def __init__(self, paths: Any, store: MemoryCheckpointStore | None = None, **kw: Any):
        kw.setdefault("poll_interval", 0.05)
        self.store = store if store is not None else MemoryCheckpointStore()
        self.follower = FileFollower(paths, self.store, **kw)
        self.got: list[tuple[str, int, bytes]] = []
        self.batches: list[LineBatch] = []
        self.task: asyncio.Task[None] | None = None

    async def emit(self, b: LineBatch) -> None:
        self.batches.append(b)
        for i, line in enumerate(b.lines()):
            self.got.append((b.source, b.first_line_no + i, line))

    @property
    def lines(self) -> list[bytes]:
        return [line for _, _, line in self.got]

    async def __aenter__(self) -> Follow:
        self.task = asyncio.create_task(self.follower.run(self.emit))
        await asyncio.wait_for(self.follower.started.wait(), 5)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self.task is not None
        self.task.cancel()
        done, _ = await asyncio.wait({self.task}, timeout=2)
        assert done, "the source ignored its cancellation"
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    async def wait_lines(self, n: int, timeout: float = 5.0) -> None:
        await until(lambda: len(self.got) >= n, timeout)
        await asyncio.sleep(0.15)  # and nothing more arrives (no double count)
        assert len(self.got) == n, self.lines


async def until(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end, "condition not reached in time"
        await asyncio.sleep(0.005)


def test_append_from_end_and_partial_lines(tmp_path: Path) -> None:
    log = tmp_path / "messages"
    write(log, "old 1\nold 2\n")

    async def main() -> None:
        async with Follow(log) as f:
            assert f.follower.inotify_active
            write(log, "new 3\n")
            await f.wait_lines(1)
            assert f.got == [(str(log), 3, b"new 3")]  # old lines skipped, numbering kept
            write(log, "half")
            await asyncio.sleep(0.2)
            assert len(f.got) == 1  # a partial line waits
            write(log, " done\nnext\n")
            await f.wait_lines(3)
            assert f.got[1:] == [(str(log), 4, b"half done"), (str(log), 5, b"next")]
            assert all(b.data.endswith(b"\n") for b in f.batches)
            cp = f.store.get(str(log))
            assert cp is not None and cp.offset == log.stat().st_size and cp.line_no == 5

    run(main())


def test_from_start_when_asked(tmp_path: Path) -> None:
    log = tmp_path / "messages"
    write(log, "a\nb\n")

    async def main() -> None:
        async with Follow(log, from_end_if_new=False) as f:
            await f.wait_lines(2)
            assert f.lines == [b"a", b"b"]

    run(main())


def test_rename_rotation(tmp_path: Path) -> None:
    log = tmp_path / "messages"
    write(log, "")

    async def main() -> None:
        async with Follow(log) as f:
            write(log, "1\n2\n")
            await f.wait_lines(2)
            os.rename(log, tmp_path / "messages.1")
            write(tmp_path / "messages.1", "3 before logger reload\n")
            write(log, "4 new file\n")  # create
            await f.wait_lines(4)
            # Asterisk may still write to the old file until its logger reloads
            write(tmp_path / "messages.1", "5 late old\n")
            write(log, "6 new\n")
            await f.wait_lines(6)
            assert sorted(f.lines) == [
                b"1",
                b"2",
                b"3 before logger reload",
                b"4 new file",
                b"5 late old",
                b"6 new",
            ]
            assert f.lines.index(b"3 before logger reload") < f.lines.index(b"4 new file")
            new_nos = [no for _, no, line in f.got if line in (b"4 new file", b"6 new")]
            assert new_nos == [1, 2]  # the new file is counted from its first line
            assert f.follower.stats["rotations"] == 1

    run(main())


def test_copytruncate(tmp_path: Path) -> None:
    log = tmp_path / "messages"
    write(log, "")

    async def main() -> None:
        async with Follow(log) as f:
            write(log, "a\nb\nc\n")
            await f.wait_lines(3)
            shutil.copy(log, tmp_path / "messages.1")
            os.truncate(log, 0)
            write(log, "d\n")
            await f.wait_lines(4)
            assert f.lines == [b"a", b"b", b"c", b"d"]
            assert f.got[-1][1] == 1
            assert f.follower.stats["truncations"] == 1

    run(main())


def test_truncated_and_rewritten_longer_detected_by_head(tmp_path: Path) -> None:
    log = tmp_path / "messages"
    write(log, "")

    async def main() -> None:
        async with Follow(log, use_inotify=False, poll_interval=0.5) as f:
            write(log, "x1\n")
            await f.wait_lines(1, timeout=3)
            # truncated and rewritten past the old offset between two polls
            with open(log, "wb") as fh:
                fh.write(b"y1 longer\ny2\n")
            await f.wait_lines(3, timeout=3)
            assert f.lines == [b"x1", b"y1 longer", b"y2"]

    run(main())


def test_file_that_appears_later(tmp_path: Path) -> None:
    log = tmp_path / "sub" / "security"

    async def main() -> None:
        async with Follow(log) as f:
            await asyncio.sleep(0.1)
            log.parent.mkdir()
            write(log, "first\nsecond\n")  # a new file is read from its start
            await f.wait_lines(2)
            assert f.got == [(str(log), 1, b"first"), (str(log), 2, b"second")]

    run(main())


def test_glob(tmp_path: Path) -> None:
    async def main() -> None:
        async with Follow(str(tmp_path / "*.log")) as f:
            write(tmp_path / "a.log", "A\n")
            write(tmp_path / "b.log", "B\n")
            write(tmp_path / "c.txt", "C\n")
            await f.wait_lines(2)
            assert sorted(f.got) == [
                (str(tmp_path / "a.log"), 1, b"A"),
                (str(tmp_path / "b.log"), 1, b"B"),
            ]

    run(main())


def test_restart_resumes_without_loss_or_double_count(tmp_path: Path) -> None:
    log = tmp_path / "messages"
    write(log, "before start\n")
    store = MemoryCheckpointStore()
    seen: list[bytes] = []

    async def main() -> None:
        async with Follow(log, store) as f:
            write(log, "1\n2\n")
            await f.wait_lines(2)
            seen.extend(f.lines)
        write(log, "3 while down\n4 while down\npart")  # sipguard is down
        async with Follow(log, store) as f:
            await f.wait_lines(2)
            assert f.got[0][1] == 4  # line numbers continue (1 was "before start")
            write(log, "ial\n")
            await f.wait_lines(3)
            seen.extend(f.lines)
        # rotated while down: old tail and the new file, each once
        write(log, "6 old tail\n")
        os.rename(log, tmp_path / "messages.1")
        write(log, "7 new file\n")
        async with Follow(log, store) as f:
            await f.wait_lines(2)
            seen.extend(f.lines)
        async with Follow(log, store) as f:  # and nothing again on a quiet restart
            await asyncio.sleep(0.2)
            assert f.got == []

    run(main())
    assert seen == [
        b"1",
        b"2",
        b"3 while down",
        b"4 while down",
        b"partial",
        b"6 old tail",
        b"7 new file",
    ]


def test_restart_during_rotation_grace(tmp_path: Path) -> None:
    log = tmp_path / "messages"
    write(log, "")
    store = MemoryCheckpointStore()
    seen: list[bytes] = []

    async def main() -> None:
        async with Follow(log, store) as f:
            os.rename(log, tmp_path / "messages.1")
            write(log, "new 1\n")
            await f.wait_lines(1)
            seen.extend(f.lines)
        write(tmp_path / "messages.1", "old late\n")  # written to the old file while down
        write(log, "new 2\n")
        async with Follow(log, store) as f:
            await f.wait_lines(2)
            seen.extend(f.lines)

    run(main())
    assert seen == [b"new 1", b"old late", b"new 2"]


def test_checkpoint_only_after_emit_returns(tmp_path: Path) -> None:
    log = tmp_path / "messages"
    write(log, "")
    store = MemoryCheckpointStore()

    async def main() -> None:
        follower = FileFollower(log, store, poll_interval=0.05)

        async def failing(b: LineBatch) -> None:
            raise RuntimeError("downstream broke")

        task = asyncio.create_task(follower.run(failing))
        await follower.started.wait()
        write(log, "x\n")
        with pytest.raises(RuntimeError):
            await asyncio.wait_for(task, 5)
        cp = store.get(str(log))
        assert cp is not None and cp.offset == 0
        async with Follow(log, store) as f:  # the supervisor restarts it: x is not lost
            await f.wait_lines(1)
            assert f.lines == [b"x"]

    run(main())


def test_long_lines_cut_and_counted(tmp_path: Path) -> None:
    log = tmp_path / "messages"
    write(log, "")

    async def main() -> None:
        async with Follow(log, chunk_size=4096) as f:  # small chunks: cut across reads
            write(log, "a" * 20000 + "\nshort\n" + "b" * 9000 + "\n")
            await f.wait_lines(3)
            assert [len(x) for x in f.lines] == [8192, 5, 8192]
            assert f.follower.stats["truncated_lines"] == 2
            write(log, "after\n")
            await f.wait_lines(4)
            assert f.got[-1][1:] == (4, b"after")
            cp = f.store.get(str(log))
            assert cp is not None and cp.offset == log.stat().st_size

    run(main())


def test_random_writes_and_chunks(tmp_path: Path) -> None:
    """Lines written in random pieces come out whole, in order, once."""
    rnd = random.Random(7)
    lines = [(f"L{i} " + "x" * rnd.randrange(0, 300)).encode() for i in range(400)]
    blob = b"".join(line + b"\n" for line in lines)
    log = tmp_path / "messages"
    write(log, "")

    async def main() -> None:
        async with Follow(log, chunk_size=257) as f:
            pos = 0
            while pos < len(blob):
                n = rnd.randrange(1, 2000)
                with open(log, "ab") as fh:
                    fh.write(blob[pos : pos + n])
                pos += n
                if rnd.random() < 0.2:
                    await asyncio.sleep(0.002)
            await f.wait_lines(len(lines))
            assert f.lines == lines
            assert [no for _, no, _ in f.got] == list(range(1, len(lines) + 1))

    run(main())


def test_polling_fallback(tmp_path: Path) -> None:
    log = tmp_path / "messages"
    write(log, "")

    async def main() -> None:
        async with Follow(log, use_inotify=False, poll_interval=0.05) as f:
            assert not f.follower.inotify_active
            write(log, "polled\n")
            await f.wait_lines(1)

    run(main())


def test_latency_with_inotify(tmp_path: Path) -> None:
    log = tmp_path / "messages"
    write(log, "")

    async def main() -> None:
        # a long poll interval: only inotify can make this fast
        async with Follow(log, poll_interval=5.0) as f:
            assert f.follower.inotify_active
            worst = 0.0
            for i in range(5):
                t0 = time.monotonic()
                write(log, f"line {i}\n")
                await until(lambda n=i + 1: len(f.got) == n, timeout=2)
                worst = max(worst, time.monotonic() - t0)
            assert worst < 0.2

    run(main())
