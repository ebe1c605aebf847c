"""Every real-format line in tests/samples/asterisk_lines.txt gives exactly its expected events."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sipguard.core.asterisk import LogNormalizer
from sipguard.core.events import Event

SAMPLES = Path(__file__).parent.parent / "samples" / "asterisk_lines.txt"


def load_cases() -> list[tuple[str, list[str]]]:
    cases: list[tuple[str, list[str]]] = []
    expected: list[str] = []
    for line in SAMPLES.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("> "):
            expected.append(line[2:])
            continue
        assert expected, f"sample line without expectation: {line[:80]}"
        cases.append((line, expected))
        expected = []
    return cases


CASES = load_cases()


def describe(ev: Event) -> str:
    return "|".join(str(x) for x in (ev.kind.value, ev.ip, ev.port, ev.account, ev.service.value))


@pytest.mark.parametrize(("line", "expected"), CASES, ids=[f"L{i}" for i in range(len(CASES))])
def test_sample_line(line: str, expected: list[str]) -> None:
    n = LogNormalizer(default_year=2026)
    events = n.feed_line(line.encode("utf-8"), "sample.log", 7) + n.flush()
    assert ([describe(e) for e in events] or ["none"]) == expected
    for ev in events:
        assert ev.origin.source == "sample.log"
        assert ev.origin.line_no == 7
        assert ev.origin.text == line[:512]
        if re.match(r"\[|\d|[A-Z][a-z]{2} ", line):  # all but a bare journald MESSAGE have a date
            assert ev.time > 0


def test_samples_cover_every_form() -> None:
    text = SAMPLES.read_text(encoding="utf-8")
    for needle in (
        "pjsip_distributor.c",
        "chan_sip.c",
        "SecurityEvent=",
        "chan_iax2.c",
        "manager.c",
        "pjproject:",
        "IPV6/",
        "[2001:db8::",
        "asterisk[",  # syslog / journald
        "[Mar  1 ",  # old default date
        "\x1b[",  # ANSI colour
    ):
        assert needle in text, needle


def test_feed_chunk_equals_feed_line() -> None:
    lines = [line for line, _ in CASES]
    data = "\n".join(lines).encode("utf-8") + b"\n"
    a = LogNormalizer()
    by_line: list[Event] = []
    for i, line in enumerate(lines, 1):
        by_line += a.feed_line(line.encode("utf-8"), "s", i)
    by_line += a.flush()
    b = LogNormalizer()
    by_chunk = b.feed_chunk(data, "s", 1) + b.flush()
    assert by_chunk == by_line
    assert a.stats.as_dict() == b.stats.as_dict()
    assert b.stats.lines == len(lines)


def test_times_are_utc_posix_seconds() -> None:
    n = LogNormalizer()
    line = (
        "[2026-11-22 01:37:10.218] NOTICE[18577] chan_sip.c: Registration from "
        "'<sip:2001@127.0.0.1>' failed for '127.0.0.1:5302' - Wrong password"
    )
    (ev,) = n.feed_line(line, "m", 1)
    assert ev.time == pytest.approx(1795311430.218)


def test_display_name_is_the_user_agent() -> None:
    n = LogNormalizer()
    line = CASES[0][0]
    (ev,) = n.feed_line(line, "m", 1)
    assert ev.user_agent == "sipvicious"
    assert ev.call_id == "112717373465392047778909"
