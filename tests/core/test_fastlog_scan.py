"""fastlog scan.c: the chunk loop, line/binary/too_long counts, the candidate finder, line numbers,
and prefix.c: Asterisk's own prefix and its time, against LogNormalizer.feed_chunk (the reference).

The C normalizer runs unlinked (link=False) so that what is compared is exactly what scan.c and
prefix.c decide: which lines are candidates, with which line number and text, what their prefix
and time parse to (through the grammars or the Python fallback), and the counts. Both finders run:
the AVX2 one and the plain line loop (SIPGUARD_FASTLOG_SCALAR=1).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sipguard.core.asterisk import fast
from sipguard.core.asterisk.candidate import Candidate
from sipguard.core.asterisk.normalizer import (
    MAX_LINE,
    NO_PHRASES,
    PHRASES,
    LogNormalizer,
    decode_line,
    parse_candidate,
)
from sipguard.core.asterisk.prefix import TimeParser

_fastlog: Any = fast._load()  # the build SIPGUARD_FASTLOG_SO names, if any (sanitizer runs)
if _fastlog is None:
    if os.environ.get("SIPGUARD_REQUIRE_NATIVE") == "1":
        raise RuntimeError(f"the C normalizer is required here but: {fast.load_error()}")
    pytest.skip(f"C normalizer not built: {fast.load_error()}", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
SOURCE = "/var/log/asterisk/full"
FINDERS = ["simd", "scalar"]
ALL_PHRASES = [*PHRASES, *NO_PHRASES]
LINE = (
    "[2026-11-22 01:37:07.992] NOTICE[18562] res_pjsip/pjsip_distributor.c: Request 'REGISTER' "
    "from '\"1001\" <sip:1001@127.0.0.1>' failed for '127.0.0.1:5301' (callid: 1951665900) - "
    "Failed to authenticate"
)

Chunks = list[tuple[bytes, int]]


class _Reference(LogNormalizer):
    """LogNormalizer that keeps the candidates instead of linking them."""

    def __init__(self) -> None:
        super().__init__()
        self.cands: list[Candidate] = []

    def _run(self, c: Candidate, now: float) -> list:  # type: ignore[type-arg]
        self.cands.append(c)
        return []


@contextmanager
def finder(name: str) -> Iterator[None]:
    """The finder a Normalizer picks when it first scans (it reads the variable once)."""
    old = os.environ.pop("SIPGUARD_FASTLOG_SCALAR", None)
    if name == "scalar":
        os.environ["SIPGUARD_FASTLOG_SCALAR"] = "1"
    try:
        yield
    finally:
        os.environ.pop("SIPGUARD_FASTLOG_SCALAR", None)
        if old is not None:
            os.environ["SIPGUARD_FASTLOG_SCALAR"] = old


def py_run(chunks: Chunks) -> tuple[list[Candidate], tuple[int, ...], float]:
    ref = _Reference()
    for data, first in chunks:
        ref.feed_chunk(data, SOURCE, first)
    s = ref.stats
    return ref.cands, (s.lines, s.candidates, s.malformed, s.too_long, s.binary), ref._last_time


def c_run(
    chunks: Chunks, native: bool = True, name: str = "simd"
) -> tuple[list[Candidate], tuple[int, ...], float, list[int]]:
    clock = TimeParser(2026, None)
    calls: list[int] = []

    def fallback(raw: bytes, source: str, line_no: int, last: float):  # type: ignore[no-untyped-def]
        calls.append(line_no)
        return parse_candidate(decode_line(raw), source, line_no, clock, last)

    norm = _fastlog.Normalizer(fallback, 2.0, 5.0, False, native)
    out: list[Candidate] = []
    with finder(name):
        for data, first in chunks:
            out += norm.feed_chunk(data, SOURCE, first)
    s = norm.stats()
    assert s[2] == 0  # unlinked: no events
    return out, (s[0], s[1], s[4], s[5], s[6]), norm.last_time, calls


def split(data: bytes, cuts: list[int]) -> Chunks:
    """Chunks cut at the given offsets (anywhere, also inside lines), numbered as a reader would."""
    chunks: Chunks = []
    line_no = 1
    prev = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        if prev < cut <= len(data):
            piece = data[prev:cut]
            chunks.append((piece, line_no))
            line_no += piece.count(b"\n")
            prev = cut
    return chunks


def same(chunks: Chunks, native: bool = True, name: str = "simd") -> list[int]:
    """Asserts C == Python on the chunks; returns the line numbers the fallback was called for."""
    py_cands, py_stats, py_last = py_run(chunks)
    c_cands, c_stats, c_last, calls = c_run(chunks, native, name)
    assert c_stats == py_stats
    assert len(c_cands) == len(py_cands)
    for c, p in zip(c_cands, py_cands, strict=True):
        assert c == p, (c, p)
    assert c_last == py_last
    return calls


def corpus() -> bytes:
    lines: list[str] = []
    for path in sorted((ROOT / "src/sipguard/rules").glob("*/samples/*.log")):
        lines += path.read_text(errors="replace").splitlines()
    samples = (ROOT / "tests/samples/asterisk_lines.txt").read_text().splitlines()
    lines += [s for s in samples if s and not s.startswith(("#", ">"))]
    return ("\n".join(lines) + "\n").encode()


# -- whole inputs ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", FINDERS)
@pytest.mark.parametrize("native", [True, False])
def test_corpus(name: str, native: bool) -> None:
    data = corpus()
    assert data.count(b"\n") > 150
    calls = same([(data, 1)], native, name)
    if not native:
        assert len(calls) == py_run([(data, 1)])[1][1]  # every candidate went to Python


@pytest.mark.parametrize("name", FINDERS)
def test_corpus_cut_anywhere(name: str) -> None:
    data = corpus()
    rnd = random.Random(7)
    for _ in range(5):
        same(split(data, [rnd.randrange(len(data)) for _ in range(40)]), True, name)


@pytest.mark.parametrize(("seed", "share", "sources"), [(1, 0.05, 0), (2, 0.4, 500)])
def test_generated(genlog, seed: int, share: float, sources: int) -> None:  # type: ignore[no-untyped-def]
    data = genlog(4000, seed, share, sources)
    same([(data, 1)])
    same([(data, 1)], name="scalar")
    lines = data.split(b"\n")
    same([(b"\n".join(lines[:1000]) + b"\n", 1), (b"\n".join(lines[1000:]), 1001)])


# -- counting -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", FINDERS)
def test_lines_and_too_long(name: str) -> None:
    phrase = b" failed for '1.2.3.4:5060' - Wrong password"
    parts = [
        b"a" * 8192,  # exactly MAX_LINE: not too long
        b"b" * 8193,
        LINE.encode() + b"x" * (8300 - len(LINE)),  # a candidate, truncated
        b"c" * (MAX_LINE - 3) + phrase,  # phrase across the cut: still a candidate
        b"d" * 20000 + phrase,  # phrase far beyond the cut
        b"[2026-11-22 01:02:03] NOTICE[1] chan_sip.c: " + b"e" * (MAX_LINE - 52) + b"\r\r" + phrase,
        LINE.encode() + b"\r\r\r",
        b"",
        b"\r",
        b"f" * 40000,
    ]
    for tail in (b"", b"\n", b"g" * 9000):
        data = b"\n".join(parts) + b"\n" + tail
        _, stats, _ = py_run([(data, 1)])
        assert stats[3] == 6 + (tail == b"g" * 9000)  # the reference counts what we think it does
        same([(data, 1)], True, name)
        same([(data, 3)], False, name)


def test_several_megabyte_lines() -> None:
    big = b"x" * 3_000_000
    data = big + b" failed\n" + LINE.encode() + b"\n" + big + b"\n" + big
    for name in FINDERS:
        same([(data, 10)], True, name)
        same([(LINE.encode() + b"\n" + big + b"\x00" + big + b" failed", 10)], True, name)


@pytest.mark.parametrize("name", FINDERS)
def test_binary_lines(name: str) -> None:
    line = LINE.encode()
    data = b"\n".join(
        [
            line,
            line.replace(b"NOTICE", b"NOT\x00CE"),  # a candidate holding NUL: skipped
            b"\x00\x00junk\x00",  # one line, three NULs
            b"\x00" + b"y" * 9000,  # binary and too long
            line,
            b"\x00",
            line + b"\x00",
        ]
    )
    _, stats, _ = py_run([(data, 1)])
    assert stats[4] == 5 and stats[1] == 2
    same([(data, 1)], True, name)
    same([(data + b"\n", 1), (b"tail \x00 failed", 9)], True, name)
    for pad in range(0, 140, 3):  # a NUL before, across and after the end of the last block
        last = b"x" * pad + b"\x00" + b"y" * (pad % 7)
        same([(line + b"\n" + last, 1)], False, name)
        same([(line + b"\n" + last + b" failed", 1)], False, name)


def test_every_phrase_at_every_block_offset() -> None:
    """Each phrase (and the fingerprint windows inside it) at each offset of the 32-byte blocks,
    also at the very end of the chunk where the finder's last block cannot reach."""
    for phrase in ALL_PHRASES:
        for pad in range(0, 140):
            data = b"x" * pad + phrase.encode() + b"y" * (pad % 5)
            for name in FINDERS:
                c = same([(data, 1)], False, name)
                assert c == [1]
                c = same([(b"ab\n" + data + b"\nzz\n" + data[pad + 1 :], 1)], False, name)
                assert c == [2]


