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
    """Turns arbitrary reads into (whole-lines bytes, first line number) pieces.

    With `views`, a read is not copied: the line the previous read left unfinished is completed
    as a piece of its own (one line copied), and the rest is a memoryview into the read. Without
    `count_lines` the consumer says how many lines each piece held (`advance`), for a consumer
    that counts them anyway (the normalizer): counting newlines costs ~0.6 ms per MB.
    """

    def __init__(self, *, views: bool = False, count_lines: bool = True) -> None:
        self.carry = b""
        self.line_no = 1
        self.cut_lines = 0  # over-long lines cut at MAX_CARRY
        self.views = views
        self.count_lines = count_lines

    def feed(self, data: bytes) -> Iterator[tuple[bytes | memoryview, int]]:
        if self.views:
            yield from self._feed_views(data)
            return
        buf = self.carry + data if self.carry else data
        end = buf.rfind(b"\n") + 1
        if end == 0:
            yield from self._hold(buf)
            return
        self.carry = buf[end:]
        yield from self._emit(buf[:end])

    def _feed_views(self, data: bytes) -> Iterator[tuple[bytes | memoryview, int]]:
        start = 0
        if self.carry:
            newline = data.find(b"\n")
            if newline < 0:
                yield from self._hold(self.carry + data)
                return
            start = newline + 1
            piece, self.carry = self.carry + data[:start], b""
            yield from self._emit(piece)
        end = data.rfind(b"\n") + 1
        if end == 0:
            yield from self._hold(data)
            return
        self.carry = data[end:]
        if end > start:
            yield from self._emit(memoryview(data)[start:end])

    def _hold(self, buf: bytes) -> Iterator[tuple[bytes | memoryview, int]]:
        """`buf` has no newline: keep it for the next read, or cut it when over-long."""
        if len(buf) > MAX_CARRY:
            self.cut_lines += 1
            self.carry = b""
            yield from self._emit(buf + b"\n")
        else:
            self.carry = buf

    def flush(self) -> Iterator[tuple[bytes | memoryview, int]]:
        if self.carry:
            data, self.carry = self.carry + b"\n", b""
            yield from self._emit(data)

    def advance(self, lines: int) -> None:
        """The piece just handed out held `lines` lines (only without count_lines)."""
        self.line_no += lines

    def _emit(self, data: bytes | memoryview) -> Iterator[tuple[bytes | memoryview, int]]:
        first = self.line_no
        if self.count_lines:
            self.line_no += data.count(b"\n") if isinstance(data, bytes) else _lines(data)
        yield data, first


def _lines(view: memoryview) -> int:
    return bytes(view).count(b"\n")


class Scanner:
    def __init__(
        self,
        rules: Iterable[RuleSpec],
        year: int,
        policy: Policy | None = None,
        normalizer: Any = None,
    ) -> None:
        from sipguard.core.asterisk.fast import FastNormalizer, make_normalizer

        if normalizer is None:
            normalizer = make_normalizer(year)  # the C normalizer when built: same events
        self.normalizer = normalizer
        # The C normalizer takes memoryviews (no copy of each read); both count the lines of
        # every piece in stats.lines, so the splitter need not count them again
        self._views = self._counts_lines = isinstance(normalizer, FastNormalizer)
        if not self._views:
            from sipguard.core.asterisk.normalizer import LogNormalizer

            self._counts_lines = isinstance(normalizer, LogNormalizer)
        self.engine = Engine(rules)
        self.policy = policy or Policy(simulate=True)
        self.report = ScanReport()
        self.latest = 0.0
        self.cut_lines = 0
        self.files: list[str] = []

    def feed_file_chunks(self, source: str, chunks: Iterable[bytes]) -> None:
        """All reads of one file (any sizes); line numbers restart at 1 for each file."""
        self.files.append(source)
        splitter = ChunkSplitter(views=self._views, count_lines=not self._counts_lines)
        for data in chunks:
            self._feed_pieces(splitter, splitter.feed(data), source)
        self._feed_pieces(splitter, splitter.flush(), source)
        self.cut_lines += splitter.cut_lines

    def _feed_pieces(
        self,
        splitter: ChunkSplitter,
        pieces: Iterator[tuple[bytes | memoryview, int]],
        source: str,
    ) -> None:
        """The pieces of one read, then one expire(): a read gives one piece, or two when
        its first line is completed apart (views), and expiring between those two would
        count differently (stats.expired) than expiring once per read."""
        normalizer = self.normalizer
        fed = False
        for piece, first in pieces:
            if splitter.count_lines:
                events = normalizer.feed_chunk(piece, source, first)
            else:
                before = normalizer.stats.lines
                events = normalizer.feed_chunk(piece, source, first)
                splitter.advance(normalizer.stats.lines - before)
            self._events(events)
            fed = True
        if fed:
            self.engine.expire(self.latest)

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
