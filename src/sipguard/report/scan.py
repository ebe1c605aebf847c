"""The offline scan pipeline: byte chunks -> normalizer -> engine -> policy (simulation) -> report.

One normalizer for all files, so an attempt logged in both `messages` and `security` counts once.
Chunks are split at their last newline by `ChunkSplitter`, so the normalizer only sees whole
lines; the search for candidate lines inside a chunk is the normalizer's (C-speed) business.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from sipguard.core.alerts import Alert
from sipguard.core.events import Event
from sipguard.detect import Engine, RuleSpec
from sipguard.policy import Policy
from sipguard.report.aggregate import ScanReport

CHUNK = 1024 * 1024  # larger reads buy no speed, and each holds several copies at once
#: A "line" longer than this with no newline is cut, so junk input cannot grow memory.
MAX_CARRY = 8 * 1024 * 1024


class ChunkSplitter:
    """Turns arbitrary reads into (whole-lines bytes, first line number) pieces."""

    def __init__(self) -> None:
        self.carry = b""
        self.line_no = 1
        self.cut_lines = 0  # over-long lines cut at MAX_CARRY

    def feed(self, data: bytes) -> Iterator[tuple[bytes, int]]:
        buf = self.carry + data if self.carry else data
        end = buf.rfind(b"\n") + 1
        if end == 0:
            if len(buf) > MAX_CARRY:
                self.cut_lines += 1
                yield from self._emit(buf + b"\n")
                self.carry = b""
            else:
                self.carry = buf
            return
        self.carry = buf[end:]
        yield from self._emit(buf[:end])

    def flush(self) -> Iterator[tuple[bytes, int]]:
        if self.carry:
            data, self.carry = self.carry + b"\n", b""
            yield from self._emit(data)

    def _emit(self, data: bytes) -> Iterator[tuple[bytes, int]]:
        first = self.line_no
        self.line_no += data.count(b"\n")
        yield data, first


class Scanner:
    def __init__(
        self,
        rules: Iterable[RuleSpec],
        year: int,
        policy: Policy | None = None,
        normalizer: Any = None,
    ) -> None:
        if normalizer is None:
            from sipguard.core.asterisk.fast import make_normalizer

            normalizer = make_normalizer(year)  # the C normalizer when built: same events
        self.normalizer = normalizer
        self.engine = Engine(rules)
        self.policy = policy or Policy(simulate=True)
        self.report = ScanReport()
        self.latest = 0.0
        self.cut_lines = 0
        self.files: list[str] = []

    def feed_file_chunks(self, source: str, chunks: Iterable[bytes]) -> None:
        """All reads of one file (any sizes); line numbers restart at 1 for each file."""
        self.files.append(source)
        splitter = ChunkSplitter()
        for data in chunks:
            for piece, first in splitter.feed(data):
                self.feed_lines(piece, source, first)
        for piece, first in splitter.flush():
            self.feed_lines(piece, source, first)
        self.cut_lines += splitter.cut_lines

    def feed_lines(self, data: bytes, source: str, first_line_no: int) -> None:
        self._events(self.normalizer.feed_chunk(data, source, first_line_no))
        self.engine.expire(self.latest)

    def _events(self, events: Iterable[Event]) -> None:
        add_event, feed = self.report.add_event, self.engine.feed
        latest = self.latest
        for event in events:
            time = event.time
            if time > latest:  # max(latest, time)
                latest = time
            add_event(event)
            alerts = feed(event, time)
            if alerts:
                self._alerts(alerts)
        self.latest = latest

    def _alerts(self, alerts: list[Alert]) -> None:
        report, policy = self.report, self.policy
        for alert in alerts:
            report.add_alert(alert, policy.decide(alert, alert.time))

    def finish(self) -> ScanReport:
        self._events(self.normalizer.flush())
        stats = getattr(self.normalizer, "stats", None)
        normalizer_stats = stats.as_dict() if stats is not None else {}
        self.report.stats = {
            "files": list(self.files),
            "normalizer": normalizer_stats,
            "engine": self.engine.stats.as_dict(),
            "cut_long_lines": self.cut_lines,
        }
        return self.report
