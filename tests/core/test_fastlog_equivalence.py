"""The C normalizer (fastlog) gives exactly what the Python normalizer gives: events, order, stats.

The Python normalizer is the reference; the C one is what `sipguard scan` runs. Inputs: every rule
sample, the line corpus, the real lines of shared/asterisk-formats.md under every prefix form,
generated bench logs, and fuzzed bytes/lines. Equality covers every Event field and its Origin.
"""

from __future__ import annotations

import ipaddress
import os
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sipguard.core.asterisk import fast

ROOT = Path(__file__).resolve().parents[2]

if not fast.available():
    if os.environ.get("SIPGUARD_REQUIRE_NATIVE") == "1":
        raise RuntimeError(f"the C normalizer is required here but: {fast.load_error()}")
    pytest.skip(f"C normalizer not built: {fast.load_error()}", allow_module_level=True)

from sipguard.testing.fastcompare import (  # noqa: E402
    c_candidates,
    c_events,
    diff,
    py_candidates,
    py_events,
)


def _log_lines(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        s = line.strip()
        if (s.startswith("[") and "]" in s[:40]) or s[:3] in _MONTHS or s[:4].isdigit():
            out.append(s)
    return out


_MONTHS = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}


def corpus_lines() -> list[str]:
    lines: list[str] = []
    for path in sorted((ROOT / "src/sipguard/rules").glob("*/samples/*.log")):
        lines += path.read_text(errors="replace").splitlines()
    samples = (ROOT / "tests/samples/asterisk_lines.txt").read_text().splitlines()
    lines += [s for s in samples if s and not s.startswith(("#", ">"))]
    formats = ROOT.parent / "shared" / "asterisk-formats.md"
    if formats.exists():
        lines += _log_lines(formats.read_text())
    return lines


def variants(line: str) -> list[str]:
    """The same line under the other prefixes and decorations Asterisk logs can carry."""
    out = [line, line + "\r", f"\x1b[1;32m{line}\x1b[0m"]
    if line.startswith("[") and "] " in line:
        rest = line.split("] ", 1)[1]
        out += [
            f"Nov 22 01:02:03 pbx asterisk[1234]: {rest}",
            f"2026-11-22T01:02:03.123456+00:00 pbx asterisk[1234]: {rest}",
            f"[Nov 22 01:02:03] {rest}",
            f"[2026-11-22 01:02:03] {rest}",
        ]
    return out


CORPUS = corpus_lines()


def check(data: bytes, size: int = 0) -> None:
    py, py_stats = py_events(data, size=size)
    c, c_stats = c_events(data, size=size)
    d = diff(py, c)
    assert not d, d
    assert py_stats == c_stats


def test_corpus_is_real() -> None:
    assert len(CORPUS) > 150
    py, stats = py_events(("\n".join(CORPUS) + "\n").encode())
    assert stats["events"] > 100 and len(py) == stats["events"]


@pytest.mark.parametrize(
    "path",
    sorted((ROOT / "src/sipguard/rules").glob("*/samples/*.log")),
    ids=lambda p: p.parent.parent.name,
)
def test_rule_samples(path: Path) -> None:
    check(path.read_bytes())


def test_each_corpus_line_alone_in_every_form() -> None:
    for line in CORPUS:
        for v in variants(line):
            check((v + "\n").encode("utf-8", errors="surrogateescape"))


@pytest.mark.parametrize("size", [0, 1, 300, 4096])
def test_corpus_as_one_stream(size: int) -> None:
    data = "\n".join(v for line in CORPUS for v in variants(line)) + "\n"
    check(data.encode("utf-8", errors="surrogateescape"), size)


def test_candidates_match_before_linking() -> None:
    data = ("\n".join(CORPUS) + "\n").encode()
    d = diff(py_candidates(data), c_candidates(data))
    assert not d, d


@pytest.mark.parametrize(
    ("seed", "share", "sources"), [(1, 0.05, 0), (2, 0.3, 0), (3, 0.15, 3000), (4, 0.6, 200)]
)
def test_generated_logs(genlog, seed: int, share: float, sources: int) -> None:  # type: ignore[no-untyped-def]
    data = genlog(30_000, seed, share, sources)
    check(data, size=1 << 16)


# -- fuzz --------------------------------------------------------------------------------------
TOKENS = [
    "'",
    '"',
    "\\",
    "<",
    ">",
    "(",
    ")",
    "[",
    "]",
    ":",
    " ",
    "\t",
    "\x1c",
    "\x00",
    "\r",
    "\n",
    "\xe9",
    "\x1b[0m",
    "' failed for '",
    "1.2.3.4",
    "[2001:db8::1]:5060",
    "2001:db8::1",
    ":99999",
    ":0",
    "192.0.2.66:5060",
    "' - Wrong password",
    " (callid: ",
    ") - ",
    "SecurityEvent=",
    '",RemoteAddress="IPV4/UDP/9.9.9.9/5060',
    '",AccountID="x',
    "IPV6/UDP/::1/5060",
    "-",
    "[C-0000abcd]",
    "NOTICE[1]: ",
    "9999-99-99",
    "0",
    "4294967296",
]


