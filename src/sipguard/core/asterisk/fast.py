"""FastNormalizer: LogNormalizer's API on the C normalizer (fastlog/, built into `_fastlog`).

The Python normalizer stays the reference and the fallback: `make_normalizer` returns the C one
when the extension imports, else the Python one, and both give the same events and stats for the
same input (tests/core/test_fastlog_equivalence.py). Lines the C grammars do not handle come back
here through `_fallback` and are parsed by the Python grammars, then linked in C.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from datetime import tzinfo
from types import ModuleType
from typing import TYPE_CHECKING, Any

from sipguard.core.asterisk.candidate import LOG, SECURITY, Candidate
from sipguard.core.asterisk.linker import NormalizerStats
from sipguard.core.events import Event

if TYPE_CHECKING:  # imported on first use: the Python grammars compile ~60 regexes
    from sipguard.core.asterisk.normalizer import LogNormalizer
    from sipguard.core.asterisk.prefix import TimeParser

STATS = (
    "lines",
    "candidates",
    "events",
    "duplicates",
    "malformed",
    "too_long",
    "binary",
    "tampering",
    "unlinked",
    "evicted",
)

_native: ModuleType | None = None
_load_error = ""


def _load() -> ModuleType | None:
    """The extension, once. SIPGUARD_FASTLOG_SO names another build of it (development)."""
    global _native, _load_error
    if _native is not None or _load_error:
        return _native
    name = "sipguard.core.asterisk._fastlog"
    try:
        path = os.environ.get("SIPGUARD_FASTLOG_SO")
        if path:
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load {path}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            sys.modules[name] = module  # one copy: a later import finds this build
            _native = module
        else:
            _native = importlib.import_module(name)
    except ImportError as exc:
        _load_error = str(exc) or "not built"
    return _native


def available() -> bool:
    return _load() is not None


def load_error() -> str:
    _load()
    return _load_error


class FastNormalizer:
    """LogNormalizer.feed_chunk/accept/tick/flush on the C normalizer. `stats` is refreshed after
    every call; `link=False` (tests) makes feed_chunk return the parsed Candidates instead."""

    def __init__(
        self,
        default_year: int = 2026,
        tz: tzinfo | None = None,
        link_window: float = 2.0,
        challenge_window: float = 5.0,
        *,
        link: bool = True,
    ) -> None:
        native = _load()
        if native is None:
            raise ImportError(f"sipguard's C normalizer is not available: {_load_error}")
        self.stats = NormalizerStats()
        clocks: list[TimeParser] = []  # the fallback's, made when first needed

        def fallback(
            raw: bytes, source: str, line_no: int, last_time: float
        ) -> tuple[Candidate | None, bool, float | None]:
            # imported at the first fallback line, for start-up: the Python grammars compile
            # ~60 regexes that a scan of an ordinary log never needs
            from sipguard.core.asterisk.normalizer import decode_line, parse_candidate
            from sipguard.core.asterisk.prefix import TimeParser

            if not clocks:
                clocks.append(TimeParser(default_year, tz))
            return parse_candidate(decode_line(raw), source, line_no, clocks[0], last_time)

        # local times need a tz database: the C side does UTC only, so a tz sends all to Python
        self._c: Any = native.Normalizer(fallback, link_window, challenge_window, link, tz is None)

    def _sync(self) -> None:
        st = self.stats
        for name, value in zip(STATS, self._c.stats(), strict=True):
            setattr(st, name, value)

    def feed_chunk(
        self, data: bytes | bytearray | memoryview, source: str, first_line_no: int
    ) -> list[Event]:
        out: list[Event] = self._c.feed_chunk(data, source, first_line_no)
        self._sync()
        return out

    def accept(self, event: Event) -> list[Event]:
        # here for start-up, like the fallback's imports (security.py compiles its regexes)
        from sipguard.core.asterisk.security import EVENT_KINDS

        name = event.detail.split(" ", 1)[0]
        channel = SECURITY if name in EVENT_KINDS else LOG
        c = Candidate(event, channel, link_name=name if channel == SECURITY else None)
        out: list[Event] = self._c.accept(c)
        self._sync()
        return out

    def tick(self, now: float) -> list[Event]:
        out: list[Event] = self._c.release(now)
        self._sync()
        return out

    def flush(self) -> list[Event]:
        out: list[Event] = self._c.release(None)
        self._sync()
        return out


def make_normalizer(
    default_year: int, tz: tzinfo | None = None, *, native: bool = True
) -> LogNormalizer | FastNormalizer:
    """The C normalizer when built (and `native`), else the Python one: same results."""
    if native and available():
        return FastNormalizer(default_year, tz)
    # here for start-up: with the C normalizer built, the Python grammars are never compiled
    from sipguard.core.asterisk.normalizer import LogNormalizer

    return LogNormalizer(default_year=default_year, tz=tz)
