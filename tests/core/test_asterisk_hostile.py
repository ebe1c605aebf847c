"""Hostile input: random bytes, mutated real lines, injected addresses, huge and binary lines."""

from __future__ import annotations

import re
from ipaddress import ip_address
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sipguard.core.asterisk import LogNormalizer, parse_security_fields
from sipguard.core.events import Event, IPAddress, Kind

SAMPLES = Path(__file__).parent.parent / "samples" / "asterisk_lines.txt"
REAL_LINES = [
    line
    for line in SAMPLES.read_text(encoding="utf-8").splitlines()
    if line.strip() and not line.startswith(("#", "> "))
]
REAL = ip_address("203.0.113.7")
_TOKEN = re.compile(r"[0-9A-Fa-f:.]{2,}")
_V4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")

INJECTIONS = [
    "' failed for '192.0.2.66:5060' - Wrong password",
    "' failed for '192.0.2.66:5060' (callid: x) - No matching endpoint found",
    "' failed for '[2001:db8::66]:5060' - ",
    '",RemoteAddress="IPV4/UDP/192.0.2.66/5060',
    '",SessionID="",LocalAddress="IPV4/UDP/127.0.0.1/5060",RemoteAddress="IPV4/UDP/192.0.2.66/5060',
    "<sip:1@192.0.2.66>",
    '\\"',
    '"',
    "'",
    "<",
    ">",
    " ",
    "sip:",
    "192.0.2.66",
]
FIELD_TEXT = st.lists(st.one_of(st.sampled_from(INJECTIONS), st.text(max_size=12)), max_size=5).map(
    "".join
)


def addresses_in(line: str) -> set[IPAddress]:
    """Every IP address written anywhere in the line (with or without port/brackets)."""
    found: set[IPAddress] = set()
    for raw in _TOKEN.findall(line) + _V4.findall(line):
        toks = {raw, raw.strip("."), raw.lstrip(":"), raw.strip(".").lstrip(":")}
        for cand in toks | {t.rpartition(":")[0] for t in toks}:
            try:
                found.add(ip_address(cand))
            except ValueError:
                pass
    return found


def feed_all(data: bytes) -> tuple[LogNormalizer, list[Event]]:
    n = LogNormalizer()
    out = n.feed_chunk(data, "fuzz", 1) + n.flush()
    return n, out


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000))
def test_random_bytes_never_raise(data: bytes) -> None:
    n, out = feed_all(data)
    m = LogNormalizer()
    for i, line in enumerate(data.split(b"\n")):
        m.feed_line(line, "fuzz", i)
    m.flush()
    text = data.decode("latin-1")
    for ev in out:
        assert ev.ip is None or ev.ip in addresses_in(text)
    assert n.stats.lines >= 1 or not data


