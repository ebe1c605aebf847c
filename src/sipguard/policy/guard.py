"""What the enforcer process accepts from the parsing process: typed requests and the ban guard.

Pure: a decoded JSON value in, a typed request or a `Refused` out; a network in, a refusal reason
or None out. The parsing process reads attacker-controlled text, so everything it sends is treated
as hostile too: unknown fields, wrong types, /0 networks, absurd timeouts and too many entries are
refused as a whole; a well-formed ban of a protected network is refused entry by entry.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Literal

from sipguard.core import Network
from sipguard.policy.blocklist import Prefix, parse_prefix

# The same bounds a rule may ask for (detect/spec.py: ipv4_prefix 8-32, ipv6_prefix 16-128):
# anything wider is not a source of attack but most of the Internet.
MIN_PREFIX = {4: 8, 6: 16}
MIN_TIMEOUT = 1  # seconds; the kernel rounds 0 to "no timeout", which would be permanent
MAX_TIMEOUT = 10 * 366 * 86400  # ten years: longer is "permanent" (null), not a number
MAX_ENTRIES = 200_000  # per request: a reconcile of the largest store the daemon keeps
MAX_TEXT = 64  # characters of one network ("ffff:...:ffff/128" is 43)

# Never banned whatever is asked: the kernel would cut this host off from itself or its link.
ALWAYS_REFUSED: tuple[tuple[Network, str], ...] = (
    (ip_network("127.0.0.0/8"), "loopback"),
    (ip_network("::1/128"), "loopback"),
    (ip_network("::ffff:127.0.0.0/104"), "loopback"),
    (ip_network("169.254.0.0/16"), "link-local"),
    (ip_network("fe80::/10"), "link-local"),
    (ip_network("0.0.0.0/8"), "unspecified"),
    (ip_network("::/128"), "unspecified"),
    (ip_network("224.0.0.0/4"), "multicast"),
    (ip_network("ff00::/8"), "multicast"),
)

Op = Literal["ban", "unban", "reconcile", "allow", "status", "list", "feeds", "feed", "feed_list"]
OPS: tuple[Op, ...] = (
    *("ban", "unban", "reconcile", "allow", "status", "list"),
    *("feeds", "feed", "feed_list"),  # blocklist feeds: configure the sets, load one, list one
)
FEED_NAME = re.compile(r"[a-z][a-z0-9_]{0,14}")  # sipguard.feeds.config.NAME
MAX_FEEDS = 32


class Refused(Exception):
    """A request refused as a whole; `counter` names the status counter it is counted under."""

    def __init__(self, counter: str, reason: str) -> None:
        super().__init__(reason)
        self.counter = counter
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Ban:
    network: Network
    timeout: int | None  # whole seconds; None = permanent


@dataclass(frozen=True, slots=True)
class Request:
    op: Op
    bans: tuple[Ban, ...] = ()  # ban, reconcile
    networks: tuple[Network, ...] = ()  # unban, allow, feed
    names: tuple[str, ...] = ()  # feeds; feed and feed_list: one name
    entries: tuple[Prefix, ...] = ()  # feed


_FIELDS: dict[str, frozenset[str]] = {
    "ban": frozenset({"op", "bans"}),
    "reconcile": frozenset({"op", "bans"}),
    "unban": frozenset({"op", "networks"}),
    "allow": frozenset({"op", "networks"}),
    "status": frozenset({"op"}),
    "list": frozenset({"op"}),
    "feeds": frozenset({"op", "names"}),
    "feed": frozenset({"op", "name", "networks"}),
    "feed_list": frozenset({"op", "name"}),
}


def parse_request(value: object) -> Request:
    """A decoded JSON value -> Request; Refused("malformed" | "unknown-op" | "bad-network" |
    "bad-timeout" | "too-many", reason) for anything else."""
    if not isinstance(value, dict):
        raise Refused("malformed", f"a request is a JSON object, not {type(value).__name__}")
    op = value.get("op")
    if not isinstance(op, str):
        raise Refused("malformed", "no 'op' string")
    known = next((o for o in OPS if o == op), None)  # the Literal, for the type checker
    if known is None:
        raise Refused("unknown-op", f"unknown op {op[:40]!r} (known: {', '.join(OPS)})")
    extra = sorted(str(k)[:40] for k in set(value) - _FIELDS[known])
    if extra:
        raise Refused("malformed", f"{known}: unknown fields {', '.join(extra)}")
    if known in ("ban", "reconcile"):
        return Request(known, bans=tuple(parse_ban(x) for x in _items(value, "bans")))
    if known == "unban":
        return Request(known, networks=tuple(_network(x) for x in _items(value, "networks")))
    if known == "allow":  # a wide allow entry only protects more: no prefix bound
        nets = tuple(_network(x, bounded=False) for x in _items(value, "networks"))
        return Request(known, networks=nets)
    if known == "feeds":
        names = _items(value, "names")
        if len(names) > MAX_FEEDS:
            raise Refused("too-many", f"{len(names)} feeds (at most {MAX_FEEDS})")
        return Request(known, names=tuple(_feed_name(x) for x in names))
    if known == "feed":
        entries = tuple(_prefix(x) for x in _items(value, "networks"))
        return Request(known, entries=entries, names=(_feed_name(value.get("name")),))
    if known == "feed_list":
        return Request(known, names=(_feed_name(value.get("name")),))
    return Request(known)


def _prefix(value: object) -> Prefix:
    """A feed entry: like _network, on integers (a feed may send 100,000 at once)."""
    p = parse_prefix(value) if isinstance(value, str) and len(value) <= MAX_TEXT else None
    if p is None:
        raise Refused("bad-network", f"not an address or network: {_show(value)}")
    if p[2] < MIN_PREFIX[p[0]]:
        raise Refused("bad-network", f"{value}: prefix shorter than /{MIN_PREFIX[p[0]]}")
    return p


def _feed_name(value: object) -> str:
    if not isinstance(value, str) or not FEED_NAME.fullmatch(value):
        raise Refused("malformed", f"not a feed name: {_show(value)}")
    return value


def _items(value: Mapping[str, object], key: str) -> list[object]:
    items = value.get(key)
    if not isinstance(items, list):
        raise Refused("malformed", f"'{key}' must be a list")
    if len(items) > MAX_ENTRIES:
        raise Refused("too-many", f"{len(items)} entries (at most {MAX_ENTRIES})")
    return items


def _network(value: object, bounded: bool = True) -> Network:
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise Refused("bad-network", f"a network is a short string, not {_show(value)}")
    try:
        net = ip_network(value, strict=True)
    except ValueError:
        why = "not a network (address/prefix, host bits zero)"
        raise Refused("bad-network", f"{why}: {_show(value)}") from None
    if bounded:
        _check_prefix(net)
    return net


def _check_prefix(net: Network) -> None:
    if net.prefixlen < MIN_PREFIX[net.version]:
        raise Refused(
            "bad-network", f"{net}: prefix shorter than /{MIN_PREFIX[net.version]} is refused"
        )


def check_ban(net: Network, timeout: int | None) -> None:
    """What parse_ban checks of an already typed ban (the parsing process, before sending)."""
    _check_prefix(net)
    _timeout(timeout)


def parse_ban(value: object) -> Ban:
    """One {network, family, timeout} entry; Refused as parse_request. The parsing process
    checks its own entries the same way (check_ban), so one bad entry never sinks a batch."""
    # all three fields, always: a missing timeout must not quietly mean "permanent"
    if not isinstance(value, dict) or set(value) != {"network", "family", "timeout"}:
        raise Refused("malformed", f"a ban is {{network, family, timeout}}, not {_show(value)}")
    net = _network(value.get("network"))
    family = value.get("family")
    if family not in (4, 6) or isinstance(family, bool) or family != net.version:
        raise Refused("bad-network", f"{net}: family {_show(family)} does not match")
    return Ban(net, _timeout(value.get("timeout")))


def _timeout(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Refused("bad-timeout", f"a timeout is whole seconds or null, not {_show(value)}")
    if isinstance(value, float) and (not math.isfinite(value) or value != int(value)):
        raise Refused("bad-timeout", f"a timeout is whole seconds, not {_show(value)}")
    if not MIN_TIMEOUT <= value <= MAX_TIMEOUT:
        bounds = f"{MIN_TIMEOUT}-{MAX_TIMEOUT} s"
        raise Refused("bad-timeout", f"timeout {_show(value)} outside {bounds}")
    return int(value)


def _show(value: object) -> str:
    return repr(value)[:60]


Span = tuple[int, int, int, str]  # version, first address, last address, reason


def _span(net: Network, why: str) -> Span:
    return (net.version, int(net.network_address), int(net.broadcast_address), why)


@dataclass
class BanGuard:
    """The networks the enforcer refuses to ban: the configured allow-list (read by the enforcer
    itself, fixed), the parser's runtime entries, this host's own addresses, and
    `ALWAYS_REFUSED`. Overlap counts: a /24 holding an allow-listed address is refused.

    Kept as integer spans: ipaddress's `overlaps` cost 140 us a ban in a 1,000-ban batch,
    comparing two integers costs well under one."""

    configured: tuple[Network, ...] = ()
    own: tuple[Network, ...] = ()
    runtime: set[Network] = field(default_factory=set)
    _spans: list[Span] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rebuild()

    def _rebuild(self) -> None:
        allowed = {*self.configured, *self.runtime}
        self._spans = [
            *(_span(n, why) for n, why in ALWAYS_REFUSED),
            *(_span(n, "own-address") for n in self.own),
            *(_span(n, "allow-listed") for n in sorted(allowed, key=_key)),
        ]

    def set_runtime(self, networks: Iterable[Network]) -> tuple[int, int]:
        """The parser's allow-list (its runtime entries come and go with `sipguard allow` and
        `allow --remove`); the configured entries, read here from the file, stay whatever it
        sends. Returns (added, removed) counts."""
        new = set(networks)
        added, removed = len(new - self.runtime), len(self.runtime - new)
        if added or removed:
            self.runtime = new
            self._rebuild()
        return added, removed

    def set_own(self, own: Iterable[Network]) -> None:
        own = tuple(own)
        if own != self.own:
            self.own = own
            self._rebuild()

    def refuse(self, net: Network) -> str | None:
        """Why `net` must not be banned, or None (the first reason in ALWAYS_REFUSED, own,
        allow-listed order)."""
        v, lo, hi = net.version, int(net.network_address), int(net.broadcast_address)
        for version, first, last, why in self._spans:
            if version == v and first <= hi and lo <= last:
                return why
        return None

    def protected(self) -> list[Network]:
        """Every network this guard refuses, for narrowing a blocklist around them."""
        return [*(n for n, _ in ALWAYS_REFUSED), *self.own, *self.configured, *self.runtime]

    def allowed_count(self) -> int:
        return len({*self.configured, *self.runtime})


def _key(n: IPv4Network | IPv6Network) -> tuple[int, int, int]:
    return (n.version, int(n.network_address), n.prefixlen)
