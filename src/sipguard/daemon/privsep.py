"""Privilege separation: the enforcer (keeps CAP_NET_ADMIN, owns the firewall) serves typed
requests from the parsing process (no capabilities) over a socketpair.

    enforcer (parent, started by systemd)            parser (child: `sipguard run --privsep-fd N`)
    EnforcerServer.serve(sock) <-- ban/unban/... --   FirewallClient (what daemon.Enforcer calls)

The server is one thread answering one request at a time: the parser's Enforcer already batches
decisions on its own I/O thread, so a request is a whole batch. Every request that is malformed,
oversized, of an unknown op, or asks to ban a protected network is refused with a reason and
counted; the counters are in `sipguard status` under "enforcer".
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from ipaddress import ip_network
from typing import Any

from sipguard.actions.base import Firewall, FirewallError, ReconcileResult, timeouts
from sipguard.core import Action, Decision, Network
from sipguard.daemon import channel
from sipguard.daemon.logs import kv
from sipguard.policy.blocklist import prefix_text, subtract
from sipguard.policy.guard import (
    MAX_TIMEOUT,
    Ban,
    BanGuard,
    Refused,
    Request,
    check_ban,
    parse_request,
)

log = logging.getLogger("sipguard.enforcer")
OWN_REFRESH = 10.0  # seconds between re-reads of this host's addresses (DHCP, new interfaces)


class EnforcerServer:
    def __init__(
        self,
        firewall: Firewall,
        guard: BanGuard,
        own: Callable[[], Sequence[Network]] = tuple,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.firewall = firewall
        self.guard = guard
        self.counts: Counter[str] = Counter()
        self._own = own
        self._clock = clock
        self._own_at = -OWN_REFRESH

    # ---- transport ----------------------------------------------------------------------
    def serve(self, sock: socket.socket) -> None:
        """Answer requests until the parser closes its end (or dies)."""
        while True:
            try:
                frame = channel.receive(sock, channel.MAX_REQUEST)
            except channel.Oversized as exc:
                self.counts["requests"] += 1
                channel.send(sock, self._refused(Refused("oversized", str(exc))))
                continue
            except (EOFError, OSError) as exc:
                kv(log, logging.WARNING, "channel to the parser broke", error=exc)
                return
            if frame is None:
                return
            channel.send(sock, self.handle(frame))

    def handle(self, frame: bytes) -> dict[str, Any]:
        self.counts["requests"] += 1
        try:
            try:
                value = channel.decode(frame)
            except (UnicodeDecodeError, ValueError, RecursionError) as exc:
                raise Refused("malformed", f"not JSON: {str(exc)[:120]}") from None
            reply = self._dispatch(parse_request(value))
        except Refused as exc:
            return self._refused(exc)
        except FirewallError as exc:  # the kernel refused: the parser's Enforcer retries
            self.counts["firewall-errors"] += 1
            return {"ok": False, "counter": "firewall-errors", "error": str(exc)[:2000]}
        self.counts["ok"] += 1
        return {"ok": True, **reply}

    def _refused(self, exc: Refused) -> dict[str, Any]:
        self.counts[exc.counter] += 1
        kv(log, logging.WARNING, "request refused", counter=exc.counter, reason=exc.reason)
        return {"ok": False, "counter": exc.counter, "error": exc.reason}

    # ---- requests -----------------------------------------------------------------------
    def _dispatch(self, req: Request) -> dict[str, Any]:
        now = self._clock()
        if req.op == "ban":
            ok, refused = self._screen(req.bans)
            sent = self.firewall.add(_decisions(ok, now), now)
            return {"applied": [str(n) for n in sent], "refused": refused}
        if req.op == "reconcile":
            ok, refused = self._screen(req.bans)
            r = self.firewall.reconcile(_decisions(ok, now), now)
            return {
                "added": [str(n) for n in r.added],
                "removed": [str(n) for n in r.removed],
                "kept": [str(n) for n in r.kept],
                "refused": refused,
            }
        if req.op == "unban":
            self.firewall.remove(list(req.networks))
            return {"removed": [str(n) for n in req.networks]}
        if req.op == "allow":
            added, removed = self.guard.set_runtime(req.networks)
            return {"added": added, "removed": removed}
        if req.op == "list":
            return {"set": {str(n): t for n, t in self.firewall.list().items()}}
        if req.op == "feeds":
            self.firewall.set_feeds(list(req.names))
            return {}
        if req.op == "feed":
            # the parser already took its allow-list out; this guard's own view (configured
            # entries, this host, loopback...) narrows the list once more, never widens it
            self.guard.set_own(self._own())
            entries = subtract(req.entries, self.guard.protected())
            texts = [prefix_text(p) for p in entries]
            return {"loaded": self.firewall.load_feed(req.names[0], texts)}
        if req.op == "feed_list":
            return {"set": [str(n) for n in self.firewall.list_feed(req.names[0])]}
        return {"status": self.status()}

    def _screen(self, bans: Sequence[Ban]) -> tuple[list[Ban], list[dict[str, str]]]:
        """Split into the bans to apply and the refused ones (each counted, with its reason)."""
        now = time.monotonic()
        if now - self._own_at >= OWN_REFRESH:
            self.guard.set_own(self._own())
            self._own_at = now
        ok: list[Ban] = []
        refused: list[dict[str, str]] = []
        for b in bans:
            why = self.guard.refuse(b.network)
            if why is None:
                ok.append(b)
                continue
            self.counts[f"refused-{why}"] += 1
            refused.append({"network": str(b.network), "reason": why})
            kv(log, logging.WARNING, "ban refused", addr=b.network, reason=why)
        return ok, refused

    def status(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "backend": self.firewall.name,
            "allow_entries": self.guard.allowed_count(),
            "own_addresses": len(self.guard.own),
            "counts": dict(sorted(self.counts.items())),
        }


def _decisions(bans: Sequence[Ban], now: float) -> list[Decision]:
    """Bans as the decisions a backend takes (it turns them back into the same timeouts)."""
    return [
        Decision(
            network=b.network,
            action=Action.BAN,
            rule="privsep",
            reason="",
            start=now,
            expires=None if b.timeout is None else now + b.timeout,
        )
        for b in bans
    ]


class FirewallClient:
    """The parser's stand-in for a Firewall: the methods daemon.Enforcer calls, each one request
    to the enforcer. Called from the Enforcer's one I/O thread, and `status` from the loop: a
    lock keeps request and reply together."""

    name = "privsep"

    def __init__(self, sock: socket.socket, on_lost: Callable[[], None] | None = None) -> None:
        self._sock = sock
        self._lock = threading.Lock()
        self._on_lost = on_lost or _terminate_self
        self.last_refused: list[dict[str, str]] = []

    def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            try:
                channel.send(self._sock, request)
                data = channel.receive(self._sock, channel.MAX_REPLY)
                if data is None:
                    raise EOFError("the enforcer closed the channel")
                reply = channel.decode(data)
            except (OSError, EOFError, ValueError, channel.Oversized) as exc:
                kv(log, logging.CRITICAL, "enforcer process lost, stopping", error=exc)
                self._on_lost()
                raise FirewallError(f"enforcer process lost: {exc}") from None
        if not isinstance(reply, dict) or not reply.get("ok"):
            err = reply.get("error") if isinstance(reply, dict) else reply
            raise FirewallError(f"enforcer refused {request.get('op')}: {err}")
        return reply

    def init(self) -> None:
        self._call({"op": "status"})  # the enforcer created the table before starting us

    def add(self, decisions: Sequence[Decision], now: float) -> list[Network]:
        bans = _wire(decisions, now)
        if not bans:
            return []
        reply = self._call({"op": "ban", "bans": [entry for _, entry in bans.values()]})
        self._note_refused(reply)
        # the reply names what we sent, as we spelled it: no need to parse addresses again
        return [bans[n][0] if n in bans else ip_network(n) for n in reply["applied"]]

    def remove(self, networks: Sequence[Network]) -> None:
        if networks:
            self._call({"op": "unban", "networks": [str(n) for n in dict.fromkeys(networks)]})

    def reconcile(self, desired: Sequence[Decision], now: float) -> ReconcileResult:
        bans = [entry for _, entry in _wire(desired, now).values()]
        reply = self._call({"op": "reconcile", "bans": bans})
        self._note_refused(reply)
        return ReconcileResult(
            added=tuple(ip_network(n) for n in reply["added"]),
            removed=tuple(ip_network(n) for n in reply["removed"]),
            kept=tuple(ip_network(n) for n in reply["kept"]),
        )

    def allow(self, networks: Sequence[Network]) -> None:
        """Share the allow-list (the enforcer keeps the configured part whatever we send)."""
        self._call({"op": "allow", "networks": [str(n) for n in networks]})

    def list(self) -> dict[Network, float | None]:
        reply = self._call({"op": "list"})
        return {ip_network(n): t for n, t in reply["set"].items()}

    def set_feeds(self, names: Sequence[str]) -> None:
        self._call({"op": "feeds", "names": list(names)})

    def load_feed(self, name: str, entries: Sequence[str]) -> int:
        reply = self._call({"op": "feed", "name": name, "networks": list(entries)})
        return int(reply["loaded"])

    def list_feed(self, name: str) -> set[Network]:
        return {ip_network(n) for n in self._call({"op": "feed_list", "name": name})["set"]}

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = self._call({"op": "status"})["status"]
        return status

    def close(self) -> None:
        """The enforcer sees EOF, finishes its conntrack flushes and exits; bans stay."""
        self._sock.close()

    def _note_refused(self, reply: dict[str, Any]) -> None:
        self.last_refused = list(reply.get("refused", []))


def _wire(decisions: Sequence[Decision], now: float) -> dict[str, tuple[Network, dict[str, Any]]]:
    """Bans as the enforcer takes them. An entry it would refuse as malformed (a /7 typed into
    `sipguard ban`) is left out here, so it does not make the whole batch fail and retry."""
    out: dict[str, tuple[Network, dict[str, Any]]] = {}
    for n, t in timeouts(decisions, now).items():
        t = None if t is None else min(t, MAX_TIMEOUT)
        try:
            check_ban(n, t)
        except Refused as exc:
            kv(log, logging.WARNING, "ban not sent to the enforcer", addr=n, reason=exc.reason)
            continue
        text = str(n)
        out[text] = (n, {"network": text, "family": n.version, "timeout": t})
    return out


def _terminate_self() -> None:
    """The enforcer died: stop cleanly (systemd restarts the pair). SIGTERM runs the daemon's
    own shutdown, which saves offsets and offences."""
    os.kill(os.getpid(), signal.SIGTERM)
