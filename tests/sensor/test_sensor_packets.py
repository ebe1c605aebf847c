"""PacketSensor on raw IP packets as NFQUEUE delivers them: UDP, TCP reassembly, TLS, IPv6."""

from __future__ import annotations

import ssl
import struct
from ipaddress import ip_address
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipguard.data import scanner_signatures
from sipguard.sensor.config import parse_sensor_config
from sipguard.sensor.packet import PacketError, parse_packet
from sipguard.sensor.policy import SensorPolicy
from sipguard.sensor.sensor import PacketSensor

DOMAIN = "secret.example.com"
SRC, DST = ip_address("192.0.2.10").packed, ip_address("203.0.113.1").packed
SRC6, DST6 = ip_address("2001:db8:1::2").packed, ip_address("2001:db8:1::1").packed
SYN, ACK, PSH, RST = 0x02, 0x10, 0x08, 0x04


def ip4(proto: int, l4: bytes, src: bytes = SRC, frag: int = 0) -> bytes:
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, frag, 64, proto, 0, src, DST) + l4


def ip6(proto: int, l4: bytes) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, len(l4), proto, 64, SRC6, DST6) + l4


def udp(payload: bytes, sport: int = 5062, dport: int = 5060) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def tcp(
    payload: bytes, seq: int, flags: int = ACK | PSH, sport: int = 40000, dport: int = 5060
) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, flags, 65535, 0, 0) + payload


