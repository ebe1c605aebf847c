"""What every line source hands downstream, and where it remembers how far it got."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from sipguard.core.checkpoint import Checkpoint as Checkpoint  # one type, re-exported


@dataclass(frozen=True, slots=True)
class LineBatch:
    """Whole lines read in one go from one source.

    `data` holds complete lines, each ending in b"\\n" (a source never emits half a line).
    `first_line_no` is the 1-based number of the first line within its file, so an event
    can point back to the exact line that caused it. `read_at` (monotonic) is when the source
    read them: the start of the ban latency the daemon measures.
    """

    source: str
    first_line_no: int
    data: bytes
    read_at: float = field(default_factory=time.monotonic, compare=False)

    def lines(self) -> list[bytes]:
        """The lines without their newline."""
        return self.data.split(b"\n")[:-1] if self.data else []

    @property
    def line_count(self) -> int:
        return self.data.count(b"\n")


class CheckpointStore(Protocol):
    def get(self, source: str) -> Checkpoint | None: ...

    def set(self, source: str, cp: Checkpoint) -> None: ...


class MemoryCheckpointStore:
    """A CheckpointStore in a dict, for tests and for running without a state directory."""

    def __init__(self) -> None:
        self.data: dict[str, Checkpoint] = {}
        self.writes = 0

    def get(self, source: str) -> Checkpoint | None:
        return self.data.get(source)

    def set(self, source: str, cp: Checkpoint) -> None:
        self.data[source] = cp
        self.writes += 1


Emit = Callable[[LineBatch], Awaitable[None]]
