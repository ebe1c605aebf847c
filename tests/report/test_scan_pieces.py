"""The scan's zero-copy path: reads split into memoryview pieces, line numbers taken from the
normalizer's own count, one expire per read: the same pieces, lines, events and report as the
plain copying/counting path."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sipguard.report.scan as scan_mod
from sipguard.config.rules import load_rules
from sipguard.core.asterisk import LogNormalizer
from sipguard.core.asterisk.fast import available, make_normalizer
from sipguard.report.render import render
from sipguard.report.scan import ChunkSplitter, Scanner

RULES = Path(scan_mod.__file__).parent.parent / "rules"
SAMPLES = b"".join(p.read_bytes() for p in sorted(RULES.glob("*/samples/*.log")))

reads = st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"\n")), max_size=30)


def split(splitter: ChunkSplitter, chunks: list[bytes]) -> list[tuple[bytes, int]]:
    out = []
    for pieces in [*(splitter.feed(c) for c in chunks), splitter.flush()]:
        for piece, first in pieces:  # lazily: advance() comes before the next piece
            data = bytes(piece)
            out.append((data, first))
            if not splitter.count_lines:
                splitter.advance(data.count(b"\n"))
    return out


def lines(pieces: list[tuple[bytes, int]]) -> list[tuple[bytes, int]]:
    """(line, number) pairs: how pieces are cut does not matter, what they hold does."""
    out = []
    for data, first in pieces:
        out.extend((line, first + i) for i, line in enumerate(data.split(b"\n")[:-1]))
    return out


@settings(max_examples=300, deadline=None)
@given(reads, st.sampled_from([(True, True), (True, False), (False, False)]))
def test_views_give_the_same_lines(chunks: list[bytes], mode: tuple[bool, bool]) -> None:
    views, count = mode
    plain = split(ChunkSplitter(), chunks)
    got = split(ChunkSplitter(views=views, count_lines=count), chunks)
    assert lines(got) == lines(plain)
    assert all(data.endswith(b"\n") for data, _ in got)
    # a read gives at most two pieces: its first line completed apart, and the rest
    assert len(got) <= 2 * len(chunks) + 1


@given(reads)
def test_views_cut_over_long_lines_the_same(chunks: list[bytes]) -> None:
    old = scan_mod.MAX_CARRY
    scan_mod.MAX_CARRY = 16
    try:
        a, b = ChunkSplitter(), ChunkSplitter(views=True)
        assert lines(split(b, chunks)) == lines(split(a, chunks))
        assert a.cut_lines == b.cut_lines
    finally:
        scan_mod.MAX_CARRY = old


def test_a_read_is_not_copied() -> None:
    s = ChunkSplitter(views=True)
    data = b"one\ntwo\nthr"
    ((piece, first),) = s.feed(data)
    assert isinstance(piece, memoryview) and piece.obj is data and first == 1
    assert [(bytes(p), n) for p, n in s.feed(b"ee\nfour\n")] == [(b"three\n", 3), (b"four\n", 4)]


class Counting:
    """A normalizer the scanner does not know: it must split and count the plain way."""

    def __init__(self) -> None:
        self.inner = LogNormalizer(default_year=2026)
        self.stats = self.inner.stats
        self.pieces: list[type] = []

    def feed_chunk(self, data: bytes, source: str, first_line_no: int) -> list:
        self.pieces.append(type(data))
        return self.inner.feed_chunk(data, source, first_line_no)

    def flush(self) -> list:
        return self.inner.flush()


def scan(normalizer: object, chunks: list[bytes]) -> tuple[str, dict]:
    scanner = Scanner(load_rules(None), 2026, normalizer=normalizer)
    scanner.feed_file_chunks("messages", chunks)
    report = scanner.finish()
    out = io.StringIO()
    render(report, "json", out)
    return out.getvalue(), dict(report.stats)


@pytest.mark.parametrize("size", [1, 7, 100, 4096])
def test_same_report_every_way(size: int) -> None:
    chunks = [SAMPLES[i : i + size] for i in range(0, len(SAMPLES), size)]
    counting = Counting()
    want = scan(counting, chunks)
    assert set(counting.pieces) == {bytes}
    assert scan(LogNormalizer(default_year=2026), chunks) == want
    if available():
        assert scan(make_normalizer(2026), chunks) == want
