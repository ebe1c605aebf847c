"""Flush conntrack entries of newly banned sources over ctnetlink, without spawning a process.

One dump of the table per batch of bans, then one delete per matching entry, on a plain
NETLINK_NETFILTER socket: about a millisecond for a PBX-sized table, where `conntrack -D` costs a
process per address. Falls back to the `conntrack` tool when the socket cannot be used.

Wire format (include/uapi/linux/netfilter/nfnetlink_conntrack.h): nlmsghdr, nfgenmsg, then
attributes; CTA_TUPLE_ORIG > CTA_TUPLE_IP > CTA_IP_V4_SRC / CTA_IP_V6_SRC holds the source.
"""

from __future__ import annotations

import errno
import logging
import socket
import struct
import threading
from collections.abc import Iterator, Sequence
from ipaddress import IPv4Address, IPv6Address, ip_address

from sipguard.actions.libnft import in_netns
from sipguard.actions.tools import flush_conntrack
from sipguard.core.alerts import Network

log = logging.getLogger("sipguard.firewall")

NETLINK_NETFILTER = 12
NFNL_SUBSYS_CTNETLINK = 1
IPCTNL_MSG_CT_GET = 1
IPCTNL_MSG_CT_DELETE = 2
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
CTA_TUPLE_ORIG, CTA_ZONE = 1, 18
CTA_TUPLE_IP = 1
CTA_IP_V4_SRC, CTA_IP_V6_SRC = 1, 3
NLA_TYPE_MASK = 0x3FFF
_HDR = struct.Struct("=IHHII")
_NFGEN = struct.Struct("=BBH")
_ATTR = struct.Struct("=HH")
MAX_ENTRIES = 2_000_000  # stop reading a dump beyond this (the kernel's own max is lower)
MAX_QUEUED = 100_000  # networks waiting for a flush; beyond this the oldest are dropped


class ConntrackUnavailable(OSError):
    """ctnetlink cannot be used here (no module, no permission); callers fall back."""