def request(method: str, host: str = DOMAIN, call_id: str = "c1", ua: str = "Phone") -> bytes:
    return (
        f"{method} sip:100@{host} SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.10;branch=z9hG4bK1\r\n"
        f"From: <sip:100@{host}>;tag=a\r\nTo: <sip:100@{host}>\r\nCall-ID: {call_id}\r\n"
        f"CSeq: 1 {method}\r\nUser-Agent: {ua}\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def sensor() -> PacketSensor:
    cfg = parse_sensor_config({"domains": [DOMAIN]}, "t.toml", scanner_signatures())
    return PacketSensor(SensorPolicy(cfg))


def test_udp_v4_and_v6() -> None:
    s = sensor()
    ok, events = s.handle(ip4(17, udp(request("OPTIONS"))), 1.0)
    assert ok and events == ()
    ok, events = s.handle(ip4(17, udp(request("OPTIONS", host="203.0.113.1", call_id="2"))), 1.0)
    assert not ok and events[0].ip == ip_address("192.0.2.10") and events[0].port == 5062
    ok, events = s.handle(ip6(17, udp(request("OPTIONS", host="[2001:db8:1::1]", call_id="3"))), 1)
    assert not ok and events[0].ip == ip_address("2001:db8:1::2")
    assert s.handle(ip4(17, udp(b"\r\n\r\n")), 1.0) == (True, ())  # keep-alive ping


def test_tcp_message_split_across_segments_is_judged_when_complete() -> None:
    s = sensor()
    assert s.handle(ip4(6, tcp(b"", 999, SYN)), 1)[0]
    msg = request("REGISTER")
    seq = 1000
    for i in range(0, len(msg) - 10, 10):  # all but the last piece: incomplete, passes
        assert s.handle(ip4(6, tcp(msg[i : i + 10], seq)), 1)[0]
        seq += 10
    tail = msg[seq - 1000 :]
    assert s.handle(ip4(6, tcp(tail, seq)), 1) == (True, ())
    assert s.counters["accepted"] == 1


def test_tcp_several_messages_in_one_segment_and_a_bad_one_blocks_the_flow() -> None:
    s = sensor()
    good = request("REGISTER", call_id="a") + request("OPTIONS", call_id="b")
    assert s.handle(ip4(6, tcp(good, 1000)), 1)[0]
    assert s.counters["accepted"] == 2
    bad = request("INVITE", host="203.0.113.1", call_id="c")
    seq = 1000 + len(good)
    ok, events = s.handle(ip4(6, tcp(bad, seq)), 1)
    assert not ok and events[0].detail == "wrong_domain 203.0.113.1"
    assert events[0].transport == "tcp"
    # the retransmission of the dropped segment, and everything after, stay dropped
    assert not s.handle(ip4(6, tcp(bad, seq)), 1)[0]
    assert not s.handle(ip4(6, tcp(request("OPTIONS", call_id="d"), seq + len(bad))), 1)[0]
    # the same 4-tuple reused by a new connection (no RST seen) starts clean
    assert s.handle(ip4(6, tcp(b"", 5000, SYN)), 1)[0]
    assert s.handle(ip4(6, tcp(request("OPTIONS", call_id="e"), 5001)), 1) == (True, ())
    assert s.handle(ip4(6, tcp(b"", 9000, RST)), 1)[0]  # a reset always passes


def test_tcp_gap_is_dropped_and_retransmission_passes() -> None:
    s = sensor()
    msg = request("OPTIONS")
    assert s.handle(ip4(6, tcp(msg[:20], 1000)), 1)[0]
    assert not s.handle(ip4(6, tcp(msg[40:], 1040)), 1)[0]  # beyond a gap: TCP will resend
    assert s.handle(ip4(6, tcp(msg[:20], 1000)), 1)[0]  # old bytes again
    assert s.handle(ip4(6, tcp(msg[10:], 1010)), 1) == (True, ())  # overlaps, completes it
    assert s.counters["accepted"] == 1 and s.counters["tcp_gap"] == 1


def test_tcp_garbage_blocks_the_flow_with_an_event() -> None:
    s = sensor()
    ok, events = s.handle(ip4(6, tcp(b"INVITE sip:x SIP/2.0\r\nCall-ID: 1\r\n\r\n", 1)), 1)
    assert not ok and events[0].detail == "missing_content_length"


def _hello(name: str | None) -> bytes:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    out = ssl.MemoryBIO()
    tls = ctx.wrap_bio(ssl.MemoryBIO(), out, server_hostname=name)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def test_tls_flow_judged_once_on_its_client_hello() -> None:
    s = sensor()
    hello = _hello(DOMAIN)
    assert s.handle(ip4(6, tcp(hello[:100], 1, dport=5061)), 1)[0]  # incomplete: passes
    assert s.handle(ip4(6, tcp(hello[100:], 101, dport=5061)), 1) == (True, ())
    assert s.handle(ip4(6, tcp(b"\x17\x03\x03 encrypted", 1 + len(hello), dport=5061)), 1)[0]
    bad = _hello("other.example.net")
    ok, events = s.handle(ip4(6, tcp(bad, 1, sport=40001, dport=5061)), 1)
    assert not ok and events[0].detail == "tls_sni other.example.net"
    assert not s.handle(ip4(6, tcp(b"more", 1 + len(bad), sport=40001, dport=5061)), 1)[0]


def test_outbound_packets_always_pass_and_teach_dialogs() -> None:
    s = sensor()
    out = request("OPTIONS", host="192.0.2.10", call_id="q1")
    assert s.handle(ip4(17, udp(out, 5060, 5062)), 1, outbound=True) == (True, ())
    reply = out.replace(b"OPTIONS sip:100@192.0.2.10 SIP/2.0", b"SIP/2.0 200 OK")
    assert s.handle(ip4(17, udp(reply)), 1)[0]
    assert s.handle(b"\x00junk", 1, outbound=True)[0]


def test_bad_packets_are_counted() -> None:
    s = sensor()
    assert not s.handle(ip4(17, udp(request("OPTIONS")), frag=0x2000), 1)[0]  # a fragment
    assert not s.handle(b"\x45" + b"\x00" * 10, 1)[0]
    assert s.counters["bad_packet"] == 2 and s.counters["bad_packet fragment"] == 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.booleans())
def test_never_raises_on_random_packets(data: bytes, outbound: bool) -> None:
    s = sensor()
    ok, events = s.handle(data, 1.0, outbound)
    assert isinstance(ok, bool) and isinstance(events, tuple)
    try:
        parse_packet(data)
    except PacketError:
        pass


def test_run_sensor_task_starts_and_stops_cleanly() -> None:
    """The asyncio entry point binds a queue, reports ready, and stops on cancel. Queue 31999
    with no rule pointing at it: no packet of this machine is ever queued."""
    import asyncio

    from sipguard.sensor.nfq import NfqSensor, run_sensor
    from sipguard.testing.netns import netns_available

    if not netns_available():
        pytest.skip("needs root (NFQUEUE bind)")
    cfg = parse_sensor_config({"domains": [DOMAIN], "queue": 31999}, "t.toml")
    seen: list[NfqSensor] = []

    async def main() -> None:
        task = asyncio.create_task(
            run_sensor(cfg, print, install_table=False, on_ready=seen.append)
        )
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.05)
        assert seen and seen[0].stats().get("packets_in", 0) == 0
        assert "31999" in Path("/proc/net/netfilter/nfnetlink_queue").read_text().split()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(asyncio.wait_for(main(), 20))
