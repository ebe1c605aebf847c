"""link*.c (the C linker) gives exactly what linker.Linker gives: events, order, origins, stats.

Both linkers get the same Candidate objects, run as LogNormalizer._run runs them (process, then
release(now) while anything waits, release(None) at the end). Inputs: the parsed sample corpus
(also as two files holding the same lines, as messages and security do), generated bench logs,
hypothesis-built candidate sequences that stress pending/recent/pairs/challenges, and sequences
that overrun every bound (MAX_PENDING, PAIR_CAP, MAX_MAP, MAX_CHALLENGES).
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import replace
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sipguard.core.asterisk import fast
from sipguard.core.asterisk import linker as pylinker
from sipguard.core.asterisk.candidate import LOG, SECURITY, Candidate
from sipguard.core.asterisk.linker import Linker, NormalizerStats
from sipguard.core.asterisk.security import EVENT_KINDS
from sipguard.core.events import Event, Kind, Origin, Service

ROOT = Path(__file__).resolve().parents[2]

if not fast.available():
    if os.environ.get("SIPGUARD_REQUIRE_NATIVE") == "1":
        raise RuntimeError(f"the C normalizer is required here but: {fast.load_error()}")
    pytest.skip(f"C normalizer not built: {fast.load_error()}", allow_module_level=True)

from sipguard.testing.fastcompare import diff, py_candidates  # noqa: E402

NATIVE: Any = fast._load()
LINK_NAMES = [*EVENT_KINDS, "Registration", "Call"]  # fast.h's L_* order
STAT_AT = {"duplicates": 3, "unlinked": 8, "evicted": 9}  # fast_stats order

Result = tuple[list[Event], dict[str, int], list[bool]]


def drive(lk: Any, cands: Iterable[Candidate]) -> tuple[list[Event], list[bool]]:
    """What LogNormalizer._run does with a linker: process, then release when anything waits."""
    out: list[Event] = []
    waiting: list[bool] = []
    for c in cands:
        out += lk.process(c)
        if lk.waiting:
            out += lk.release(c.event.time)
        waiting.append(lk.waiting)
    out += lk.release(None)
    return out, waiting


def run_py(cands: Iterable[Candidate], window: float = 2.0, challenge: float = 5.0) -> Result:
    stats = NormalizerStats()
    out, waiting = drive(Linker(stats, window, challenge), cands)
    return out, {k: getattr(stats, k) for k in STAT_AT}, waiting


def run_c(cands: Iterable[Candidate], window: float = 2.0, challenge: float = 5.0) -> Result:
    lk = NATIVE.Linker(window, challenge)
    out, waiting = drive(lk, cands)
    stats = lk.stats()
    return out, {k: stats[i] for k, i in STAT_AT.items()}, waiting


def assert_same(
    cands: list[Candidate], window: float = 2.0, challenge: float = 5.0
) -> dict[str, int]:
    py_out, py_stats, py_wait = run_py(cands, window, challenge)
    c_out, c_stats, c_wait = run_c(cands, window, challenge)
    assert diff(py_out, c_out) == ""
    assert [e.origin.line_no for e in py_out] == [e.origin.line_no for e in c_out]
    assert c_stats == py_stats
    assert c_wait == py_wait
    return py_stats


# -- parsed logs ---------------------------------------------------------------------------------
def corpus_files() -> list[Path]:
    files = sorted((ROOT / "src/sipguard/rules").glob("*/samples/*.log"))
    files += sorted((ROOT / "tests/samples").glob("*"))
    formats = ROOT.parent / "shared" / "asterisk-formats.md"
    return files + ([formats] if formats.exists() else [])


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_corpus_file(path: Path) -> None:
    cands = py_candidates(path.read_bytes(), str(path))
    assert_same(cands)
    assert_same(cands, window=0.5, challenge=1.0)


def test_corpus_as_two_files() -> None:
    """messages and security hold the same SECURITY lines: copies across sources collapse."""
    data = b"".join(p.read_bytes() for p in corpus_files())
    a = py_candidates(data, "/var/log/asterisk/messages")
    b = py_candidates(data, "/var/log/asterisk/security")
    assert len(a) == len(b) > 100
    mixed = [c for pair in zip(a, b, strict=True) for c in pair]
    stats = assert_same(mixed)
    assert stats["duplicates"] > len(a) // 10  # the copies were found, not only compared
    assert_same(a + b)  # one file after the other: the second is all copies


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_generated_log(genlog: Callable[..., bytes], seed: int) -> None:
    cands = py_candidates(genlog(20000, seed, 0.2), "gen.log")
    assert len(cands) > 1000
    stats = assert_same(cands)
    assert stats["duplicates"] > 0


@pytest.mark.slow
@pytest.mark.parametrize(("lines", "seed"), [(60000, 4), (100000, 5)])
def test_generated_many_sources(genlog: Callable[..., bytes], lines: int, seed: int) -> None:
    cands = py_candidates(genlog(lines, seed, 0.3, 5000), "gen.log")
    assert len(cands) > 5000
    assert_same(cands)
    assert_same(cands, window=0.2, challenge=0.5)


# -- built candidate sequences ---------------------------------------------------------------
IPS = [
    None,
    ip_address("192.0.2.1"),
    ip_address("192.0.2.2"),
    ip_address("192.0.2.1"),  # equal to the first, another object: keys go by value
    ip_address("2001:db8::1"),
    ip_address("::ffff:192.0.2.1"),  # not equal to 192.0.2.1
    ip_address("fe80::1%eth0"),
    ip_address("fe80::1%eth1"),  # not equal to the other scope
]
KINDS = [
    Kind.WRONG_PASSWORD,
    Kind.UNKNOWN_ACCOUNT,
    Kind.AUTH_NAME_MISMATCH,
    Kind.ACL_DENIED,
    Kind.CALL_REJECTED,
    Kind.MALFORMED_REQUEST,
    Kind.AMI_LOGIN_FAILED,
    Kind.AUTH_SUCCESS,
    Kind.LIMIT,
    Kind.CHALLENGE_SENT,
    Kind.SCANNER_PROBE,
]
DETAILS = [
    "Wrong password",
    "nonexistent user",
    "InvalidPassword",
    "ChallengeSent",
    "FailedACL",
    "",
]


@st.composite
def candidate_lists(draw: st.DrawFn) -> list[Candidate]:
    n = draw(st.integers(1, 60))
    t = 1_700_000_000.0
    out = []
    for i in range(n):
        # equal times, small steps, steps past the windows, and now and then a step back
        t += draw(st.sampled_from([0.0, 0.0, 0.001, 0.004, 0.3, 1.5, 3.0, 7.0, -0.5]))
        ip = IPS[draw(st.integers(0, len(IPS) - 1))]
        ev = Event(
            time=t,
            kind=draw(st.sampled_from(KINDS)),
            service=draw(st.sampled_from([Service.PJSIP, Service.CHAN_SIP, Service.AMI])),
            ip=ip,
            port=draw(st.sampled_from([None, 5060, 5061])),
            transport=draw(st.sampled_from([None, "udp", "tcp", ""])),
            account=draw(st.sampled_from([None, "", "100", "101"])),
            target=draw(st.sampled_from([None, "200"])),
            user_agent=draw(st.sampled_from([None, "", "friendly-scanner"])),
            call_id=draw(st.sampled_from([None, "", "a", "b"])),
            detail=draw(st.sampled_from(DETAILS)),
            origin=Origin(draw(st.sampled_from(["messages", "security", "ami"])), i + 1, f"l{i}"),
        )
        address_less = ip is None
        out.append(
            Candidate(
                ev,
                channel=draw(st.sampled_from([LOG, SECURITY])),
                tag=draw(st.sampled_from([None, "C-1", "C-2"])),
                tampered=draw(st.booleans()),
                link=frozenset(
                    draw(st.sets(st.sampled_from(LINK_NAMES[:3] + LINK_NAMES[12:]), max_size=3))
                )
                if address_less or draw(st.booleans())
                else frozenset(),
                link_name=draw(st.sampled_from([None, *LINK_NAMES[:3], *LINK_NAMES[12:]])),
                followed=draw(st.booleans()),
            )
        )
    return out


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(candidate_lists(), st.sampled_from([(2.0, 5.0), (0.5, 1.0), (0.001, 0.002)]))
def test_built_sequences(cands: list[Candidate], windows: tuple[float, float]) -> None:
    assert_same(cands, *windows)


@settings(max_examples=50, deadline=None)
@given(candidate_lists())
def test_built_sequences_repeated(cands: list[Candidate]) -> None:
    """The same Candidate objects twice: identical events, the challenge identity test."""
    assert_same(cands + cands)


def _ev(t: float, kind: Kind, ip: Any, **kw: Any) -> Event:
    return Event(time=t, kind=kind, service=Service.CHAN_SIP, ip=ip, origin=Origin("f", 1), **kw)


@pytest.mark.slow
def test_bounds_pending_and_pairs() -> None:
    ip = ip_address("198.51.100.7")
    cands = []
    n = pylinker.MAX_PENDING + 500
    for i in range(n):  # address-less lines nothing answers, within one link window
        ev = _ev(10.0 + i * 1e-6, Kind.WRONG_PASSWORD, None, account=str(i))
        cands.append(Candidate(ev, link=frozenset({"InvalidPassword"})))
    for i in range(pylinker.PAIR_CAP + 300):  # module lines of one source, never paired
        cands.append(Candidate(_ev(11.0 + i * 1e-6, Kind.WRONG_PASSWORD, ip, port=i)))
    for i in range(0, pylinker.PAIR_CAP + 300, 7):  # some security partners, oldest ones gone
        ev = _ev(11.5, Kind.WRONG_PASSWORD, ip, port=i, detail="InvalidPassword")
        cands.append(Candidate(ev, SECURITY, link_name="InvalidPassword"))
    stats = assert_same(cands)
    assert stats["evicted"] == 500


@pytest.mark.slow
def test_bounds_maps_and_challenges() -> None:
    cands = []
    n = pylinker.MAX_MAP + 3000
    for i in range(n):  # distinct security events: the copies map evicts its oldest
        ip = ip_address(0xC6336400 + i % 50000)
        ev = _ev(float(i) * 0.01, Kind.AUTH_SUCCESS, ip, detail="SuccessfulAuth", call_id=str(i))
        cands.append(Candidate(ev, SECURITY, link_name="SuccessfulAuth"))
    elsewhere = Origin("security", 1)  # the same events from another file: copies
    again = [
        Candidate(replace(c.event, origin=elsewhere), SECURITY, link_name="SuccessfulAuth")
        for c in cands[:6000:3]
    ]
    stats = assert_same(cands + again)  # evicted identities count again, kept ones are copies
    assert 0 < stats["duplicates"] < len(again)
    cands = []
    for i in range(pylinker.MAX_CHALLENGES + 2000):  # unanswered, all within the window
        ip = ip_address(0xCB007100 + i % 300)
        ev = _ev(float(i) * 0.001, Kind.CHALLENGE_SENT, ip, call_id=f"c{i % 70000}")
        cands.append(Candidate(ev, SECURITY, link_name="ChallengeSent"))
    for i in range(0, 3000, 5):  # some answers
        ip = ip_address(0xCB007100 + i % 300)
        ev = _ev(60.0, Kind.WRONG_PASSWORD, ip, call_id=f"c{i}", detail="InvalidPassword")
        cands.append(Candidate(ev, SECURITY, link_name="InvalidPassword"))
    stats = assert_same(cands, window=2.0, challenge=1e6)
    assert stats["evicted"] == 2000


# -- references and errors -------------------------------------------------------------------
def test_no_references_left(genlog: Callable[..., bytes]) -> None:
    cands = py_candidates(genlog(3000, 9, 0.5), "gen.log")
    events = [c.event for c in cands]
    gc.collect()
    before = [sys.getrefcount(e) for e in events]
    lk = NATIVE.Linker(2.0, 5.0)
    out = []
    for c in cands:
        out += lk.process(c)
    assert lk.waiting or out
    out += lk.release(None)
    del lk, out
    gc.collect()
    assert [sys.getrefcount(e) for e in events] == before


def test_bad_address_is_an_error_not_a_crash() -> None:
    ev = Event(time=1.0, kind=Kind.WRONG_PASSWORD, service=Service.PJSIP, ip="1.2.3.4")  # type: ignore[arg-type]
    lk = NATIVE.Linker(2.0, 5.0)
    with pytest.raises(TypeError):
        lk.process(Candidate(ev))
    good = _ev(2.0, Kind.WRONG_PASSWORD, ip_address("192.0.2.9"))
    assert lk.process(Candidate(good)) == [good]  # still usable
