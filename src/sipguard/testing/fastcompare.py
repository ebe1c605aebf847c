"""The C normalizer against the Python reference, on the same bytes (tests and helpers).

`py_events(data)` / `c_events(data)` run a whole normalizer (feed_chunk in pieces, then flush) and
return (events, stats dict); `py_candidates` / `c_candidates` stop before the linker. `diff` names
the first difference, for assertion messages.
"""

from __future__ import annotations

from collections.abc import Iterable

from sipguard.core.asterisk.candidate import Candidate
from sipguard.core.asterisk.fast import FastNormalizer
from sipguard.core.asterisk.normalizer import LogNormalizer
from sipguard.core.events import Event

Result = tuple[list[Event], dict[str, int]]


def pieces(data: bytes, size: int) -> Iterable[tuple[bytes, int]]:
    """Whole-line pieces of about `size` bytes with their first line numbers, as Scanner feeds."""
    line_no = 1
    start = 0
    while start < len(data):
        cut = data.find(b"\n", start + size) if size > 0 else -1
        end = len(data) if cut < 0 else cut + 1
        piece = data[start:end]
        yield piece, line_no
        line_no += piece.count(b"\n")
        start = end


def _run(n: LogNormalizer | FastNormalizer, data: bytes, source: str, size: int) -> Result:
    out: list[Event] = []
    for piece, first in pieces(data, size):
        out.extend(n.feed_chunk(piece, source, first))
    out.extend(n.flush())
    return out, n.stats.as_dict()


def py_events(data: bytes, source: str = "log", size: int = 0, year: int = 2026) -> Result:
    return _run(LogNormalizer(default_year=year), data, source, size)


def c_events(data: bytes, source: str = "log", size: int = 0, year: int = 2026) -> Result:
    return _run(FastNormalizer(default_year=year), data, source, size)


def py_candidates(data: bytes, source: str = "log", year: int = 2026) -> list[Candidate]:
    """What the Python parser hands to its linker, in order."""
    n = LogNormalizer(default_year=year)
    got: list[Candidate] = []

    def capture(c: Candidate, now: float) -> list[Event]:
        got.append(c)
        return []

    n._run = capture  # type: ignore[method-assign]
    for piece, first in pieces(data, 0):
        n.feed_chunk(piece, source, first)
    return got


def c_candidates(data: bytes, source: str = "log", year: int = 2026) -> list[Candidate]:
    n = FastNormalizer(default_year=year, link=False)
    got: list[Candidate] = []
    for piece, first in pieces(data, 0):
        got.extend(n.feed_chunk(piece, source, first))  # type: ignore[arg-type]
    return got


def diff(a: list[Event] | list[Candidate], b: list[Event] | list[Candidate]) -> str:
    """'' when equal, else where they first differ (origins included)."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y or _origin(x) != _origin(y):
            return f"item {i}:\n  python: {x!r}\n  C:      {y!r}"
    if len(a) != len(b):
        return f"lengths differ: python {len(a)}, C {len(b)}"
    return ""


def _origin(x: object) -> object:
    ev = x.event if isinstance(x, Candidate) else x
    return getattr(ev, "origin", None)
