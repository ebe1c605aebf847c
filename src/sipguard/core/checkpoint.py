"""Where a followed source got to: written by the sources, kept by the store."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """How far a source got, and how to recognise the same file after a restart.

    File sources: `dev`/`inode` identify the file, `offset` is the byte just after the last
    emitted line, `line_no` the number of lines emitted so far, `head_hash` a hash of the
    file's first bytes (catches a truncated-and-rewritten file that kept its inode).
    Cursor-based sources (journald) keep their cursor in `head_hash` and zeros elsewhere.
    """

    dev: int
    inode: int
    offset: int
    line_no: int
    head_hash: str