def mutate(line: str, rnd: random.Random) -> str:
    chars = list(line)
    for _ in range(rnd.randint(1, 4)):
        op = rnd.random()
        at = rnd.randint(0, len(chars))
        if op < 0.5:
            chars[at:at] = list(rnd.choice(TOKENS))
        elif op < 0.8 and chars:
            del chars[at : at + rnd.randint(1, 8)]
        elif chars:
            j = rnd.randint(0, len(chars) - 1)
            chars[j] = rnd.choice(TOKENS)[0]
    return "".join(chars)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 12))
def test_mutated_real_lines(seed: int, n: int) -> None:
    rnd = random.Random(seed)
    lines = [mutate(rnd.choice(CORPUS), rnd) for _ in range(n)]
    check(("\n".join(lines) + "\n").encode("utf-8", errors="surrogateescape"))


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=2000))
def test_random_bytes(data: bytes) -> None:
    check(data)


@settings(max_examples=50, deadline=None)
@given(n=st.integers(8000, 30000), line=st.sampled_from(CORPUS[:40]))
def test_long_lines(n: int, line: str) -> None:
    check((line + "x" * n + "\n" + "y" * n + line + "\n" + line).encode())


# -- addresses: the C side builds IPv4Address objects itself ------------------------------------
_V4ISH = st.lists(
    st.one_of(
        st.integers(0, 999).map(str),
        st.sampled_from(["", "0", "00", "01", "255", "256", "1000"]),
        st.integers(0, 10**30).map(str),  # digit runs longer than any octet (no overflow in C)
    ),
    min_size=1,
    max_size=6,
).map(".".join)


@settings(max_examples=400, deadline=None)
@given(text=_V4ISH)
def test_ipv4_text_as_python_reads_it(text: str) -> None:
    lines = [
        f"[2026-11-22 01:02:03.004] VERBOSE[1] chan_sip.c: Registered SIP '100' at {text}:5060",
        f"[2026-11-22 01:02:03.004] NOTICE[2] manager.c: {text} failed to authenticate as 'admin'",
    ]
    data = ("\n".join(lines) + "\n").encode()
    check(data)
    c, _ = c_events(data)
    for ev in c:
        assert type(ev.ip) is ipaddress.IPv4Address
        assert ev.ip == ipaddress.ip_address(text) and hash(ev.ip) == hash(
            ipaddress.ip_address(text)
        )
        assert str(ev.ip) == text


# -- the daemon's calls: pieces, AMI security events (accept) and ticks, interleaved --------------
def _daemon_run(n: object, steps: list[tuple[str, object]]) -> tuple[list[object], dict[str, int]]:
    out: list[object] = []
    for what, arg in steps:
        if what == "chunk":
            data, first = arg  # type: ignore[misc]
            out += n.feed_chunk(data, "full", first)  # type: ignore[attr-defined]
        elif what == "accept":
            out += n.accept(arg)  # type: ignore[attr-defined]
        else:
            out += n.tick(arg)  # type: ignore[attr-defined]
    out += n.flush()  # type: ignore[attr-defined]
    return out, n.stats.as_dict()  # type: ignore[attr-defined]


@pytest.mark.parametrize("seed", [11, 12])
def test_daemon_interleaving(genlog, seed: int) -> None:  # type: ignore[no-untyped-def]
    from sipguard.core.asterisk import LogNormalizer, parse_security_fields, security_event
    from sipguard.core.events import Origin

    rnd = random.Random(seed)
    lines = genlog(6000, seed, 0.3).splitlines(keepends=True)
    steps: list[tuple[str, object]] = []
    i = 0
    last = 0.0
    while i < len(lines):
        k = rnd.randint(1, 60)
        piece = lines[i : i + k]
        steps.append(("chunk", (b"".join(piece), i + 1)))
        for raw in piece:  # the same security events again, as AMI reports them
            text = raw.decode()
            if "SecurityEvent=" in text and rnd.random() < 0.7:
                ev = security_event(parse_security_fields(text), None, Origin("ami"))
                if ev is not None:
                    steps.append(("accept", ev))
                    last = max(last, ev.time)
        if rnd.random() < 0.3:
            steps.append(("tick", last + rnd.choice([0.0, 0.5, 3.0, 10.0])))
        i += k
    assert sum(1 for s in steps if s[0] == "accept") > 100
    py, py_stats = _daemon_run(LogNormalizer(default_year=2026), steps)
    c, c_stats = _daemon_run(fast.FastNormalizer(2026), steps)
    d = diff(py, c)  # type: ignore[arg-type]
    assert not d, d
    assert py_stats == c_stats
    assert py_stats["duplicates"] > 100  # the AMI copies were recognised, not only compared


# a double holds microseconds since 1970 exactly only up to the year 2255: found by the fuzz above
@pytest.mark.parametrize("year", [1, 1969, 1970, 2026, 2255, 2256, 2300, 9026, 9999])
@pytest.mark.parametrize("tail", ["", ".150", ".999999", ".150+0000", "Z", ".5-01:30", "+1400"])
def test_event_tv_any_year(year: int, tail: str) -> None:
    line = (
        "[2026-11-22 01:34:43.150] SECURITY[18584] res_security_log.c: "
        f'SecurityEvent="ChallengeSent",EventTV="{year:04d}-11-22T01:34:43{tail}",Severity="Informational",Service="SIP",'
        'EventVersion="1",AccountID="100",SessionID="0x7f",LocalAddress="IPV4/UDP/127.0.0.1/5070",'
        'RemoteAddress="IPV4/UDP/127.0.0.1/5061",Challenge="633cad0f"'
    )
    check((line + "\n").encode())
