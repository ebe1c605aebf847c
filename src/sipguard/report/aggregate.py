"""Per-attacker and per-account aggregates for `sipguard scan`, with every container capped.

The scan never keeps all events: each source (a /32, or the IPv6 /64 the rules group by) gets a
fixed-size summary, so memory grows with the number of attackers, not the number of lines.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network
from operator import attrgetter

from sipguard.core.alerts import Action, Alert, Decision
from sipguard.core.events import ATTACK_KINDS, Event, IPAddress, Kind, Service
from sipguard.detect import format_duration, network_key
from sipguard.detect.sourcekeys import HOST_KEYS, host_key, key_text, network_text

MAX_SOURCES = 200_000
MAX_ACCOUNTS = 100_000
MAX_MINUTES = 200_000
KEEP_ACCOUNTS = 50  # accounts listed per attacker
KEEP_AGENTS = 10
KEEP_ADDRESSES = 20
KEEP_DECISIONS = 10
KEEP_LINES = 2  # example lines per attacker
KEEP_SOURCES = 200  # sources listed per account
COUNT_SOURCES = 1000  # distinct sources counted per account ("1000+" beyond)


def source_key(event: Event, v6_prefix: int = 64) -> str | None:
    """Attackers are grouped the way the shipped rules group sources: /32 and /64."""
    ip = event.ip
    if ip is None:
        return None
    if v6_prefix == 64:
        return host_key(ip)
    return key_text(ip, 32 if ip.version == 4 else v6_prefix)


#: The `addresses` of an IPv4 attacker: never written (only /64 attackers list their addresses),
#: shared so that tens of thousands of IPv4 attackers do not each hold an empty set (216 bytes).
_NO_ADDRESSES: set[str] = set()


#: Attackers' `services`, shared: a handful of combinations among tens of thousands of attackers.
#: They are replaced, never written in place.
_SERVICE_SETS: dict[tuple[str, ...], dict[str, None]] = {}


def _with_service(services: dict[str, None], service: str) -> dict[str, None]:
    key = (*services, service)
    shared = _SERVICE_SETS.get(key)
    if shared is None:
        shared = dict.fromkeys(key)
        if len(_SERVICE_SETS) < 4096:  # services are few; a bound all the same
            _SERVICE_SETS[key] = shared
    return shared


#: Enum values as plain strings, looked up instead of `.value` (an Enum property in Python code).
_KIND_TEXT: dict[Kind, str] = {k: k.value for k in Kind}
_SERVICE_TEXT: dict[Service, str] = {s: s.value for s in Service}
_SUCCESS_KINDS = frozenset({Kind.AUTH_SUCCESS, Kind.AMI_LOGIN_SUCCESS})


#: str(ip) per address object, by identity: an IPv6 address prints in Python code (~10 us), and
#: an attacker's few addresses repeat on every line until KEEP_ADDRESSES distinct ones are seen.
#: An entry holds its address, so its id cannot be reused meanwhile.
_ADDRESS_TEXTS: dict[int, tuple[IPAddress | None, str]] = {}


def _address_text(ip: IPAddress | None) -> str:
    hit = _ADDRESS_TEXTS.get(id(ip))
    if hit is not None and hit[0] is ip:
        return hit[1]
    text = str(ip)
    if len(_ADDRESS_TEXTS) >= 4096:
        _ADDRESS_TEXTS.clear()
    _ADDRESS_TEXTS[id(ip)] = (ip, text)
    return text


@dataclass(slots=True)
class Attacker:
    ip: str  # the address, or the IPv6 /64
    first: float
    last: float
    events: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    accounts: dict[str, int] = field(default_factory=dict)
    user_agents: dict[str, int] = field(default_factory=dict)
    addresses: set[str] = field(default_factory=set)
    services: dict[str, None] = field(default_factory=dict)  # ordered set, light
    successes: int = 0  # auth successes from this source: after failures, a compromise
    decisions: list[Decision] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def add(self, event: Event) -> None:
        time = event.time
        if time < self.first:
            self.first = time
        if time > self.last:
            self.last = time
        kind = event.kind
        if kind in _SUCCESS_KINDS:
            self.successes += 1
            return
        if kind not in ATTACK_KINDS:  # challenges sent are context, not failures
            return
        self.events += 1
        # _count() inlined: every attack event counts its kind (the call measured +3 ms of 45)
        kinds = self.kinds
        kind_text = _KIND_TEXT[kind]
        if kind_text in kinds:
            kinds[kind_text] += 1
        elif len(kinds) < 64:
            kinds[kind_text] = 1
        # counted up to a number of distinct keys (then only those already counted)
        account = event.account
        if account is not None:
            _count(self.accounts, account[:200], KEEP_ACCOUNTS)
        agent = event.user_agent
        if agent:
            _count(self.user_agents, agent[:200], KEEP_AGENTS)
        addresses = self.addresses
        # IPv4 attackers made by ScanReport share the never-written set: skip the string test
        if (
            addresses is not _NO_ADDRESSES
            and len(addresses) < KEEP_ADDRESSES
            and self.ip.endswith("/64")
        ):
            addresses.add(_address_text(event.ip))  # an IPv4 attacker is its own address
        service = _SERVICE_TEXT[event.service]
        if service not in self.services:
            self.services = _with_service(self.services, service)
        if len(self.lines) < KEEP_LINES and event.origin.text:
            where = f"{event.origin.source}:{event.origin.line_no}"
            self.lines.append(f"{where}: {event.origin.text[:200]}")

    @property
    def decision(self) -> Decision | None:
        """The first (strongest evidence of when it started) decision, bans before alerts."""
        for d in self.decisions:
            if d.action in (Action.BAN, Action.SIMULATE, Action.ALLOWED):
                return d
        return self.decisions[0] if self.decisions else None

    def to_dict(self) -> dict[str, object]:
        d = self.decision
        return {
            "ip": self.ip,
            "addresses": sorted(self.addresses) if self.addresses else [self.ip],
            "first_seen": self.first,
            "last_seen": self.last,
            "events": self.events,
            "kinds": dict(sorted(self.kinds.items())),
            "accounts": sorted(self.accounts, key=lambda a: (-self.accounts[a], a)),
            "user_agents": sorted(self.user_agents),
            "services": sorted(self.services),
            "auth_successes": self.successes,
            "decision": None if d is None else decision_dict(d),
            "rules": sorted({x.rule for x in self.decisions}),
            "lines": self.lines,
        }


def shown_action(d: Decision) -> tuple[str, bool]:
    """The action an admin expects to read (a scan's `simulate` is the ban it would have been),
    and whether it was only simulated."""
    if d.action is Action.SIMULATE:
        return Action.BAN.value, True
    return d.action.value, False


def decision_dict(d: Decision) -> dict[str, object]:
    action, simulated = shown_action(d)
    return {
        "action": action,
        "simulated": simulated,
        "network": network_text(d.network),
        "rule": d.rule,
        "reason": d.reason,
        "level": d.level,
        "duration": d.duration,
        "duration_text": format_duration(d.duration),
        "time": d.start,
    }


def _count(counts: dict[str, int], key: str, most: int) -> None:
    """One more `key`; a key not yet counted is counted only while fewer than `most` are."""
    if key in counts:
        counts[key] += 1
    elif len(counts) < most:
        counts[key] = 1


def _first_attack(key: str, event: Event, kind_text: str) -> Attacker:
    """`Attacker(key, t, t, addresses=...)` after `.add(event)` for an attack event, built in
    one go: with tens of thousands of sources, most attackers are made and seen once."""
    time = event.time
    account = event.account
    agent = event.user_agent
    origin = event.origin
    text = origin.text
    return Attacker(
        key,
        time,
        time,
        1,
        {kind_text: 1},
        {} if account is None else {account[:200]: 1},
        {agent[:200]: 1} if agent else {},
        {_address_text(event.ip)} if key.endswith("/64") else _NO_ADDRESSES,
        _with_service({}, _SERVICE_TEXT[event.service]),
        0,
        [],
        [f"{origin.source}:{origin.line_no}: {text[:200]}"] if text else [],
    )


@dataclass
class AccountUnderAttack:
    account: str
    first: float
    last: float
    events: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    sources: set[str] = field(default_factory=set)
    alerts: list[Alert] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "account": self.account,
            "first_seen": self.first,
            "last_seen": self.last,
            "events": self.events,
            "kinds": dict(sorted(self.kinds.items())),
            "distinct_sources": len(self.sources),
            "distinct_sources_capped": len(self.sources) >= COUNT_SOURCES,
            "sources": sorted(self.sources)[:KEEP_SOURCES],
            "alerts": [{"rule": a.rule, "reason": a.reason, "time": a.time} for a in self.alerts],
        }


@dataclass
class ScanReport:
    sources: dict[str, Attacker] = field(default_factory=dict)
    accounts: dict[str, AccountUnderAttack] = field(default_factory=dict)
    timeline: dict[int, dict[str, int]] = field(default_factory=dict)
    alerts: int = 0
    account_alerts: int = 0
    unattributed: int = 0  # attack events with no source address (counted, never bannable)
    dropped_sources: int = 0
    dropped_accounts: int = 0
    stats: dict[str, object] = field(default_factory=dict)

    def add_event(self, event: Event) -> None:
        kind = event.kind
        attack = kind in ATTACK_KINDS  # event.is_attack
        ip = event.ip
        key: str | None = None
        if ip is not None:
            # source_key(event): host_key's lookup by the address object's identity, inlined
            hit = HOST_KEYS.get(id(ip))
            key = hit[1] if hit is not None and hit[0] is ip else host_key(ip)
        if key is None:
            if attack:
                self.unattributed += 1
        else:
            agg = self.sources.get(key)
            if agg is not None:
                agg.add(event)
            elif attack:
                if len(self.sources) >= MAX_SOURCES:
                    self.dropped_sources += 1
                else:
                    self.sources[key] = _first_attack(key, event, _KIND_TEXT[kind])
        if not attack:
            return
        kind_text = _KIND_TEXT[kind]
        account = event.account
        if account is not None:
            acc = self.accounts.get(account)
            if acc is None:
                if len(self.accounts) >= MAX_ACCOUNTS:
                    self.dropped_accounts += 1
                else:
                    acc = self.accounts[account] = AccountUnderAttack(
                        account[:200], event.time, event.time
                    )
            if acc is not None:
                time = event.time
                if time < acc.first:
                    acc.first = time
                if time > acc.last:
                    acc.last = time
                acc.events += 1
                counts = acc.kinds  # _count() inlined, as in Attacker.add
                if kind_text in counts:
                    counts[kind_text] += 1
                elif len(counts) < 64:
                    counts[kind_text] = 1
                if key is not None and len(acc.sources) < COUNT_SOURCES:
                    acc.sources.add(key)
        minute = int(event.time // 60) * 60
        per_minute = self.timeline.get(minute)
        if per_minute is None and len(self.timeline) < MAX_MINUTES:
            per_minute = self.timeline[minute] = {}
        if per_minute is not None:
            per_minute[kind_text] = per_minute.get(kind_text, 0) + 1

    def add_alert(self, alert: Alert, decision: Decision | None) -> None:
        self.alerts += 1
        if alert.network is None:
            self.account_alerts += 1
            account = alert.key.removeprefix("account:")
            acc = self.accounts.get(account)
            if acc is not None and len(acc.alerts) < KEEP_DECISIONS:
                acc.alerts.append(alert)
            return
        if decision is None:
            return
        for key in self._keys_for(alert.network, alert):
            agg = self.sources.get(key)
            if agg is not None and len(agg.decisions) < KEEP_DECISIONS:
                agg.decisions.append(decision)

    def _keys_for(self, network: IPv4Network | IPv6Network, alert: Alert) -> set[str]:
        """Attacker keys a decision applies to: its own, or those of its evidence."""
        keys = {source_key(e) for e in alert.events}
        keys.add(network_key(network))
        return {k for k in keys if k is not None}

    def attackers(self) -> list[Attacker]:
        """Sources that got a decision, most active first."""
        return _ranked([a for a in self.sources.values() if a.decisions])

    def below_threshold(self) -> list[Attacker]:
        return _ranked([a for a in self.sources.values() if not a.decisions])

    def accounts_under_attack(self) -> list[AccountUnderAttack]:
        return sorted(self.accounts.values(), key=lambda a: (-len(a.sources), -a.events))

    @property
    def attack_found(self) -> bool:
        return self.alerts > 0

    def to_dict(self) -> dict[str, object]:
        return {k: v if not isinstance(v, Iterator) else list(v) for k, v in self.to_dict_parts()}

    def to_dict_parts(self) -> list[tuple[str, object]]:
        """`to_dict()` as (key, value) pairs whose long lists are iterators, so a renderer can
        write them one item at a time instead of holding the whole report as dicts."""
        return [
            (k, v if not isinstance(v, Iterator) else (_as_dict(x) for x in v))
            for k, v in self.to_parts()
        ]

    def to_parts(self) -> list[tuple[str, object]]:
        """`to_dict_parts()` with the attackers and accounts as the objects themselves (their
        `to_dict()` is the item), for a renderer that writes them without the dicts."""
        return [
            ("attack_found", self.attack_found),
            ("attackers", iter(self.attackers())),
            ("below_threshold", iter(self.below_threshold()[:1000])),
            ("accounts", iter(self.accounts_under_attack())),
            (
                "timeline",
                (
                    {"minute": m, "total": sum(c.values()), "kinds": dict(sorted(c.items()))}
                    for m, c in sorted(self.timeline.items())
                ),
            ),
            (
                "stats",
                {
                    **self.stats,
                    "alerts": self.alerts,
                    "account_alerts": self.account_alerts,
                    "unattributed_events": self.unattributed,
                    "dropped_sources": self.dropped_sources,
                    "dropped_accounts": self.dropped_accounts,
                },
            ),
        ]


_BY_IP = attrgetter("ip")
_BY_EVENTS = attrgetter("events")


def _ranked(found: list[Attacker]) -> list[Attacker]:
    """Most events first, then by key: the order of key=(-events, ip), by two stable sorts on
    C-level keys (no tuple per attacker; half the time with tens of thousands)."""
    found.sort(key=_BY_IP)
    found.sort(key=_BY_EVENTS, reverse=True)  # reverse keeps equal ones in ip order
    return found


def _as_dict(item: object) -> object:
    return item.to_dict() if isinstance(item, Attacker | AccountUnderAttack) else item