def test_almost_phrases_are_not_candidates() -> None:
    near = []
    for p in ALL_PHRASES:
        b = p.encode()
        near += [b[:-1], b[1:], b[:-1] + bytes([b[-1] ^ 0x20]), b[: len(b) // 2] + b"\n" + b]
    data = b" . ".join(near).replace(b"\n", b"-") + b"\n"
    for name in FINDERS:
        calls = same([(data * 3, 1)], False, name)
        assert calls == []


# -- the native prefix ----------------------------------------------------------------------------
def test_native_forms_and_fallback_forms() -> None:
    native = [
        LINE,
        "[2026-11-22 01:02:03] NOTICE[1][C-0000001a]: chan_sip.c:123 in check_auth: "
        "Registration from '<sip:1@x>' failed for '1.2.3.4:5060' - Wrong password",
        "[2026-11-22 01:02:03.5]NOTICE[1]: chan_sip.c:1 f: Registration from '<sip:1@x>' failed "
        "for '1.2.3.4:5060' - Wrong password",
    ]
    ext = "[2026-11-22 01:02:03] VERBOSE[1][C-1] Ext. 100:1 @ default: failed for '1.1.1.1'"
    fallback = [
        "[Nov 22 01:02:03] " + LINE.split("] ", 1)[1],
        "Nov 22 01:02:03 pbx asterisk[1]: " + LINE.split("] ", 1)[1],
        LINE.replace("1001", "10\xe901"),
        "\x1b[1;32m" + LINE,
        LINE.replace("2026-11-22", "2026-13-22"),  # no time: the last line's
        "[1970-01-01 00:00:00] NOTICE[1] x.c: failed",  # time 0.0 is None to split_prefix
        LINE.replace("[18562]", "[]"),
    ]
    lines = [*native, ext, *fallback]
    data = "\n".join(lines).encode("utf-8") + b"\n"
    calls = same([(data, 1)])
    fallback_lines = set(range(len(native) + 2, len(lines) + 1))
    assert fallback_lines <= set(calls)  # the Ext. line is counted natively, never sent back
    assert len(native) + 1 not in calls
    assert py_run([(data, 1)])[1][2] >= 1


def _alt(*xs: str) -> st.SearchStrategy[str]:
    # the first, well-formed value is drawn most often
    return st.sampled_from((xs[0],) * len(xs) + xs)


_TWO = st.one_of(st.integers(0, 59), st.integers(0, 99)).map(lambda v: f"{v:02d}")
_PREFIX = st.builds(
    lambda *parts: "".join(parts),
    _alt("[", "", "<1>"),
    _alt("2026", "1970", "0000", "0001", "9999", "1969"),
    st.just("-"),
    _alt("11", "01", "02", "12", "13", "00"),
    st.just("-"),
    _alt("22", "01", "00", "29", "31", "99"),
    st.just(" "),
    _TWO,
    st.just(":"),
    _TWO,
    st.just(":"),
    _TWO,
    _alt(".456", "", ".", ".0", ".000000", ".123456", ".1234567", ".999999", ".x"),
    _alt("]", "", "}"),
    _alt(" ", "", "  ", "\t"),
    _alt("NOTICE", "WARNING", "A", "AB", "A" * 16, "A" * 17, "LOG_1", "a", "DTMF"),
    _alt("[123]", "[1]", "[1234567890]", "[12345678901]", "[]", "[x]"),
    _alt("", "[C-00000001]", "[C-1]", "[C-" + "a" * 16 + "]", "[C-" + "a" * 17 + "]", "[C-]"),
    _alt("", ":"),
    _alt(" ", "", "  ", "\t"),
    _alt(
        "chan_sip.c: ",
        "",
        "res_pjsip/pjsip_distributor.c: ",
        "chan_sip.c:1234 handle_request: ",
        "chan_sip.c:1234 in handle_request: ",
        "chan_sip.c:12345678 f: ",
        "f" * 128 + ": ",
        "f" * 129 + ": ",
        "chan_sip.c:12 " + "g" * 128 + ": ",
        "chan_sip.c:12 " + "g" * 129 + ": ",
        "chan_sip.c:12 in : ",
        "chan_sip.c:12 in: ",
        "Ext. 100:1 @ default: ",
        "a.c:1 b c: ",
        ": ",
        "x :  ",
    ),
)
_MESSAGE = _alt(
    "Registration from '<sip:1@x>' failed for '1.2.3.4:5060' - Wrong password",
    "Request 'INVITE' from '<sip:1@x>' failed for '[2001:db8::1]:5060' (callid: a) - "
    "No matching endpoint found",
    "  failed  ",
    "x failed\t",
    "failed\x1f",
    "fail\xe9d failed",
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(_PREFIX, _MESSAGE, _alt("\n", "\r\n", "\r\r\n")), max_size=8))
def test_prefix_variants(lines: list[tuple[str, str, str]]) -> None:
    data = "".join(p + m + e for p, m, e in lines).encode("latin-1")
    same([(data, 1)])


# -- fuzz -----------------------------------------------------------------------------------------
_PIECES = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([p.encode() for p in ALL_PHRASES]),
    st.sampled_from([b"\n", b"\r", b"\x00", b"\r\n", b"\xe9", b"\x1b[0m", b" ", b"\t"]),
    st.sampled_from([LINE.encode(), LINE.encode()[:60], b"[2026-11-22 01:02:03] NOTICE[1] "]),
    st.integers(1, 9000).map(lambda n: b"z" * n),
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.lists(_PIECES, max_size=30).map(b"".join),
    st.lists(st.integers(0, 30000), max_size=4),
    st.booleans(),
    st.sampled_from(FINDERS),
)
def test_fuzz(data: bytes, cuts: list[int], native: bool, name: str) -> None:
    same(split(data, cuts), native, name)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=3000), st.sampled_from(FINDERS))