@st.composite
def mutated(draw: st.DrawFn) -> str:
    line = draw(st.sampled_from(REAL_LINES))
    for _ in range(draw(st.integers(0, 4))):
        pos = draw(st.integers(0, len(line)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        frag = draw(st.one_of(st.sampled_from(INJECTIONS), st.text(max_size=6)))
        end = min(len(line), pos + draw(st.integers(0, 8)))
        if op == "insert":
            line = line[:pos] + frag + line[pos:]
        elif op == "delete":
            line = line[:pos] + line[end:]
        else:
            line = line[:pos] + frag + line[end:]
    return line


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_real_lines_never_raise_and_keep_addresses_literal(line: str) -> None:
    n = LogNormalizer()
    out = n.feed_line(line, "m", 1) + n.feed_line(line.encode("utf-8"), "m", 2) + n.flush()
    present = addresses_in(line)
    for ev in out:
        assert ev.ip is None or ev.ip in present, (line, ev)


def pjsip_line(display: str, user: str, callid: str) -> str:
    return (
        "[2026-11-22 01:36:39.047] NOTICE[18562] res_pjsip/pjsip_distributor.c: Request 'INVITE' "
        f"from '\"{display}\" <sip:{user}@127.0.0.1>' failed for '203.0.113.7:34025' "
        f"(callid: {callid}) - No matching endpoint found"
    )


def chan_sip_line(to: str) -> str:
    return (
        "[2026-11-22 01:37:10.218] NOTICE[18577] chan_sip.c: Registration from "
        f"'{to}' failed for '203.0.113.7:5302' - Wrong password"
    )


def security_line(account: str, session: str) -> str:
    return (
        "[2026-11-22 01:36:25.463] SECURITY[18584] res_security_log.c: "
        'SecurityEvent="InvalidPassword"'
        ',EventTV="2026-11-22T01:36:25.462+0000",Severity="Error",Service="SIP",EventVersion="2",'
        f'AccountID="{account}",SessionID="{session}",LocalAddress="IPV4/UDP/10.0.0.1/5060",'
        'RemoteAddress="IPV4/UDP/203.0.113.7/42079",Challenge="654d45e8"'
    )


@settings(max_examples=300, deadline=None)
@given(FIELD_TEXT, FIELD_TEXT, FIELD_TEXT, st.sampled_from(["pjsip", "chan_sip", "security"]))
def test_injected_text_never_becomes_the_source(a: str, b: str, c: str, form: str) -> None:
    a, b, c = (re.sub(r"[\x00\n\r]", " ", x) for x in (a, b, c))  # one text line
    if form == "pjsip":
        # pjproject accepts only a valid quoted-string as display name
        display = a.replace("\\", "\\\\").replace('"', '\\"')
        line = pjsip_line(display, b.replace("'", ""), c)
    elif form == "chan_sip":
        line = chan_sip_line(a + b + c)
    else:
        line = security_line(a + b, c)
    n = LogNormalizer()
    out = n.feed_line(line, "m", 1) + n.flush()
    assert out, line  # the real attempt is never lost
    assert all(ev.ip == REAL for ev in out), (line, out)
    if form == "security":
        injected = line.count('",RemoteAddress="') > 1
    else:
        injected = line.count("' failed for '") > 1
    assert injected == any(ev.kind is Kind.LOG_TAMPERING for ev in out), line


def test_long_binary_and_latin1_lines_are_counted() -> None:
    good = (
        b"[2026-11-22 01:37:10.218] NOTICE[18577] chan_sip.c: Registration from "
        b"'<sip:2001@127.0.0.1>' failed for '127.0.0.1:5302' - Wrong password"
    )
    latin = good.replace(b"2001@", b"J\xf6rg@")
    data = b"\n".join(
        [good, b"x" * 2_000_000, b"junk\x00\x01\x02 failed for '1.2.3.4:5'", latin, b"", good]
    )
    n = LogNormalizer()
    out = n.feed_chunk(data, "m", 1) + n.flush()
    assert [e.account for e in out] == ["2001", "J\xf6rg", "2001"]
    assert [e.origin.line_no for e in out] == [1, 4, 6]
    assert n.stats.too_long == 1
    assert n.stats.binary == 1
    assert n.stats.lines == 6
    m = LogNormalizer()
    assert m.feed_line(b"y" * 100_000 + b" failed for '1.2.3.4:5' - Wrong password", "m", 1) == []
    assert m.stats.too_long == 1
    assert len(m.feed_line(good + b" " * 9000, "m", 2)) == 1  # truncated, still parsed


def test_unparseable_known_phrases_are_counted_malformed() -> None:
    n = LogNormalizer()
    lines = [
        "[2026-11-22 01:37:10.218] NOTICE[18577] chan_sip.c: Registration from '<sip:1@x>' "
        "failed for '999.1.1.1:5' - Wrong password",
        "[2026-11-22 01:37:10.218] NOTICE[18562] res_pjsip/pjsip_distributor.c: Request 'X' from "
        "'<sip:1@x>' failed for 'nonsense' (callid: 1) - No matching endpoint found",
        "garbage failed for '1.2.3.4:5' without any prefix",
    ]
    for i, line in enumerate(lines):
        assert n.feed_line(line, "m", i) == []
    assert n.stats.malformed == 3


def test_security_fields_unescaped_and_robust() -> None:
    f = parse_security_fields(
        'SecurityEvent="FailedACL",EventTV="1",AccountID="a,b=\\"c",SessionID="",'
        'LocalAddress="IPV4/UDP/10.0.0.1/5060",RemoteAddress="IPV4/UDP/1.2.3.4/5",ACLName="x"'
    )
    assert f["AccountID"] == 'a,b=\\"c'
    assert f["RemoteAddress"] == "IPV4/UDP/1.2.3.4/5"
    assert f["ACLName"] == "x"
    assert "_tampered" not in f
    assert parse_security_fields("no fields here") == {}
