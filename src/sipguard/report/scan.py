"""The offline scan pipeline: byte chunks -> normalizer -> engine -> policy (simulation) -> report.

One normalizer for all files, so an attempt logged in both `messages` and `security` counts once.
Chunks are split at their last newline by `ChunkSplitter`, so the normalizer only sees whole
lines; the search for candidate lines inside a chunk is the normalizer's (C-speed) business.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import cast

from sipguard.detect import Engine, RuleSpec
from sipguard.pipeline import Normalizer, Pipeline
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
    """Files through one `Pipeline` in replay time (each event judged at its own time), the
    report watching every event and every alert with its (simulated) decision."""

    def __init__(
        self,
        rules: Iterable[RuleSpec],
        year: int,
        policy: Policy | None = None,
        normalizer: Normalizer | None = None,
    ) -> None:
        from sipguard.core.asterisk.fast import FastNormalizer, make_normalizer

        if normalizer is None:
            normalizer = make_normalizer(year)  # the C normalizer when built: same events
        # The C normalizer takes memoryviews (no copy of each read); both count the lines of
        # every piece in stats.lines, so the splitter need not count them again
        self._views = self._counts_lines = isinstance(normalizer, FastNormalizer)
        if not self._views:
            from sipguard.core.asterisk.normalizer import LogNormalizer

            self._counts_lines = isinstance(normalizer, LogNormalizer)
        self.report = ScanReport()
        self.pipeline = Pipeline(
            normalizer,
            Engine(rules),
            policy or Policy(simulate=True),
            on_event=self.report.add_event,
            on_alert=self.report.add_alert,
        )
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
        pipeline = self.pipeline
        stats = pipeline.normalizer.stats
        fed = False
        for piece, first in pieces:
            # memoryviews come only with views=True, i.e. only to the C normalizer, which
            # reads any buffer: the protocol names bytes, what both normalizers take
            data = cast(bytes, piece)
            if splitter.count_lines:
                pipeline.lines(data, source, first, None)
            else:
                before = stats.lines
                pipeline.lines(data, source, first, None)
                splitter.advance(stats.lines - before)
            fed = True
        if fed:
            pipeline.expire(pipeline.latest)

    def finish(self) -> ScanReport:
        pipeline = self.pipeline
        pipeline.flush(None)
        self.report.stats = {
            "files": list(self.files),
            "normalizer": pipeline.normalizer.stats.as_dict(),
            "engine": pipeline.detector.stats.as_dict(),
            "cut_long_lines": self.cut_lines,
        }
        return self.report
