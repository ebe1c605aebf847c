"""IP packets as NFQUEUE hands them over, and TCP flows rebuilt from their segments (pure).

`parse_packet` reads the IPv4/IPv6 header and the UDP/TCP header after it. `FlowTable` keeps,
per TCP flow, the next expected sequence number and a `StreamFramer`, so a SIP message split
across segments is judged when its last byte arrives and several messages in one segment are
each judged. A segment beyond a gap is dropped rather than buffered: TCP retransmits it once the
gap is filled, which keeps memory per flow at one partial message.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from sipguard.core.sip import Limits, StreamFramer

__all__ = ["Flow", "FlowTable", "IpPacket", "PacketError", "parse_packet", "udp4"]

TCP, UDP = 6, 17
FIN, SYN, RST = 0x01, 0x02, 0x04


class PacketError(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class IpPacket:
    version: int
    src: bytes  # 4 or 16 raw bytes
    dst: bytes
    proto: int
    sport: int
    dport: int
    payload: bytes
    seq: int = 0  # TCP only
    flags: int = 0  # TCP only


_IPV6_EXT = {0, 43, 60}  # hop-by-hop, routing, destination options: skipped to find the L4 header


def parse_packet(data: bytes) -> IpPacket:
    if len(data) < 20:
        raise PacketError("short_ip")
    version = data[0] >> 4
    if version == 4:
        ihl = (data[0] & 0x0F) * 4
        total = int.from_bytes(data[2:4], "big")
        if ihl < 20 or total < ihl:
            raise PacketError("bad_ipv4_header")
        if total > len(data):
            # the queue copies at most ~4 KB of a packet; the rest cannot be judged
            raise PacketError("truncated")
        if int.from_bytes(data[6:8], "big") & 0x3FFF:
            # a fragment: the kernel reassembles before the input hook when conntrack is on
            # (the sensor's table references ct for exactly this); if one still arrives, its
            # payload cannot be judged
            raise PacketError("fragment")
        proto, src, dst, off, end = data[9], data[12:16], data[16:20], ihl, total
    elif version == 6:
        if len(data) < 40:
            raise PacketError("short_ipv6")
        end = 40 + int.from_bytes(data[4:6], "big")
        if end > len(data):
            raise PacketError("truncated")
        proto, src, dst, off = data[6], data[8:24], data[24:40], 40
        for _ in range(8):
            if proto not in _IPV6_EXT:
                break
            if off + 8 > end:
                raise PacketError("bad_ipv6_ext")
            proto, off = data[off], off + (data[off + 1] + 1) * 8
        if proto == 44:
            raise PacketError("fragment")
    else:
        raise PacketError("bad_ip_version")
    if proto == UDP:
        if off + 8 > end:
            raise PacketError("short_udp")
        sport, dport = struct.unpack_from("!HH", data, off)
        return IpPacket(version, src, dst, proto, sport, dport, data[off + 8 : end])
    if proto == TCP:
        if off + 20 > end:
            raise PacketError("short_tcp")
        sport, dport, seq = struct.unpack_from("!HHI", data, off)
        doff = (data[off + 12] >> 4) * 4
        if doff < 20 or off + doff > end:
            raise PacketError("bad_tcp_header")
        return IpPacket(
            version, src, dst, proto, sport, dport, data[off + doff : end], seq, data[off + 13]
        )
    raise PacketError("not_udp_tcp")


# version/IHL, total length, flags+fragment offset, protocol, source; then UDP ports
_V4_UDP = struct.Struct("!BxHxxHxBxx4s4xH")


def udp4(data: bytes) -> tuple[bytes, int, bytes] | None:
    """(source, source port, payload) of a plain IPv4/UDP packet (no options, not a fragment),
    exactly as `parse_packet` would read it; None for anything else, which the caller hands
    to `parse_packet`. Most SIP arrives like this, and it skips building an IpPacket."""
    if len(data) < 28:
        return None
    vhl, total, frag, proto, src, sport = _V4_UDP.unpack_from(data)
    if vhl != 0x45 or proto != UDP or frag & 0x3FFF or total < 28 or total > len(data):
        return None
    return src, sport, data[28:total]


@dataclass(slots=True)
class Flow:
    next_seq: int | None
    framer: StreamFramer
    state: str = "open"  # "open", "passed" (TLS judged good), "blocked" (judged bad)
    hello: bytearray = field(default_factory=bytearray)  # TLS: first bytes, until judged


FlowKey = tuple[bytes, int, bytes, int]


class FlowTable:
    """TCP flows (LRU, at most `max_flows`). Keys are (src, sport, dst, dport) as sent."""

    def __init__(self, max_flows: int, limits: Limits | None = None) -> None:
        self.max_flows = max_flows
        self.limits = limits or Limits()
        self._flows: dict[FlowKey, Flow] = {}
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._flows)

    def get(self, pkt: IpPacket) -> Flow:
        key = (pkt.src, pkt.sport, pkt.dst, pkt.dport)
        flow = self._flows.pop(key, None)
        if pkt.flags & SYN:
            # a new connection on a reused 4-tuple (phones often keep their local port):
            # it starts clean, whatever the previous one did
            flow = None
        if flow is None:
            if len(self._flows) >= self.max_flows:
                del self._flows[next(iter(self._flows))]
                self.evicted += 1
            start = (pkt.seq + 1) & 0xFFFFFFFF if pkt.flags & SYN else pkt.seq
            flow = Flow(start, StreamFramer(self.limits))
        self._flows[key] = flow
        if pkt.flags & (FIN | RST) and not pkt.payload:
            del self._flows[key]
        return flow

    def new_bytes(self, flow: Flow, pkt: IpPacket) -> bytes | None:
        """The bytes of this segment not seen before: b"" for a pure retransmission, None
        when the segment lies beyond a gap (the caller drops it; TCP will resend)."""
        if flow.next_seq is None:
            flow.next_seq = pkt.seq
        delta = (pkt.seq - flow.next_seq) & 0xFFFFFFFF
        if delta and delta < 0x80000000:
            return None
        behind = (0x100000000 - delta) & 0xFFFFFFFF
        if behind >= len(pkt.payload):
            return b""
        fresh = pkt.payload[behind:]
        flow.next_seq = (flow.next_seq + len(fresh)) & 0xFFFFFFFF
        return fresh
