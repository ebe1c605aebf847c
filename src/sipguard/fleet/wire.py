"""The fleet's messages, pure: format, HMAC signing and checking, size limits, replay guard,
quorum counting, and what a fleet message becomes on this node (a Decision, or a reason not to).

On the wire (a Redis stream entry's `m` field, and the value in the active-decisions hash) a
message is `<64 hex HMAC-SHA256>.<compact JSON>`: the signature covers the JSON bytes exactly as
sent, so nothing is re-serialised before checking. Every node of a fleet shares one key; a node
without it can read the stream but cannot forge an entry that others apply.

Replay: each node stamps its messages with a sequence number that only grows (microseconds of
its clock, or the last one plus one), so a copied entry added again is older than what was
already applied from that node and is dropped. A node restarted with a wiped database still
sends larger numbers, because its clock moved on.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from ipaddress import ip_network
from typing import TypeGuard

from sipguard.core import Action, Decision, Network
from sipguard.policy import AllowList

VERSION = 1
MAX_MESSAGE = 2048  # bytes of JSON: a ban with a short evidence summary needs ~350
MAX_TEXT = 300  # rule, reason and evidence summary are cut to this many characters
MIN_KEY = 16  # bytes: a shorter fleet key is refused (it could be guessed)
KINDS = frozenset({"ban", "extend", "unban", "range"})
SHARED_ORIGINS = frozenset({"local", "manual", "manual-force"})  # never fleet:*, blocklist:*
NODE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
PREFIX_RE = re.compile(r"\+?[0-9]{1,15}")
MAX_NODES = 100_000  # nodes the replay guard remembers (more is a flood of invented names)
MAX_QUORUM_KEYS = 200_000  # targets quorum counting tracks at once (oldest evicted first)

# why a message was not applied: the counters `status` shows
DROP_REASONS = (
    "oversized",
    "unsigned",
    "forged",
    "malformed",
    "replayed",
    "stale",
    "future",
    "own",
    "allow_listed",
    "unbanned_locally",
    "expired",
    "quorum_pending",
)


class Rejected(ValueError):
    """A message that must not be applied; `reason` is one of DROP_REASONS."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class FleetMessage:
    kind: str  # ban | extend | unban | range
    node: str  # the node that decided
    seq: int  # grows per node (replay guard)
    sent: float  # POSIX seconds when the node decided
    target: str  # a CIDR for ban/extend/unban, an E.164 digit prefix for range
    rule: str = ""
    reason: str = ""
    level: int = 0
    start: float = 0.0
    expires: float | None = None  # None: permanent
    evidence: str = ""  # a short summary, never the raw events

    def network(self) -> Network:
        return _network(self.target)

    def to_json(self) -> dict[str, object]:
        return {
            "v": VERSION,
            "k": self.kind,
            "n": self.node,
            "q": self.seq,
            "t": self.sent,
            "x": self.target,
            "r": self.rule,
            "why": self.reason,
            "l": self.level,
            "s": self.start,
            "e": self.expires,
            "ev": self.evidence,
        }


# ---- signing ---------------------------------------------------------------------------------
def sign(msg: FleetMessage, key: bytes) -> bytes:
    body = json.dumps(msg.to_json(), separators=(",", ":"), ensure_ascii=True).encode()
    if len(body) > MAX_MESSAGE:
        raise Rejected("oversized", f"{len(body)} bytes")
    mac = hmac.new(key, body, hashlib.sha256).hexdigest().encode()
    return mac + b"." + body


def verify(raw: bytes | str, key: bytes, own: str = "") -> FleetMessage:
    """The message in `raw`, or Rejected. Checks size, then signature, then every field.
    `own`: this node's name; its own messages, read back, are Rejected("own") early."""
    data = raw.encode() if isinstance(raw, str) else raw
    if len(data) > MAX_MESSAGE + 65:
        raise Rejected("oversized", f"{len(data)} bytes")
    mac, dot, body = data.partition(b".")
    if not dot or len(mac) != 64:
        raise Rejected("unsigned")
    want = hmac.new(key, body, hashlib.sha256).hexdigest().encode()
    if not hmac.compare_digest(mac.lower(), want):
        raise Rejected("forged")
    return parse(body, own)


