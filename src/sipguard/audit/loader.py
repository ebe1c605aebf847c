"""Loaders, the I/O edge of the parser: `DirLoader` reads a directory, `MemoryLoader` a dict."""

from __future__ import annotations

import fnmatch
import os
import posixpath
from pathlib import Path

from sipguard.audit.parser import MAX_FILE_BYTES

# Absolute includes into the live Asterisk directory are mapped onto the audited copy.
ASTERISK_ETC = "/etc/asterisk/"


def _relative(argument: str, root: str | None) -> str | None:
    arg = argument.replace("\\", "/")
    if arg.startswith(ASTERISK_ETC):
        arg = arg[len(ASTERISK_ETC) :]
    elif root and arg.startswith(root.rstrip("/") + "/"):
        arg = arg[len(root.rstrip("/")) + 1 :]
    elif arg.startswith("/"):
        return None
    norm = posixpath.normpath(arg)
    if norm.startswith("../") or norm == "..":
        return None
    return norm


class MemoryLoader:
    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files

    def read(self, name: str) -> bytes | None:
        return self.files.get(name)

    def resolve(self, argument: str) -> str | None:
        return _relative(argument, None)

    def glob(self, pattern: str) -> list[str]:
        rel = _relative(pattern, None)
        if rel is None:
            return []
        return [n for n in self.files if fnmatch.fnmatchcase(n, rel)]


class DirLoader:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    def _path(self, name: str) -> Path | None:
        path = (self.root / name).resolve()
        if path != self.root and self.root not in path.parents:
            return None
        return path

    def read(self, name: str) -> bytes | None:
        path = self._path(name)
        if path is None or not path.is_file():
            return None
        with path.open("rb") as fh:
            # One byte over the limit is enough for the parser to report the file as too large.
            return fh.read(MAX_FILE_BYTES + 1)

    def resolve(self, argument: str) -> str | None:
        return _relative(argument, str(self.root))

    def glob(self, pattern: str) -> list[str]:
        rel = _relative(pattern, str(self.root))
        if rel is None:
            return []
        out = []
        for path in self.root.glob(rel):
            if path.is_file() and self._path(str(path.relative_to(self.root))) is not None:
                out.append(path.relative_to(self.root).as_posix())
        return out

    def all_files(self) -> list[str]:
        return sorted(
            p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file()
        )
