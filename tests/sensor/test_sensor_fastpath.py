"""The verdict fast path agrees with the full parser: same values, same verdicts, same events."""

from __future__ import annotations

import struct
from ipaddress import ip_address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipguard.core.sip import DEFAULT_LIMITS, Limits, SipParseError, parse_message
from sipguard.sensor.config import parse_sensor_config
from sipguard.sensor.fastpath import scan_head
from sipguard.sensor.packet import PacketError, parse_packet, udp4
from sipguard.sensor.policy import SensorPolicy

DOMAIN = "voip.example.net"
PHONE = ip_address("198.51.100.7")


def msg(
    method: str | None = "REGISTER",
    host: str = DOMAIN,
    to_host: str | None = None,
    call_id: str = "c1@x",
    ua: str = "Yealink SIP-T46S",
    names: dict[str, str] | None = None,
    from_tag: str = "f1",
    to_tag: str = "",
    body: str = "",
    extra: tuple[str, ...] = (),
    sep: str = "\r\n",
) -> bytes:
    n = {"via": "Via", "from": "From", "to": "To", "call-id": "Call-ID", "cseq": "CSeq",
         "user-agent": "User-Agent", "content-length": "Content-Length",
         **(names or {})}  # fmt: skip
    to = f"<sip:200@{to_host or host}>" + (f";tag={to_tag}" if to_tag else "")
    start = f"{method} sip:200@{host} SIP/2.0" if method else "SIP/2.0 200 OK"
    lines = [
        start,
        f"{n['via']}: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK1",
        f'{n["from"]}: "Desk" <sip:100@{host}>;tag={from_tag}',
        f"{n['to']}: {to}",
        f"{n['call-id']}: {call_id}",
        f"{n['cseq']}: 1 {method or 'INVITE'}",
        f"{n['user-agent']}: {ua}",
        *extra,
        f"{n['content-length']}: {len(body.encode())}",
    ]
    return (sep.join(lines) + sep + sep + body).encode()


def full_values(data: bytes, stream: bool = False) -> tuple[str | None, ...] | None:
    try:
        m = parse_message(data, DEFAULT_LIMITS, stream=stream)
    except SipParseError:
        return None
    return (m.method, m.request_uri, m.call_id, m.header("from"), m.header("to"), m.user_agent)


CORPUS = [
    msg(),
    msg("INVITE", body="v=0\r\n"),
    msg("OPTIONS", host="203.0.113.1"),
    msg(ua="friendly-scanner", call_id="s1"),
    msg(None, call_id="resp"),
    msg(names={"from": "f", "to": "t", "call-id": "i", "content-length": "l"}),
    msg(names={"call-id": "CALL-ID", "user-agent": "user-agent", "from": "FROM"}),
    msg(names={"call-id": "Call-ID  ", "to": "To\t"}),  # spaces before the colon
    msg(extra=("Call-ID: second-one", "User-Agent: later")),  # the first occurrence wins
    msg(extra=(" folded continuation",)),
    msg(extra=("Bad Header: x",)),
    msg(extra=("NoColonHere",)),
    msg(ua="Ümlaut-phone"),
    msg(sep="\n"),
    b"\r\n" + msg(),
    msg(call_id="a\nb"),
    msg(call_id="a\rb"),
    msg(body="abc")[:-2],  # truncated body
    msg().replace(b"Content-Length: 0", b"Content-Length: x"),
    msg().replace(b"Content-Length: 0", b"Content-Length: 1234567890"),
    msg().replace(b"Call-ID: c1@x\r\n", b""),
    msg().replace(b"To: ", b"X-To: "),
    msg(host="[2001:db8::1]"),
    msg(host="bad host"),
    msg(to_host="-bad-"),
    msg().replace(b" SIP/2.0\r\n", b" SIP/2.0 \r\n", 1),
    msg() + b"trailing bytes",
    b"SIP/2.0 999 Nope\r\nCall-ID: x\r\n\r\n",
    b"GET / HTTP/1.0\r\n\r\n",
    b"\x16\x03\x01\x00\x05hello",
    b"",
    b"\r\n\r\n",
    msg(call_id="x" * 9000),
    msg(extra=tuple(f"X-H{k}: v" for k in range(130))),
]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("data", CORPUS)
def test_fast_values_are_the_full_parsers(data: bytes, stream: bool) -> None:
    fast = scan_head(data, DEFAULT_LIMITS, stream)
    if fast is not None:
        assert fast == full_values(data, stream)


def test_fast_path_takes_the_ordinary_messages() -> None:
    # the fast path must actually run on what phones send, or it is no fast path
    for data in (msg(), msg("INVITE", body="v=0\r\n"), msg(None), msg(names={"from": "f"})):
        assert scan_head(data, DEFAULT_LIMITS) is not None
    for odd in (msg(extra=(" folded",)), msg(ua="Ümlaut"), msg(sep="\n"), b"\r\n" + msg()):
        assert scan_head(odd, DEFAULT_LIMITS) is None
    assert scan_head(msg(), Limits(max_message=100)) is None
    assert scan_head(msg(), Limits(max_headers=3)) is None


def policies() -> tuple[SensorPolicy, SensorPolicy]:
    table = {"domains": [DOMAIN], "rate_limits": {"REGISTER": {"rate": 1, "burst": 3}}}
    cfg = parse_sensor_config(table, "test", ("friendly-scanner", "sipvicious"))
    return SensorPolicy(cfg), SensorPolicy(cfg, fast_path=False)


