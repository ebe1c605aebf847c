"""Packet in, verdict out: the whole sensor minus the queue (pure; the adapter does the I/O).

UDP: one datagram is one message. TCP on a SIP port: segments are joined per flow and every
message completed by a segment is judged; one bad message blocks the flow for good, because a
segment dropped after its bytes were counted would otherwise come back as an "old"
retransmission and slip through. TLS ports: segments pass until the ClientHello is complete;
then the flow is judged once on its SNI and either passes untouched or is blocked.
Packets the PBX sends (the output hook) are never dropped; they only teach the dialog table.
"""

from __future__ import annotations

from sipguard.core.events import Event, IPAddress
from sipguard.core.sip import SipParseError
from sipguard.core.tls import MAX_HELLO
from sipguard.sensor.packet import (
    RST,
    UDP,
    Flow,
    FlowTable,
    IpPacket,
    PacketError,
    parse_packet,
    udp4,
)
from sipguard.sensor.policy import SensorPolicy, Verdict, parse_ip

__all__ = ["PacketSensor"]

_NO_EVENTS: tuple[Event, ...] = ()


def _is_keepalive(payload: bytes) -> bool:
    # RFC 5626 keep-alive: CRLFCRLF ping, CRLF pong (and the odd NUL padding some phones send)
    return len(payload) <= 8 and not payload.strip(b"\r\n\x00 ")


class PacketSensor:
    def __init__(self, policy: SensorPolicy) -> None:
        self.policy = policy
        self.counters = policy.counters
        self.flows = FlowTable(policy.config.max_flows, policy.limits)
        self.tls_ports = frozenset(policy.config.tls_ports)
        # raw address bytes -> ip_address object: building one costs more than judging a
        # keep-alive, and the same phones send over and over (bounded: cleared when full)
        self._ips: dict[bytes, IPAddress] = {}

    def _ip(self, packed: bytes) -> IPAddress:
        ip = self._ips.get(packed)
        if ip is None:
            if len(self._ips) >= 65536:
                self._ips.clear()
            ip = self._ips[packed] = parse_ip(packed)
        return ip

    def handle(
        self, data: bytes, now: float, outbound: bool = False
    ) -> tuple[bool, tuple[Event, ...]]:
        """(accept?, events) for one IP packet as the queue delivered it."""
        self.counters["packets_out" if outbound else "packets_in"] += 1
        if not outbound:
            plain = udp4(data)
            if plain is not None:  # the common case, without an IpPacket
                src, sport, payload = plain
                # _is_keepalive and _ip, inlined: this runs for every packet of a flood
                if len(payload) <= 8 and not payload.strip(b"\r\n\x00 "):
                    self.counters["keepalive"] += 1
                    return True, _NO_EVENTS
                ip = self._ips.get(src)
                if ip is None:
                    ip = self._ip(src)
                v = self.policy.check_sip(payload, ip, sport, now, "udp")
                return v.accept, (v.event,) if v.event else _NO_EVENTS
        try:
            pkt = parse_packet(data)
        except PacketError as exc:
            self.counters["bad_packet"] += 1
            self.counters[f"bad_packet {exc.reason}"] += 1
            return outbound, _NO_EVENTS  # the PBX's own packets always leave
        if outbound:
            self._outbound(pkt, now)
            return True, _NO_EVENTS
        if pkt.proto == UDP:
            if _is_keepalive(pkt.payload):
                self.counters["keepalive"] += 1
                return True, _NO_EVENTS
            v = self.policy.check_sip(pkt.payload, self._ip(pkt.src), pkt.sport, now, "udp")
            return v.accept, (v.event,) if v.event else _NO_EVENTS
        return self._tcp(pkt, now)

    def _outbound(self, pkt: IpPacket, now: float) -> None:
        if pkt.proto == UDP:
            if not _is_keepalive(pkt.payload):
                self.policy.note_outbound(pkt.payload, now)
            return
        if pkt.sport in self.tls_ports or not pkt.payload:
            return
        flow = self.flows.get(pkt)
        fresh = self.flows.new_bytes(flow, pkt)
        if not fresh or flow.state == "blocked":
            return
        try:
            for msg in flow.framer.feed(fresh):
                self.policy.note_outbound(msg, now)
        except SipParseError:
            flow.state = "blocked"  # stop reading this direction; never drop the PBX's bytes
            self.counters["outbound_malformed"] += 1

    def _tcp(self, pkt: IpPacket, now: float) -> tuple[bool, tuple[Event, ...]]:
        ip = self._ip(pkt.src)
        flow = self.flows.get(pkt)
        if flow.state == "blocked":
            self.counters["blocked_flow"] += 1
            return bool(pkt.flags & RST) and not pkt.payload, _NO_EVENTS
        if flow.state == "passed" or not pkt.payload:
            return True, _NO_EVENTS
        if self.policy.is_trusted(ip):
            flow.state = "passed"
            self.counters["trusted"] += 1
            return True, _NO_EVENTS
        fresh = self.flows.new_bytes(flow, pkt)
        if fresh is None:
            self.counters["tcp_gap"] += 1
            return False, _NO_EVENTS
        if not fresh:
            self.counters["tcp_retransmit"] += 1
            return True, _NO_EVENTS
        if pkt.dport in self.tls_ports:
            return self._tls(flow, fresh, ip, pkt.sport, now)
        try:
            messages = flow.framer.feed(fresh)
        except SipParseError as exc:
            flow.state = "blocked"
            v = self.policy.malformed(exc.reason, fresh, ip, pkt.sport, now, "tcp")
            return False, (v.event,) if v.event else _NO_EVENTS
        events: list[Event] = []
        accept = True
        for msg in messages:
            v = self.policy.check_sip(msg, ip, pkt.sport, now, "tcp", stream=True)
            if v.event is not None:
                events.append(v.event)
            if not v.accept:
                accept = False
                flow.state = "blocked"
                break
        return accept, tuple(events)

    def _tls(
        self, flow: Flow, fresh: bytes, ip: IPAddress, port: int, now: float
    ) -> tuple[bool, tuple[Event, ...]]:
        flow.hello += fresh[: MAX_HELLO + 1 - len(flow.hello)]
        v: Verdict | None = self.policy.check_tls(bytes(flow.hello), ip, port, now)
        if v is None:
            return True, _NO_EVENTS
        flow.hello = bytearray()
        flow.state = "passed" if v.accept else "blocked"
        return v.accept, (v.event,) if v.event else _NO_EVENTS
