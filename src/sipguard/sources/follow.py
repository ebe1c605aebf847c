"""Follow log files like `tail -F`, but checkpointed: no line missed or read twice across restarts.

- Wakes on inotify events for the files' directories (a few ms after a write), and polls every
  `poll_interval` as a safety net (and as the only mechanism when inotify is unavailable).
- logrotate rename-and-create: the old file is read to its end, then the new one from 0. The old
  file stays open for `rotate_grace` seconds, because Asterisk keeps writing to it until its
  logger is reloaded.
- copytruncate: a file shorter than our offset, or whose first bytes changed, restarts at 0.
- Only whole lines are emitted; a partial last line waits for its newline. Lines longer than
  `max_line` bytes are cut to that length (and counted), so memory stays bounded.
- The checkpoint is stored after `emit` returns. On start, a checkpoint is used only if the
  file's device, inode and first bytes still match; if the checkpointed file was rotated
  while we were down and is still in the directory, its unread tail is read first.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import hashlib
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from sipguard.sources.base import Checkpoint, CheckpointStore, Emit, LineBatch
from sipguard.sources.inotify import Inotify

log = logging.getLogger(__name__)

HEAD_BYTES = 256  # how much of a file's start identifies it
MAX_LINE = 8192


_GONE = Checkpoint(0, 0, 0, 0, "")  # marks a rotated-file checkpoint as finished


def _rotated_key(path: str) -> str:
    return path + " (rotated)"


def head_hash(fd: int, length: int) -> str:
    data = os.pread(fd, min(HEAD_BYTES, length), 0) if length > 0 else b""
    return hashlib.blake2b(data, digest_size=12).hexdigest()


@dataclass
class _Open:
    """One open file being followed."""

    path: str
    fd: int
    dev: int
    inode: int
    offset: int = 0  # just after the last emitted line
    line_no: int = 0  # lines emitted so far
    pending: bytearray = field(default_factory=bytearray)  # a partial last line
    skipping: bool = False  # inside an over-long line: drop bytes up to its newline
    skipped: int = 0  # bytes dropped so far from that line
    head: str = ""  # head_hash at len `head_len`
    head_len: int = -1
    retire_at: float | None = None  # rotated away: drain until this loop time
    key: str = ""  # checkpoint key (the path, or the path's rotated-file key)

    def __post_init__(self) -> None:
        self.key = self.key or self.path

    @property
    def read_pos(self) -> int:
        return self.offset + len(self.pending) + self.skipped


class FileFollower:
    def __init__(
        self,
        paths_or_globs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
        checkpoints: CheckpointStore,
        poll_interval: float = 0.5,
        from_end_if_new: bool = True,
        *,
        max_line: int = MAX_LINE,
        chunk_size: int = 1 << 20,
        rotate_grace: float = 10.0,
        use_inotify: bool = True,
    ) -> None:
        if isinstance(paths_or_globs, str | os.PathLike):
            paths_or_globs = [paths_or_globs]
        self.patterns = [os.path.abspath(os.fspath(p)) for p in paths_or_globs]
        self.checkpoints = checkpoints
        self.poll_interval = poll_interval
        self.from_end_if_new = from_end_if_new
        self.max_line = max_line
        self.chunk_size = chunk_size
        self.rotate_grace = rotate_grace
        self.use_inotify = use_inotify
        self.stats = {
            "lines": 0,
            "batches": 0,
            "truncated_lines": 0,
            "rotations": 0,
            "truncations": 0,
            "read_errors": 0,
        }
        self.inotify_active = False
        self.started = asyncio.Event()  # set after the first scan
        self._files: dict[str, _Open] = {}
        self._retired: list[_Open] = []
        self._wake = asyncio.Event()
        self._long = re.compile(rb"[^\n]{%d,}" % (max_line + 1))
        self._first_scan = True

    # main loop -------------------------------------------------------------------------
    async def run(self, emit: Emit) -> None:
        loop = asyncio.get_running_loop()
        ino: Inotify | None = None
        if self.use_inotify:
            try:
                ino = Inotify(self._on_inotify)
                ino.attach(loop)
                self.inotify_active = True
            except OSError as e:
                log.warning("inotify unavailable (%s); polling every %s s", e, self.poll_interval)
        try:
            while True:
                self._wake.clear()
                if ino is not None:
                    for d in {os.path.dirname(p) for p in self.patterns}:
                        if not glob.has_magic(d):
                            ino.watch_dir(d)
                await self._scan(emit, loop.time())
                if self._first_scan:
                    self._first_scan = False
                    self.started.set()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_interval):
                        await self._wake.wait()
        finally:
            if ino is not None:
                ino.close()
            for f in [*self._files.values(), *self._retired]:
                os.close(f.fd)
            self._files.clear()
            self._retired.clear()

    def _on_inotify(self, directory: str, name: str, mask: int) -> None:
        self._wake.set()

    async def _scan(self, emit: Emit, now: float) -> None:
        for old in list(self._retired):  # rotated-away files first: their lines are older
            await self._read(old, emit, save=True)
            if old.retire_at is not None and now >= old.retire_at:
                self._retired.remove(old)
                os.close(old.fd)
                self.checkpoints.set(old.key, _GONE)
        for path in self._matching_paths():
            f = self._files.get(path)
            if f is None:
                f = await self._open_new(path, emit)
                if f is None:
                    continue
                self._files[path] = f
            await self._read(f, emit, save=True)
            await self._check_rotation(f, emit, now)

    def _matching_paths(self) -> list[str]:
        out: list[str] = []
        for p in self.patterns:
            matches = sorted(glob.glob(p)) if glob.has_magic(p) else [p]
            out += [m for m in matches if m not in out]
        # keep following files we already have, even if they vanished from the directory
        out += [p for p in self._files if p not in out]
        return out

    # opening ---------------------------------------------------------------------------
    async def _open_new(self, path: str, emit: Emit) -> _Open | None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None  # not there yet
        st = os.fstat(fd)
        f = _Open(path, fd, st.st_dev, st.st_ino)
        # a file rotated away while it was still being drained when we stopped
        rotated = self.checkpoints.get(_rotated_key(path))
        if rotated is not None and rotated.inode:
            await self._drain_old(path, _rotated_key(path), rotated, emit)
            self.checkpoints.set(_rotated_key(path), _GONE)
        cp = self.checkpoints.get(path)
        if cp is not None and self._same_file(fd, st.st_size, st.st_dev, st.st_ino, cp):
            f.offset, f.line_no = cp.offset, cp.line_no
        elif cp is not None:
            # A different file now: rotated (or truncated) while we were down. Read the tail
            # of the old file if it is still around, then this one from the start.
            await self._drain_old(path, path, cp, emit)
            self._save(f)
        elif self._first_scan and self.from_end_if_new:
            f.offset, f.line_no = self._end_of_last_line(fd, st.st_size)
            self._save(f)
        return f

    def _same_file(self, fd: int, size: int, dev: int, ino: int, cp: Checkpoint) -> bool:
        return (
            (dev, ino) == (cp.dev, cp.inode)
            and size >= cp.offset
            and head_hash(fd, cp.offset) == cp.head_hash
        )

    async def _drain_old(self, path: str, key: str, cp: Checkpoint, emit: Emit) -> None:
        """Read the unread tail of the checkpointed file, found by inode in its directory."""
        directory = os.path.dirname(path)
        try:
            names = os.listdir(directory)
        except OSError:
            return
        for name in names:
            other = os.path.join(directory, name)
            try:
                st = os.stat(other)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) != (cp.dev, cp.inode):
                continue
            fd = os.open(other, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if self._same_file(fd, st.st_size, st.st_dev, st.st_ino, cp):
                    old = _Open(path, fd, st.st_dev, st.st_ino, cp.offset, cp.line_no, key=key)
                    await self._read(old, emit, save=True)
                    self.stats["rotations"] += 1
            finally:
                os.close(fd)
            return

    def _end_of_last_line(self, fd: int, size: int) -> tuple[int, int]:
        """Offset after the last complete line, and the number of lines before it."""
        lines, pos, last_nl = 0, 0, 0
        while pos < size:
            data = os.pread(fd, self.chunk_size, pos)
            if not data:
                break
            lines += data.count(b"\n")
            nl = data.rfind(b"\n")
            if nl >= 0:
                last_nl = pos + nl + 1
            pos += len(data)
        return last_nl, lines

    # reading ---------------------------------------------------------------------------
    async def _read(self, f: _Open, emit: Emit, *, save: bool) -> None:
        try:
            st = os.fstat(f.fd)
        except OSError:
            self.stats["read_errors"] += 1
            return
        if st.st_size < f.read_pos or not self._head_ok(f, st.st_size):
            # copytruncate (or truncated and rewritten): start over at 0
            self.stats["truncations"] += 1
            f.offset = f.line_no = 0
            f.pending.clear()
            f.skipping, f.skipped = False, 0
            f.head, f.head_len = "", -1
            if save:
                self._save(f)
        while True:
            try:
                data = os.pread(f.fd, self.chunk_size, f.read_pos)
            except OSError:
                self.stats["read_errors"] += 1
                return
            if not data:
                return
            await self._consume(f, data, emit, save)
            if len(data) < self.chunk_size:
                return

    def _head_ok(self, f: _Open, size: int) -> bool:
        want = min(HEAD_BYTES, f.offset)
        if want == 0:
            return True
        if f.head_len != want:  # first look, or the head grew: remember it, nothing to compare
            f.head, f.head_len = head_hash(f.fd, want), want
            return True
        return head_hash(f.fd, want) == f.head

    async def _consume(self, f: _Open, data: bytes, emit: Emit, save: bool) -> None:
        start = 0
        if f.skipping:
            nl = data.find(b"\n")
            if nl < 0:
                f.skipped += len(data)
                return
            # the cut line is complete: emit its first max_line bytes
            f.pending += b"\n"
            start = nl + 1
            f.skipped += nl  # bytes dropped, plus the newline consumed below
            f.skipping = False
            chunk = bytes(f.pending)
            consumed = len(f.pending) - 1 + f.skipped + 1
            f.pending.clear()
            f.skipped = 0
            await self._emit(f, chunk, consumed, emit, save)
        last_nl = data.rfind(b"\n", start)
        if last_nl >= 0:
            whole = data[start : last_nl + 1]
            if f.pending:
                whole = bytes(f.pending) + whole
            consumed = len(whole)
            f.pending.clear()
            if self._long.search(whole):
                whole = self._cut_long_lines(whole)
            await self._emit(f, whole, consumed, emit, save)
            start = last_nl + 1
        rest = data[start:]
        if rest:
            f.pending += rest
            if len(f.pending) > self.max_line:
                # an over-long partial line: keep its head, drop the rest up to its newline
                f.skipped = len(f.pending) - self.max_line
                del f.pending[self.max_line :]
                f.skipping = True
                self.stats["truncated_lines"] += 1

    def _cut_long_lines(self, whole: bytes) -> bytes:
        out = []
        for line in whole.split(b"\n")[:-1]:
            if len(line) > self.max_line:
                self.stats["truncated_lines"] += 1
                line = line[: self.max_line]
            out.append(line)
        return b"\n".join(out) + b"\n"

    async def _emit(self, f: _Open, chunk: bytes, consumed: int, emit: Emit, save: bool) -> None:
        n = chunk.count(b"\n")
        await emit(LineBatch(f.path, f.line_no + 1, chunk))
        f.offset += consumed
        f.line_no += n
        self.stats["lines"] += n
        self.stats["batches"] += 1
        if save:
            self._save(f)

    def _save(self, f: _Open) -> None:
        want = min(HEAD_BYTES, f.offset)
        if f.head_len != want:
            f.head, f.head_len = head_hash(f.fd, want), want
        self.checkpoints.set(f.key, Checkpoint(f.dev, f.inode, f.offset, f.line_no, f.head))

    # rotation --------------------------------------------------------------------------
    async def _check_rotation(self, f: _Open, emit: Emit, now: float) -> None:
        try:
            st = os.stat(f.path)
        except FileNotFoundError:
            return  # renamed away, new file not created yet: keep reading the old one
        except OSError:
            return
        if (st.st_dev, st.st_ino) == (f.dev, f.inode):
            return
        # rename-and-create: finish the old file, keep draining it for a grace period
        # (under its own checkpoint key), and start the new file from its first byte.
        for prev in [r for r in self._retired if r.key == _rotated_key(f.path)]:
            await self._read(prev, emit, save=False)  # rotated twice within the grace period
            self._retired.remove(prev)
            os.close(prev.fd)
        f.key = _rotated_key(f.path)
        await self._read(f, emit, save=True)
        self._save(f)
        self.stats["rotations"] += 1
        f.retire_at = now + self.rotate_grace
        self._retired.append(f)
        del self._files[f.path]
        new = await self._open_rotated_in(f.path)
        if new is not None:
            self._files[f.path] = new
            self._save(new)
            await self._read(new, emit, save=True)

    async def _open_rotated_in(self, path: str) -> _Open | None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        st = os.fstat(fd)
        return _Open(path, fd, st.st_dev, st.st_ino)