def judge_both(
    fast: SensorPolicy, full: SensorPolicy, data: bytes, now: float, stream: bool = False
) -> None:
    v1 = fast.check_sip(data, PHONE, 5060, now, "udp", stream)
    v2 = full.check_sip(data, PHONE, 5060, now, "udp", stream)
    assert v1 == v2


def test_same_verdicts_and_events_on_the_corpus() -> None:
    fast, full = policies()
    # twice, so the second round meets known dialogs and empty buckets
    for now, data in enumerate(CORPUS * 2):
        judge_both(fast, full, data, float(now) / 10)
    in_dialog = msg("BYE", host="192.0.2.1", call_id="c1@x", from_tag="f1")
    judge_both(fast, full, in_dialog, 10.0)
    fast.counters.pop("fast_path_fallback", None)
    assert fast.counters == full.counters
    assert fast.counters["in_dialog"] >= 1 and fast.counters["malformed"] >= 5


_NAMES = st.sampled_from(
    ["Call-ID", "call-id", "i", "I", "From", "f", "To", "t", "User-Agent", "user-agent",
     "Content-Length", "l", "Via", "v", "X-Custom", "Contact", "Bad Name", "", " Via"]
)  # fmt: skip
_VALUES = st.sampled_from(
    ["c1@x", f"<sip:1@{DOMAIN}>;tag=a", "<sip:1@203.0.113.1>;tag=b", '"A" <sip:2@x>',
     "friendly-scanner", "0", "3", " 0 ", "abc", "", "x\ny", "x\ry", "é", "\t v \t"]
)  # fmt: skip
_STARTS = st.sampled_from(
    [f"REGISTER sip:{DOMAIN} SIP/2.0", "OPTIONS sip:100@203.0.113.1 SIP/2.0",
     f"BYE sip:{DOMAIN} SIP/2.0", "SIP/2.0 200 OK", "SIP/2.0 9 X", "GET / HTTP/1.1", ""]
)  # fmt: skip


_CLEAN = st.sampled_from([":", ":", ": ", " :", ":\t"])


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    """Mostly well-formed messages (so the fast path runs), some with one odd part."""
    lines = [draw(_STARTS)]
    required = [
        (draw(st.sampled_from(["Call-ID", "call-id", "i", "I"])), draw(_VALUES)),
        (draw(st.sampled_from(["From", "f", "FROM"])), f"<sip:1@{DOMAIN}>;tag=a"),
        (draw(st.sampled_from(["To", "t"])), draw(_VALUES)),
        ("User-Agent", draw(st.sampled_from(["Yealink", "friendly-scanner", "sipvicious"]))),
    ]
    extras = [(draw(_NAMES), draw(_VALUES)) for _ in range(draw(st.integers(0, 4)))]
    picked = draw(st.permutations(required + extras))
    for name, value in picked:
        lines.append(f"{name}{draw(_CLEAN)}{value}")
    sep = draw(st.sampled_from(["\r\n", "\r\n", "\r\n", "\n"]))
    body = draw(st.sampled_from(["", "", "abc"]))
    if draw(st.booleans()):
        lines.append(f"Content-Length: {draw(st.sampled_from([0, 3, 4]))}")
    data = (sep.join(lines) + sep + sep + body).encode()
    if draw(st.integers(0, 3)) == 0:
        k = draw(st.integers(0, len(data)))
        data = data[:k] + draw(st.binary(max_size=3)) + data[k:]
    return data


@settings(max_examples=400, deadline=None)
@given(st.lists(messages(), min_size=1, max_size=6), st.booleans())
def test_fast_and_full_agree_on_generated_input(batch: list[bytes], stream: bool) -> None:
    fast, full = policies()
    for k, data in enumerate(batch):
        head = scan_head(data, DEFAULT_LIMITS, stream)
        if head is not None:
            assert head == full_values(data, stream)
        judge_both(fast, full, data, float(k), stream)


def ipv4_udp(payload: bytes, *, vhl: int = 0x45, frag: int = 0, proto: int = 17,
             total: int | None = None) -> bytes:  # fmt: skip
    size = 28 + len(payload)
    udp = struct.pack("!HHHH", 40000, 5060, 8 + len(payload), 0) + payload
    hdr = struct.pack("!BBHHHBBH4s4s", vhl, 0, size if total is None else total, 1, frag, 64,
                      proto, 0, bytes([192, 0, 2, 9]), bytes([203, 0, 113, 1]))  # fmt: skip
    return hdr + udp


@given(st.binary(max_size=80), st.sampled_from([0x45, 0x46, 0x65]),
       st.sampled_from([0, 0x2000, 0x4000]), st.sampled_from([17, 6]),
       st.one_of(st.none(), st.integers(0, 200)))  # fmt: skip
def test_udp4_reads_what_parse_packet_reads(
    payload: bytes, vhl: int, frag: int, proto: int, total: int | None
) -> None:
    data = ipv4_udp(payload, vhl=vhl, frag=frag, proto=proto, total=total)
    fast = udp4(data)
    if fast is None:
        return
    try:
        pkt = parse_packet(data)
    except PacketError:
        pytest.fail("udp4 read a packet parse_packet rejects")
    assert fast == (pkt.src, pkt.sport, pkt.payload) and pkt.proto == 17


def test_udp4_takes_plain_packets_only() -> None:
    assert udp4(ipv4_udp(b"OPTIONS")) == (bytes([192, 0, 2, 9]), 40000, b"OPTIONS")
    assert udp4(ipv4_udp(b"x", frag=0x2000)) is None  # more fragments
    assert udp4(ipv4_udp(b"x", vhl=0x46)) is None  # IP options
    assert udp4(ipv4_udp(b"x", total=500)) is None  # truncated by the queue