@lru_cache(maxsize=65536)
def _network(target: str) -> Network:
    # a burst repeats each address (parse, then admit): the standard parser costs ~10 us
    return ip_network(target, strict=False)


def parse(body: bytes, own: str = "") -> FleetMessage:
    try:
        obj = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise Rejected("malformed", "not JSON") from None
    if not isinstance(obj, dict) or obj.get("v") != VERSION:
        raise Rejected("malformed", "not a version 1 message")
    kind, node, target = obj.get("k"), obj.get("n"), obj.get("x")
    if kind not in KINDS:
        raise Rejected("malformed", "unknown kind")
    if not isinstance(node, str) or not NODE_RE.fullmatch(node):
        raise Rejected("malformed", "bad node name")
    if own and node == own:
        raise Rejected("own")
    if not isinstance(target, str) or len(target) > 64:
        raise Rejected("malformed", "bad target")
    if kind == "range":
        if not PREFIX_RE.fullmatch(target):
            raise Rejected("malformed", "bad number prefix")
    else:
        try:
            target = str(_network(target))
        except ValueError:
            raise Rejected("malformed", "bad network") from None
    seq, level = obj.get("q"), obj.get("l", 0)
    if not _is_int(seq) or not _is_int(level) or seq < 0 or not 0 <= level < 1000:
        raise Rejected("malformed", "bad seq or level")
    sent, start, expires = obj.get("t"), obj.get("s", 0.0), obj.get("e")
    if not _is_num(sent) or not _is_num(start) or (expires is not None and not _is_num(expires)):
        raise Rejected("malformed", "bad time")
    texts = [obj.get(k, "") for k in ("r", "why", "ev")]
    if not all(isinstance(t, str) for t in texts):
        raise Rejected("malformed", "bad text field")
    return FleetMessage(
        kind=kind,
        node=node,
        seq=seq,
        sent=float(sent),
        target=target,
        rule=texts[0][:MAX_TEXT],
        reason=texts[1][:MAX_TEXT],
        level=level,
        start=float(start),
        expires=None if expires is None else float(expires),
        evidence=texts[2][:MAX_TEXT],
    )


def _is_int(v: object) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: object) -> TypeGuard[int | float]:
    return isinstance(v, int | float) and not isinstance(v, bool) and v == v and abs(v) < 1e11


def check_key(key: bytes) -> bytes:
    """The fleet key as read from its file (surrounding whitespace ignored), or ValueError."""
    key = key.strip()
    if len(key) < MIN_KEY:
        raise ValueError(f"the fleet key must be at least {MIN_KEY} bytes, got {len(key)}")
    return key


# ---- sequence numbers and replay -------------------------------------------------------------
class SeqClock:
    """Sequence numbers that only grow: microseconds of the clock, or the last one plus one."""

    def __init__(self, last: int = 0) -> None:
        self.last = last

    def next(self, now: float) -> int:
        self.last = max(self.last + 1, int(now * 1_000_000))
        return self.last


class ReplayGuard:
    """Per node, the highest sequence applied; messages older than `max_age` or dated more than
    `skew` seconds ahead are refused too (an old ban copied back into the stream)."""

    def __init__(self, max_age: float, skew: float = 300.0) -> None:
        self.max_age, self.skew = max_age, skew
        self.last: dict[str, int] = {}

    def check(self, msg: FleetMessage, now: float) -> None:
        if msg.seq <= self.last.get(msg.node, -1):
            raise Rejected("replayed", f"{msg.node} seq {msg.seq}")
        if msg.sent < now - self.max_age:
            raise Rejected("stale")
        if msg.sent > now + self.skew:
            raise Rejected("future")

    def accept(self, msg: FleetMessage) -> None:
        if msg.node not in self.last and len(self.last) >= MAX_NODES:
            self.last.pop(next(iter(self.last)))
        self.last[msg.node] = max(msg.seq, self.last.get(msg.node, -1))

    def export(self) -> dict[str, int]:
        return dict(self.last)

    def load(self, data: Mapping[str, object]) -> None:
        for node, seq in list(data.items())[:MAX_NODES]:
            if isinstance(node, str) and _is_int(seq):
                self.last[node] = seq