def _attrs(buf: bytes, off: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(type, payload start, payload end) for each attribute in buf[off:end]."""
    while off + 4 <= end:
        length, typ = _ATTR.unpack_from(buf, off)
        if length < 4 or off + length > end:
            return
        yield typ & NLA_TYPE_MASK, off + 4, off + length
        off += (length + 3) & ~3


def _source(buf: bytes, start: int, end: int) -> tuple[IPv4Address | IPv6Address | None, bytes]:
    """The original-direction source address and the raw CTA_TUPLE_ORIG (+ zone) attributes."""
    src: IPv4Address | IPv6Address | None = None
    keep = b""
    for typ, a, b in _attrs(buf, start, end):
        if typ == CTA_TUPLE_ORIG:
            keep += buf[a - 4 : (b + 3) & ~3]
            for t2, a2, b2 in _attrs(buf, a, b):
                if t2 != CTA_TUPLE_IP:
                    continue
                for t3, a3, b3 in _attrs(buf, a2, b2):
                    if (t3, b3 - a3) in ((CTA_IP_V4_SRC, 4), (CTA_IP_V6_SRC, 16)):
                        src = ip_address(bytes(buf[a3:b3]))
        elif typ == CTA_ZONE:
            keep += buf[a - 4 : (b + 3) & ~3]
    return src, keep


class Conntrack:
    """A ctnetlink socket, opened inside `netns` when given (it stays bound to that namespace)."""

    def __init__(self, netns: str | None = None) -> None:
        try:
            with in_netns(netns):
                self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
            self.sock.bind((0, 0))
            self.sock.settimeout(5.0)
        except OSError as exc:
            raise ConntrackUnavailable(exc.errno or 0, f"ctnetlink: {exc}") from exc
        self.seq = 0

    def _send(self, msg_type: int, flags: int, family: int, payload: bytes) -> int:
        self.seq += 1
        body = _NFGEN.pack(family, 0, 0) + payload
        typ = (NFNL_SUBSYS_CTNETLINK << 8) | msg_type
        self.sock.send(_HDR.pack(_HDR.size + len(body), typ, flags, self.seq, 0) + body)
        return self.seq

    def _messages(self) -> Iterator[tuple[int, int, bytes, int]]:
        """(type, seq, buffer, offset of the payload) for each message received, until DONE."""
        while True:
            buf = self.sock.recv(1 << 20)
            off = 0
            while off + _HDR.size <= len(buf):
                length, typ, _flags, seq, _pid = _HDR.unpack_from(buf, off)
                if length < _HDR.size or off + length > len(buf):
                    return
                yield typ, seq, buf[off : off + length], _HDR.size
                if typ == NLMSG_DONE:
                    return
                off += (length + 3) & ~3

    def entries_from(self, networks: Sequence[Network]) -> list[tuple[int, bytes]]:
        """(family, tuple attributes) of every entry whose original source is in `networks`."""
        self._send(IPCTNL_MSG_CT_GET, NLM_F_REQUEST | NLM_F_DUMP, socket.AF_UNSPEC, b"")
        found: list[tuple[int, bytes]] = []
        seen = 0
        for typ, _seq, msg, off in self._messages():
            if typ == NLMSG_ERROR:
                (err,) = struct.unpack_from("=i", msg, off)
                if err:
                    raise ConntrackUnavailable(-err, f"ctnetlink dump: {errno.errorcode.get(-err)}")
                continue
            if typ == NLMSG_DONE:
                break
            seen += 1
            if seen > MAX_ENTRIES:
                break
            family = msg[off]
            src, tuple_attrs = _source(msg, off + _NFGEN.size, len(msg))
            if src is not None and any(src in net for net in networks):
                found.append((family, tuple_attrs))
        return found

    def flush(self, networks: Sequence[Network]) -> int:
        """Delete the entries of these sources; returns how many the kernel deleted."""
        if not networks:
            return 0
        victims = self.entries_from(networks)
        seqs = {
            self._send(IPCTNL_MSG_CT_DELETE, NLM_F_REQUEST | NLM_F_ACK, f, a) for f, a in victims
        }
        deleted = 0
        for typ, seq, msg, off in self._messages() if seqs else ():
            if typ != NLMSG_ERROR or seq not in seqs:
                continue
            seqs.discard(seq)
            (err,) = struct.unpack_from("=i", msg, off)
            if err == 0:
                deleted += 1
            elif -err != errno.ENOENT:  # gone meanwhile: fine
                log.warning("conntrack delete failed: %s", errno.errorcode.get(-err, err))
            if not seqs:
                break
        return deleted

    def close(self) -> None:
        self.sock.close()


class Flusher:
    """A background thread that flushes queued networks, coalescing everything queued meanwhile
    into one dump. ctnetlink first; the `conntrack` tool if the socket cannot be used."""

    def __init__(self, netns: str | None) -> None:
        self.netns = netns
        self._cond = threading.Condition()
        self._queue: dict[Network, None] = {}
        self._busy = False
        self._stop = False
        self._ct: Conntrack | None = None
        self._ct_failed = False
        self.flushed = 0  # entries deleted over ctnetlink
        self.dropped = 0  # networks never flushed because the queue was full
        self._thread = threading.Thread(target=self._run, name="sipguard-conntrack", daemon=True)
        self._thread.start()

    @property
    def via(self) -> str:
        return "conntrack-tool" if self._ct_failed else "ctnetlink"

    def submit(self, networks: Sequence[Network]) -> None:
        with self._cond:
            for net in networks:
                self._queue[net] = None
            while len(self._queue) > MAX_QUEUED:
                del self._queue[next(iter(self._queue))]
                self.dropped += 1
            self._cond.notify_all()

    def wait(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout)

    def close(self, timeout: float = 10.0) -> None:
        self.wait(timeout)
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout)
        if self._ct is not None:
            self._ct.close()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._queue) or self._stop)
                if self._stop and not self._queue:
                    return
                batch, self._queue = list(self._queue), {}
                self._busy = True
            try:
                self._flush(batch)
            except Exception:  # the thread must survive anything; the drop is already in place
                log.exception("conntrack flush failed")
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _flush(self, batch: list[Network]) -> None:
        if self._ct is None and not self._ct_failed:
            try:
                self._ct = Conntrack(self.netns)
            except OSError as exc:
                log.info("ctnetlink unavailable (%s); using the conntrack tool", exc)
                self._ct_failed = True
        if self._ct is not None:
            try:
                self.flushed += self._ct.flush(batch)
                return
            except OSError as exc:
                log.warning("ctnetlink flush failed (%s); using the conntrack tool", exc)
                self._ct.close()
                self._ct, self._ct_failed = None, True
        flush_conntrack(batch, self.netns)
