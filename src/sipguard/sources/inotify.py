"""Linux inotify through ctypes (libc), wired into asyncio with loop.add_reader.

Only directories are watched: a watch on the directory keeps working across logrotate's
rename-and-create, and it also reports files that do not exist yet.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import errno
import os
import struct
from collections.abc import Callable

IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

DIR_MASK = (
    IN_MODIFY
    | IN_ATTRIB
    | IN_CLOSE_WRITE
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_CREATE
    | IN_DELETE
    | IN_DELETE_SELF
    | IN_MOVE_SELF
    | IN_ONLYDIR
)

_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (struct inotify_event)


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        lib = ctypes.CDLL(name or "libc.so.6", use_errno=True)
        lib.inotify_init1.argtypes = [ctypes.c_int]
        lib.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        lib.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
        return lib
    except (OSError, AttributeError):
        return None


class Inotify:
    """One inotify instance. `on_change(dir, name, mask)` is called for each event.

    Raises OSError if inotify is unavailable; callers fall back to polling.
    """

    def __init__(self, on_change: Callable[[str, str, int], None]) -> None:
        lib = _libc()
        if lib is None:
            raise OSError(errno.ENOSYS, "inotify not available (no libc)")
        self._lib = lib
        fd = lib.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            e = ctypes.get_errno()
            raise OSError(e, f"inotify_init1: {os.strerror(e)}")
        self.fd: int = fd
        self._on_change = on_change
        self._dirs: dict[int, str] = {}  # wd -> directory
        self._loop: asyncio.AbstractEventLoop | None = None
        self.overflows = 0

    def watch_dir(self, path: str) -> bool:
        """Watch a directory; False if it does not exist (yet) or cannot be watched."""
        if path in self._dirs.values():
            return True
        wd = self._lib.inotify_add_watch(self.fd, os.fsencode(path), DIR_MASK)
        if wd < 0:
            return False
        self._dirs[wd] = path
        return True

    @property
    def watched(self) -> set[str]:
        return set(self._dirs.values())

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        loop.add_reader(self.fd, self._readable)

    def _readable(self) -> None:
        while True:
            try:
                buf = os.read(self.fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                return
            if not buf:
                return
            self._parse(buf)

    def _parse(self, buf: bytes) -> None:
        pos = 0
        while pos + _EVENT.size <= len(buf):
            wd, mask, _cookie, length = _EVENT.unpack_from(buf, pos)
            raw = buf[pos + _EVENT.size : pos + _EVENT.size + length]
            pos += _EVENT.size + length
            name = os.fsdecode(raw.rstrip(b"\0"))
            if mask & IN_Q_OVERFLOW:
                self.overflows += 1
                self._on_change("", "", mask)  # events lost: rescan everything
                continue
            directory = self._dirs.get(wd, "")
            if mask & IN_IGNORED:
                self._dirs.pop(wd, None)  # the directory went away; re-added on rescan
            self._on_change(directory, name, mask)

    def close(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self.fd)
            self._loop = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
