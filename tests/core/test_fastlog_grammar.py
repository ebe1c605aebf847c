"""fastlog/grammar.c against lines.parse_message: the same candidates, the same malformed counts.

Every common message form must be parsed natively (no Python fallback), and any input, however
mutated, must give exactly what the Python grammars give (the C side may hand a line back to
Python, never guess). Mutations aim at the places where a hand-written scanner could disagree
with a regex: quotes, backslashes, a second "' failed for '", brackets, digits, long fields.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sipguard.core.asterisk import fast
from sipguard.core.asterisk.candidate import Candidate
from sipguard.core.asterisk.normalizer import LogNormalizer, parse_candidate
from sipguard.core.asterisk.prefix import TimeParser
from sipguard.core.asterisk.security import EVENT_KINDS
from sipguard.core.events import Event

if not fast.available():
    if os.environ.get("SIPGUARD_REQUIRE_NATIVE") == "1":
        raise RuntimeError(f"the C normalizer is required here but: {fast.load_error()}")
    pytest.skip(f"C normalizer not built: {fast.load_error()}", allow_module_level=True)

DATE = "[2026-11-22 00:00:07.681]"
TV = "2026-11-22T00:00:07.681+0000"
SEC = (
    'SecurityEvent="{name}",EventTV="{tv}",Severity="Error",Service="{svc}",EventVersion="1",'
    'AccountID="{acct}",SessionID="691272853",LocalAddress="IPV4/UDP/10.0.0.1/5060",'
    'RemoteAddress="{remote}"{extra}'
)

# (prefix after the date, message): one of every form grammar.c parses natively
FORMS: list[tuple[str, str]] = [
    ("VERBOSE[18577] chan_sip.c: ", "Registered SIP '244' at 10.0.1.205:5060"),
    ("VERBOSE[18577] chan_sip.c: ", "Registered SIP '' at [2001:db8::1]:5060"),
    (
        "SECURITY[18584] res_security_log.c: ",
        SEC.format(
            name="InvalidAccountID",
            tv=TV,
            svc="PJSIP",
            acct="38813",
            remote="IPV4/UDP/45.32.130.31/5098",
            extra=',Challenge="",ReceivedChallenge="",ReceivedHash=""',
        ),
    ),
    (
        "SECURITY[18584] res_security_log.c: ",
        SEC.format(
            name="ChallengeResponseFailed",
            tv="1353087780-123456",
            svc="SIP",
            acct="200",
            remote="IPV6/UDP/2001:db8:1:fef4::e7b4/5060",
            extra="",
        )
        + ',ACLName="x"',
    ),
    (
        "SECURITY[18584] res_security_log.c: ",
        SEC.format(
            name="FailedACL",
            tv="2026-11-22T00:00:07.681Z",
            svc="SIP",
            acct="s",
            remote="IPV4/UDP/45.32.130.31/5060",
            extra=',ACLName="no_extension_match"',
        ),
    ),
    (
        "SECURITY[18584] res_security_log.c: ",
        SEC.format(
            name="InvalidPassword",
            tv="2026-11-22T00:00:07",
            svc="AMI",
            acct="<unknown>",
            remote="IPV4/TCP/45.32.130.31/0",
            extra="",
        ),
    ),
    (
        "SECURITY[18584] res_security_log.c: ",
        SEC.format(
            name="SuccessfulAuth",
            tv="2026-11-22T00:00:07.5+01:30",
            svc="AMI",
            acct="admin",
            remote="IPV4/TCP/45.32.130.31/5038",
            extra="",
        ),
    ),
    (
        "NOTICE[18562] res_pjsip/pjsip_distributor.c: ",
        "Request 'REGISTER' from '\"38813\" <sip:38813@10.0.0.1>' failed for "
        "'[2001:db8:1:fef4::e7b4]:5098' (callid: 691272853) - No matching endpoint found",
    ),
    (
        "NOTICE[18562] res_pjsip/pjsip_distributor.c: ",
        "Request 'INVITE' from '<sip:100@10.0.0.1>' failed for '45.32.130.31:5064' "
        "(callid: abc@1.2.3.4) - Failed to authenticate after 3 tries in 12.5 ms",
    ),
    (
        "NOTICE[18562] res_pjsip/pjsip_distributor.c: ",
        "Request 'OPTIONS' from 'sipvicious <sip:100@1.1.1.1>' failed for "
        "'2001:db8::5:5060' (callid: 6045) - Not match Endpoint Contact ACL",
    ),
    (
        "NOTICE[18562] res_pjsip/pjsip_distributor.c: ",
        "Request from 'sip:100@1.1.1.1' failed for '45.32.130.31' (callid: x) - Error to "
        "authenticate",
    ),
    (
        "NOTICE[18577] chan_sip.c: ",
        "Registration from '\"401750755\"<sip:401750755@10.0.0.1>' failed for "
        "'45.32.130.31:53888' - No matching peer found",
    ),
    (
        "NOTICE[18577] chan_sip.c: ",
        "Registration from '<sip:1001@10.0.0.1>' failed for '45.32.130.31:53888' - Wrong password",
    ),
    (
        "NOTICE[18577][C-00000001] chan_sip.c: ",
        'Failed to authenticate device "2002" <sip:2002@10.0.0.1:5070>;tag=8596fa4a for INVITE, '
        "code = -1",
    ),
    ("NOTICE[18577] chan_sip.c: ", "Failed to authenticate user <sip:2002@10.0.0.1>;tag=1"),
    (
        "NOTICE[18590] res_pjsip_session.c: ",
        "anonymous: Call (UDP:[2001:db8:4:4c5b::62e9]:25001) to extension '00862072416880' "
        "rejected because extension not found in context 'anonymous'.",
    ),
    (
        "NOTICE[18577][C-00000003] chan_sip.c: ",
        "Call from '' (45.32.130.31:61579) to extension '00850570070134' rejected because "
        "extension not found in context 'default'.",
    ),
    (
        "NOTICE[18577][C-00000003] chan_sip.c: ",
        "Call from '1001' (45.32.130.31:61579) to extension '9011' rejected because extension "
        "not found in context 'from-internal'",
    ),
    (
        "WARNING[18567] pjproject: \t       ",
        "sip_transport.c Dropping 498 bytes packet from UDP 45.32.130.31:37794 : PJSIP syntax "
        "error exception when parsing 'From' header on line 4 col 0",
    ),
    ("NOTICE[4802] manager.c: ", "45.32.130.31 failed to authenticate as 'amiadmin'"),
    ("NOTICE[4802] manager.c: ", "2001:db8:1:fef4::e7b4 failed to authenticate as ''"),
    (
        "NOTICE[18600] chan_iax2.c: ",
        "Host 45.32.130.31 failed MD5 authentication for 'office' (e7df7cd2 != 53ac4bc4)",
    ),
    ("NOTICE[18600] chan_iax2.c: ", "No registration for peer 'Fail2ban' (from 45.32.130.31)"),
    ("WARNING[18600] chan_iax2.c: ", "Host 45.32.130.31:4569 failed to authenticate as 'trunk'"),
    # the rarer forms
    ("NOTICE[1723] manager.c: ", "127.0.0.1 tried to authenticate with nonexistent user 'admin'"),
    ("VERBOSE[1490] manager.c: ", "Manager 'amiadmin' logged on from 2001:db8::9"),
    (
        "NOTICE[18577][C-00000002] chan_sip.c: ",
        'Sending fake auth rejection for device "100" <sip:100@10.0.0.1>;tag=abc',
    ),
    ("WARNING[18577] chan_sip.c: ", "username mismatch, have <2002>, digest has <bob-2002>"),
    (
        "WARNING[18577][C-00000007] sip/reqresp_parser.c: ",
        "No closing bracket found in ' <sip:1001@127.0.0.1;tag=abc'",
    ),
    ("NOTICE[18577] chan_sip.c: ", "From address missing 'sip:', using it anyway"),
    ("NOTICE[18577] chan_sip.c: ", "No field 'From' present to copy"),
    (
        "WARNING[18577] chan_sip.c: ",
        "Timeout on 766412394976466118625142 on non-critical invite transaction.",
    ),
    (
        "WARNING[18562] res_pjsip_registrar.c: ",
        "Endpoint 'anonymous' (2001:db8::1:5060) has no configured AORs",
    ),
    (
        "VERBOSE[18562] res_pjsip_registrar.c: ",
        "Added contact 'sip:123@1.1.1.1:5060' to AOR '1001' with expiration of 3600 seconds",
    ),
]


def line(prefix: str, msg: str) -> str:
    return f"{DATE} {prefix}{msg}"


def py_side(data: bytes) -> tuple[list[Candidate], tuple[int, int]]:
    n = LogNormalizer(default_year=2026)
    got: list[Candidate] = []

    def capture(c: Candidate, now: float) -> list[Event]:
        got.append(c)
        return []

    n._run = capture  # type: ignore[method-assign]
    n.feed_chunk(data, "log", 1)
    return got, (n.stats.candidates, n.stats.malformed)


def c_side(data: bytes) -> tuple[list[Candidate], tuple[int, int], list[bytes]]:
    """The C candidates and counts, and the lines handed back to Python."""
    clock = TimeParser(2026, None)
    back: list[bytes] = []

    def fallback(raw: bytes, source: str, line_no: int, last: float) -> Any:
        back.append(raw)
        return parse_candidate(raw.decode("utf-8", "replace"), source, line_no, clock, last)

    native: Any = fast._load()
    n = native.Normalizer(fallback, 2.0, 5.0, False, True)
    got = n.feed_chunk(data, "log", 1)
    stats = n.stats()
    return got, (stats[1], stats[4]), back


def same(data: bytes) -> list[bytes]:
    """Asserts C == Python on data (candidates with origins, counts); returns the fallbacks."""
    want, want_counts = py_side(data)
    got, got_counts, back = c_side(data)
    assert got == want
    assert [c.event.origin for c in got] == [c.event.origin for c in want]
    assert got_counts == want_counts
    return back


def test_every_common_form_is_native_and_equal() -> None:
    data = "".join(line(p, m) + "\n" for p, m in FORMS).encode()
    back = same(data)
    assert back == []
    want, _ = py_side(data)
    assert len(want) == len(FORMS)  # each form is a candidate event, not a silent None


def test_fields_of_a_registration_failure() -> None:
    p, m = FORMS[11]
    got, counts, back = c_side(line(p, m).encode())
    assert back == [] and counts == (1, 0)
    ev = got[0].event
    assert (str(ev.ip), ev.port, ev.account, ev.user_agent) == (
        "45.32.130.31",
        53888,
        "401750755",
        "401750755",
    )
    assert ev.detail == "No matching peer found" and got[0].link_name == "Registration"


# ---- the constant strs grammar_init builds once: event names, transports, fixed details -------
TRANSPORT_SPELLINGS = ["UDP", "udp", "Tcp", "TLS", "ws", "WSS", "sctp", "Sctp"]


def test_security_names_and_transports_are_native_and_right() -> None:
    lines, want = [], []
    for name in EVENT_KINDS:
        for spelling in [*TRANSPORT_SPELLINGS, None]:
            remote = f"IPV4/{spelling}/45.32.130.31/5060" if spelling else "IPV4/45.32.130.31/5060"
            msg = SEC.format(name=name, tv=TV, svc="PJSIP", acct="1", remote=remote, extra="")
            lines.append(line(FORMS[2][0], msg))
            want.append((name, spelling.lower() if spelling else None))
    # enough uses that a constant handed out without its own reference would be freed
    data = ("\n".join(lines * 20) + "\n").encode()
    for _ in range(2):
        assert same(data) == []
        got, _, _ = c_side(data)
        assert [(c.event.detail, c.event.transport) for c in got] == want * 20
        assert [c.link_name for c in got[: len(want)]] == [name for name, _ in want]


def test_pjproject_transports_and_fixed_details() -> None:
    drops = [
        line(FORMS[18][0], f"Dropping 1 bytes packet from {t} 45.32.130.31:5060 : x")
        for t in ("UDP", "TCP", "TLS", "WS", "WSS")
    ]
    fixed = {  # FORMS index -> the detail lines.py gives it
        0: "Registered",
        24: "nonexistent user",
        25: "logged on",
        19: "failed to authenticate",
        26: "fake auth rejection",
        31: "non-critical invite transaction timed out",
        32: "endpoint has no configured AORs",
        33: "Added contact",
    }
    data = ("\n".join(drops + [line(*FORMS[i]) for i in fixed] * 50) + "\n").encode()
    assert same(data) == []
    got, _, _ = c_side(data)
    assert [c.event.transport for c in got[:5]] == ["udp", "tcp", "tls", "ws", "wss"]
    assert [c.event.detail for c in got[5:]] == list(fixed.values()) * 50


# ---- forms handed back to Python, and malformed lines counted natively ------------------------
HANDED_BACK = [
    # a backslash in the From display name: Python unescapes it
    (
        FORMS[7][0],
        "Request 'REGISTER' from '\"a\\\"b\" <sip:1@h>' failed for '1.2.3.4:5060' "
        "(callid: 1) - No matching endpoint found",
    ),
    # the From grammar fails (odd quoting): Python's regex fallback decides
    (
        FORMS[7][0],
        "Request 'INVITE' from '\"1001 <sip:1@h>' failed for '1.2.3.4:5060' (callid: 1) - No "
        "matching endpoint found",
    ),
    # a repeated key: the full security parse
    (FORMS[2][0], FORMS[2][1] + ',Severity="x"'),
    # an EventTV shape outside the native ones
    (FORMS[2][0], FORMS[2][1].replace(TV, "2026-11-22 00:00:07")),
    # an earlier "' to AOR '" might match where the last one does not
    (
        FORMS[-1][0],
        "Added contact 'a' to AOR 'b' with expiration of 1 seconds' to AOR 'c'd",
    ),
    # IPv6 with a port out of range: Python keeps the address with port False
    (FORMS[0][0], "Registered SIP '1' at 2001:db8::1:0"),
]
MALFORMED = [
    (FORMS[0][0], "Registered SIP '244' at 10.0.1.305:5060"),
    (FORMS[0][0], "Registered SIP '244' at 10.0.1.5:65536"),
    (FORMS[11][0], "Registration from '<sip:1@h>' failed for 'nowhere' - Wrong password"),
    (FORMS[7][0], "Request 'REGISTER' from '<sip:1@h>' failed for '1.2.3.4' (callid: 1) - other"),
    (FORMS[13][0], "Failed to authenticate someone"),
    (FORMS[19][0], "45.32.130.311 failed to authenticate as 'x'"),
    (FORMS[19][0], "Manager 'x' logged on from 1.2.3"),
    (FORMS[13][0], "Sending fake auth rejection for someone"),
    (FORMS[13][0], "username mismatch, have <a> digest has <b>"),
    (FORMS[13][0], "Timeout on  on non-critical invite transaction"),
    (FORMS[13][0], "Endpoint 'x' (1.2.3.4:99999) has no configured AORs"),
]


@pytest.mark.parametrize(("prefix", "msg"), HANDED_BACK)
def test_unsure_forms_go_back_to_python(prefix: str, msg: str) -> None:
    assert len(same(line(prefix, msg).encode())) == 1


@pytest.mark.parametrize(("prefix", "msg"), MALFORMED)
def test_malformed_is_counted_natively(prefix: str, msg: str) -> None:
    got, counts, back = c_side(line(prefix, msg).encode())
    assert (got, counts, back) == ([], (1, 1), [])
    same(line(prefix, msg).encode())


# ---- hypothesis: mutated real lines -----------------------------------------------------------
PIECES = st.sampled_from(
    [
        "'",
        '"',
        "\\",
        '\\"',
        "' failed for '",
        "' failed for '1.2.3.4:5060",
        "<",
        ">",
        "[",
        "]",
        "(",
        ")",
        ":",
        "/",
        ",",
        '",',
        '",RemoteAddress="',
        '="',
        "-",
        ".",
        " ",
        "\t",
        "\x1c",
        "0",
        "9",
        "65535",
        "99999",
        "::",
        "sip:",
        "tel:x",
        "@",
        ";",
        ") - ",
        " ms",
        "' (",
        ") to extension '",
        "' rejected because extension not found in context '",
        "Dropping ",
        " for INVITE, code = -1",
        "x" * 130,
        "1" * 7,
    ]
)


PREFIXES = [
    "NOTICE[1] chan_sip.c: ",
    "NOTICE[1][C-0000000a] chan_sip.c: ",
    "NOTICE[1] res_pjsip_session.c: ",
    "NOTICE[1][C-1] res_pjsip/pjsip_distributor.c: ",
    "NOTICE[1] manager.c: ",
    "NOTICE[1] chan_iax2.c: ",
    "WARNING[1] pjproject: ",
    "SECURITY[1] res_security_log.c: ",
]


@st.composite
def mutated(draw: st.DrawFn) -> str:
    prefix, msg = draw(st.sampled_from(FORMS))
    if draw(st.integers(0, 3)) == 0:  # the file and the call tag steer some grammars
        prefix = draw(st.sampled_from(PREFIXES))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(msg)))
        op = draw(st.integers(0, 3))
        if op == 0:
            msg = msg[:at] + draw(PIECES) + msg[at:]
        elif op == 1:
            msg = msg[:at] + msg[at + draw(st.integers(1, 20)) :]
        elif op == 2:
            msg = (
                msg[:at]
                + draw(
                    st.text(
                        alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12
                    )
                )
                + msg[at:]
            )
        else:  # a field repeated somewhere else
            end = draw(st.integers(at, min(len(msg), at + 40)))
            to = draw(st.integers(0, len(msg)))
            msg = msg[:to] + msg[at:end] + msg[to:]
    return line(prefix, msg)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutated(), min_size=1, max_size=4))
def test_mutated_lines_equal_python(lines: list[str]) -> None:
    same("\n".join(lines).encode())


# ---- hypothesis: addresses and times where they are read ---------------------------------------
OCTET = st.one_of(st.integers(0, 300).map(str), st.sampled_from(["01", "000", "1234", ""]))
PORT = st.one_of(st.integers(0, 70000).map(str), st.sampled_from(["", "00080", "123456"]))
V6 = st.sampled_from(
    [
        "2001:db8::1",
        "::1",
        "::",
        "fe80::1%eth0",
        "::ffff:1.2.3.4",
        "2001:db8:0:0:0:0:0:1",
        "1::2::3",
        "2001:db8::g",
        "fe80::1%" + "e" * 33,
        "a" * 46,
        "1:2",
    ]
)


@st.composite
def address(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 3))
    if kind == 0:
        text = ".".join(draw(OCTET) for _ in range(draw(st.integers(3, 5))))
        return text + (":" + draw(PORT) if draw(st.booleans()) else "")
    v6 = draw(V6)
    if kind == 1:
        return f"[{v6}]" + (":" + draw(PORT) if draw(st.booleans()) else "")
    if kind == 2:
        return f"{v6}:{draw(PORT)}"
    return v6


@settings(max_examples=800, deadline=None)
@given(address(), st.integers(0, len(FORMS) - 1))
def test_addresses_equal_python(addr: str, form: int) -> None:
    lines = [
        line(FORMS[0][0], f"Registered SIP '1' at {addr}"),
        line(
            FORMS[7][0],
            f"Request 'X' from '<sip:1@h>' failed for '{addr}' (callid: 1) - "
            "No matching endpoint found",
        ),
        line(FORMS[11][0], f"Registration from '<sip:1@h>' failed for '{addr}' - Wrong password"),
        line(
            FORMS[16][0],
            f"Call from '1' ({addr}) to extension '1' rejected because extension "
            "not found in context 'x'.",
        ),
        line(FORMS[18][0], f"Dropping 1 bytes packet from TCP {addr} : x"),
        line(FORMS[19][0], f"{addr} failed to authenticate as 'a'"),
        line(FORMS[21][0], f"Host {addr} failed MD5 authentication for 'o' (x)"),
        line(FORMS[2][0], FORMS[2][1].replace("IPV4/UDP/45.32.130.31/5098", f"IPV6/tcp/{addr}")),
    ]
    same("\n".join(lines).encode())
    same(line(*FORMS[form]).replace("45.32.130.31", addr).encode())


DIGITS = st.integers(0, 99).map(lambda v: f"{v:02d}")


@st.composite
def event_tv(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 4)) == 0:
        return f"{draw(st.integers(0, 10**13))}-{draw(st.integers(0, 10**7))}"
    y = draw(st.sampled_from(["2026", "2024", "1970", "0000", "9999", "2100"]))
    text = f"{y}-{draw(DIGITS)}-{draw(DIGITS)}T{draw(DIGITS)}:{draw(DIGITS)}:{draw(DIGITS)}"
    if draw(st.booleans()):
        text += "." + draw(st.text(alphabet="0123456789", min_size=0, max_size=8))
    tz = draw(st.sampled_from(["", "Z", "+", "-", "+:", "z"]))
    if tz in ("+", "-"):
        tz += draw(DIGITS) + draw(st.sampled_from(["", ":"])) + draw(DIGITS)
    return text + tz


@settings(max_examples=800, deadline=None)
@given(event_tv())
def test_event_tv_equal_python(tv: str) -> None:
    same(line(FORMS[2][0], FORMS[2][1].replace(TV, tv)).encode())