def test_fuzz_random_bytes(data: bytes, name: str) -> None:
    same([(data, 1)], True, name)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.integers(0, len(LINE) - 1),
    st.integers(0, 8),
    st.binary(min_size=1, max_size=3),
)
def test_fuzz_mutated_real_line(at: int, drop: int, insert: bytes) -> None:
    raw = LINE.encode()
    line = raw[:at] + insert + raw[at + drop :]
    data = b"\n".join([raw, line, raw.replace(b"NOTICE", b"WARNING"), line]) + b"\n"
    for name in FINDERS:
        same([(data, 5)], True, name)


@pytest.mark.parametrize(
    "date",
    [
        "2026-11-22 01:37:07.992",
        "2026-11-22 01:37:07",
        "2026-11-22 01:37:07.5",
        "2026-11-22 01:37:07.000001",
        "2026-11-22 01:37:07.999999",
        "2024-02-29 23:59:59.1",
        "2026-11-00 99:99:99.25",  # timegm is linear in day and time: Python accepts these
        "1969-12-31 23:59:59.75",
        "0001-01-01 00:00:00.5",
        "9999-12-31 23:59:59.999999",
    ],
)
def test_native_time(date: str) -> None:
    line = "[" + date + LINE[LINE.index("]") :]
    data = (line + "\n" + line.replace(date, "2026-11-22 01:37:07") + "\n").encode()
    calls = same([(data, 1)])
    assert calls == []  # both parsed in C, times included
    cands, _, last = py_run([(data[: len(line) + 1], 1)])
    assert cands and cands[0].event.time == TimeParser(2026, None).asterisk(date) == last
