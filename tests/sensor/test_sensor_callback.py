"""The queue callbacks: the batched one (clock once per batch, VerdictBatch.add inlined) gives
the same verdicts, events, counters and wire bytes as the plain per-packet `_on_packet`."""

from __future__ import annotations

import os
import struct
from ipaddress import ip_address
from typing import Any

from sipguard.core.clock import FakeClock
from sipguard.core.events import Event
from sipguard.data import scanner_signatures
from sipguard.sensor.config import parse_sensor_config
from sipguard.sensor.nfq import NF_INET_LOCAL_OUT, NfqSensor, VerdictBatch

DOMAIN = "secret.example.com"
DST = ip_address("203.0.113.1").packed


class FakePacket:
    """What the callback reads of the binding's Packet, and the verdicts it may give."""

    def __init__(self, packet_id: int, data: bytes, hook: int = 1) -> None:
        self.id, self.hook, self._data = packet_id, hook, data
        self.verdict: bool | None = None

    def get_payload(self) -> bytes:
        return self._data

    def accept(self) -> None:
        self.verdict = True

    def drop(self) -> None:
        self.verdict = False


def packet(payload: bytes, src: str = "192.0.2.10", sport: int = 5062, out: bool = False) -> bytes:
    udp = struct.pack("!HHHH", sport, 5060, 8 + len(payload), 0) + payload
    a, b = ip_address(src).packed, DST
    if out:
        a, b = b, a
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, a, b) + udp


def request(method: str, host: str, call_id: str, ua: str = "Phone", to_tag: str = "") -> bytes:
    to = f"<sip:100@{host}>" + (f";tag={to_tag}" if to_tag else "")
    return (
        f"{method} sip:100@{host} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK1\r\n"
        f"From: <sip:100@{host}>;tag=a{call_id}\r\nTo: {to}\r\nCall-ID: {call_id}\r\n"
        f"CSeq: 1 {method}\r\nUser-Agent: {ua}\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def traffic() -> list[tuple[bytes, int]]:
    """(IP packet, hook): accepted, in-dialog, dropped for every reason, keep-alives, junk,
    the PBX's own requests, a rate-limited source."""
    out: list[tuple[bytes, int]] = []
    for n in range(40):
        src = f"192.0.2.{10 + n % 7}"
        out.append((packet(request("REGISTER", DOMAIN, f"r{n}"), src), 1))
        out.append((packet(request("BYE", DOMAIN, f"r{n}", to_tag="b"), src), 1))
        out.append((packet(request("OPTIONS", "198.51.100.7", f"w{n}"), src), 1))
        out.append((packet(request("REGISTER", DOMAIN, f"s{n}", ua="friendly-scanner"), src), 1))
        out.append((packet(b"\x16\x03junk " + bytes([n]) * 30, src), 1))
        out.append((packet(b"\r\n\r\n", src), 1))
        out.append((packet(b"SIP/2.0 200 OK\r\nCall-ID: nobody\r\n\r\n", src), 1))
        pbx_request = request("OPTIONS", "192.0.2.10", f"o{n}")
        out.append((packet(pbx_request, src, out=True), NF_INET_LOCAL_OUT))
        out.append((packet(b"SIP/2.0 200 OK\r\n", src)[:31], 1))  # truncated IP packet
        out.append((packet(request("INVITE", DOMAIN, f"i{n}"), "192.0.2.99"), 1))  # rate
    return out


def make(clock: FakeClock, events: list[Event]) -> NfqSensor:
    cfg = parse_sensor_config(
        {"domains": [DOMAIN], "rate_limits": {"INVITE": {"rate": 1, "burst": 5}}},
        "t.toml",
        scanner_signatures(),
    )
    return NfqSensor(cfg, events.append, clock=clock, install_table=False)


def test_batched_callback_equals_the_per_packet_one() -> None:
    packets = traffic()
    # the per-packet callback, with the binding's own verdicts
    plain_events: list[Event] = []
    plain = make(FakeClock(), plain_events)
    verdicts = []
    for k, (data, hook) in enumerate(packets, 1):
        pkt = FakePacket(k, data, hook)
        plain._on_packet(pkt)
        verdicts.append(pkt.verdict)
    # the batched callback: verdicts read back from the wire
    fast_events: list[Event] = []
    fast = make(FakeClock(), fast_events)
    r, w = os.pipe()
    try:
        batch = VerdictBatch(w, queue=0, size=1000)  # one write: every verdict in it
        callback = fast._batched_callback(batch)
        for k, (data, hook) in enumerate(packets, 1):
            callback(FakePacket(k, data, hook))
        batch.flush()
        wire = os.read(r, 1 << 20)
    finally:
        os.close(r)
        os.close(w)
    drops, newest_accept = set(), 0
    while wire:
        length, kind = struct.unpack_from("=IH", wire)
        (verdict, packet_id) = struct.unpack_from("!II", wire, 24)
        if kind & 0xFF == 1:
            assert verdict == 0
            drops.add(packet_id)
        else:
            assert verdict == 1
            newest_accept = packet_id
        wire = wire[length:]
    expected_drops = {k for k, v in enumerate(verdicts, 1) if v is False}
    assert drops == expected_drops and 10 < len(drops) < len(packets) - 10
    assert newest_accept == max(k for k, v in enumerate(verdicts, 1) if v)
    # every drop has its event, but a broken IP packet (counted as bad_packet)
    assert fast_events == plain_events
    assert len(plain_events) == len(drops) - plain.counters["bad_packet"] > 0
    assert fast.counters == plain.counters
    assert plain.counters["packets_out"] == 40 and plain.counters["rate_limit"] > 0


def test_the_clock_is_read_once_per_batch() -> None:
    clock = FakeClock(100.0)
    reads = []

    class CountingClock:
        def now(self) -> float:
            reads.append(clock.t)
            clock.advance(1.0)
            return reads[-1]

    events: list[Event] = []
    cfg = parse_sensor_config({"domains": [DOMAIN]}, "t.toml", scanner_signatures())
    s = NfqSensor(cfg, events.append, clock=CountingClock(), install_table=False)
    r, w = os.pipe()
    try:
        batch = VerdictBatch(w, queue=0, size=4)
        callback = s._batched_callback(batch)
        reads.clear()
        for k in range(1, 11):  # 10 packets, batches of 4: the clock is read at 1, 5 and 9
            callback(FakePacket(k, packet(request("OPTIONS", "192.0.2.1", f"x{k}"))))
        batch.flush()
        os.read(r, 1 << 16)
    finally:
        os.close(r)
        os.close(w)
    assert len(reads) == 3
    # every drop carries its batch's time: packets 1-4 the first read, 5-8 the second ...
    assert [e.time for e in events] == [reads[(k - 1) // 4] for k in range(1, 11)]


def test_an_internal_error_accepts_and_is_counted() -> None:
    events: list[Event] = []
    s = make(FakeClock(), events)

    def broken(*_: Any) -> Any:
        raise RuntimeError("bug")

    s.sensor.handle = broken  # type: ignore[method-assign]
    r, w = os.pipe()
    try:
        batch = VerdictBatch(w, queue=0, size=64)
        callback = s._batched_callback(batch)
        callback(FakePacket(5, b"anything"))
        batch.flush()
        wire = os.read(r, 4096)
    finally:
        os.close(r)
        os.close(w)
    assert struct.unpack_from("!II", wire, 24) == (1, 5)  # accepted (batch accept up to 5)
    assert s.counters["internal_error"] == 1 and events == []