# ---- quorum ----------------------------------------------------------------------------------
class Quorum:
    """Counts the distinct nodes that reported a target within `window` seconds."""

    def __init__(self, k: int, window: float) -> None:
        self.k, self.window = max(1, k), window
        self._seen: dict[str, dict[str, float]] = {}

    def report(self, target: str, node: str, when: float, now: float) -> bool:
        """Record one node's report; True when K distinct nodes reported within the window."""
        if self.k <= 1:
            return True
        nodes = self._seen.pop(target, {})  # re-inserted last: the dict's order is recency
        nodes[node] = max(when, nodes.get(node, when))
        nodes = {n: t for n, t in nodes.items() if t >= now - self.window}
        self._seen[target] = nodes
        while len(self._seen) > MAX_QUORUM_KEYS:
            self._seen.pop(next(iter(self._seen)))
        return len(nodes) >= self.k

    def forget(self, target: str) -> None:
        self._seen.pop(target, None)

    def __len__(self) -> int:
        return len(self._seen)


# ---- local decisions out, fleet decisions in -------------------------------------------------
def from_decision(d: Decision, kind: str, node: str, seq: int, now: float) -> FleetMessage:
    """The message that shares one local decision."""
    summary = f"{len(d.evidence)} events"
    if d.evidence:
        summary += f", last {d.evidence[-1].kind.value}"
    return FleetMessage(
        kind=kind,
        node=node,
        seq=seq,
        sent=now,
        target=str(d.network),
        rule=d.rule[:MAX_TEXT],
        reason=d.reason[:MAX_TEXT],
        level=d.level,
        start=d.start,
        expires=d.expires,
        evidence=summary[:MAX_TEXT],
    )


def admit(
    msg: FleetMessage,
    now: float,
    allow: AllowList,
    unbanned_locally: Mapping[Network, float],
) -> Decision:
    """The Decision a fleet ban becomes here, or Rejected: the local allow-list always wins, a
    local unban made after the remote decision wins here, and the remaining time is honoured
    (the expiry is the deciding node's, not restarted on arrival)."""
    net = msg.network()
    if allow.contains(net):
        raise Rejected("allow_listed", str(net))
    lifted = unbanned_locally.get(net)
    if lifted is not None and lifted >= msg.start:
        raise Rejected("unbanned_locally", str(net))
    if msg.expires is not None and msg.expires <= now:
        raise Rejected("expired", str(net))
    return Decision(
        network=net,
        action=Action.BAN,
        rule=msg.rule or "fleet",
        reason=f"{msg.reason} (from {msg.node}: {msg.evidence})"[:500],
        start=msg.start,
        expires=msg.expires,
        level=msg.level,
        origin=f"fleet:{msg.node}",
    )


def shared(d: Decision) -> bool:
    """Whether this node publishes a decision: its own, never one it got from the fleet or a
    blocklist (no echo)."""
    return d.origin in SHARED_ORIGINS


def latest_per_target(msgs: Iterable[FleetMessage]) -> list[FleetMessage]:
    """A snapshot's messages in sequence order, one per target (the newest)."""
    best: dict[str, FleetMessage] = {}
    for m in msgs:
        old = best.get(m.target)
        if old is None or (m.sent, m.seq) > (old.sent, old.seq):
            best[m.target] = m
    return sorted(best.values(), key=lambda m: (m.node, m.seq))
