"""The rule engine: events in, alerts out. Pure; time is passed in.

`Engine(rules).feed(event, now)` routes the event to the rules that look at its kind, finds the
grouping key, and counts it in that key's bucket. State per key lives in one LRU table per rule:
it expires when idle (`expire(now)`), and a hard cap on keys evicts the least recently used
(counted in `stats.evicted`), so memory stays bounded under a distributed flood.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network

from sipguard.core.alerts import Alert, Network
from sipguard.core.events import Event, IPAddress, Kind
from sipguard.detect.accounts import AccountWatch
from sipguard.detect.buckets import BUCKET_TYPES, MAX_ACCOUNTS, Bucket
from sipguard.detect.durations import format_duration
from sipguard.detect.matchers import field_getter
from sipguard.detect.sourcekeys import (
    HOST_KEYS,
    KeyCache,
    cached_key,
    network_key,
    remember_network,
    source_key,
)
from sipguard.detect.spec import BucketKind, GroupBy, RuleSpec

DEFAULT_MAX_KEYS = 100_000  # per rule

_NOUNS: dict[Kind, str] = {
    Kind.WRONG_PASSWORD: "wrong passwords",
    Kind.UNKNOWN_ACCOUNT: "unknown accounts",
    Kind.AUTH_NAME_MISMATCH: "auth name mismatches",
    Kind.ACL_DENIED: "ACL denials",
    Kind.CALL_REJECTED: "rejected calls",
    Kind.REQUEST_NOT_ALLOWED: "requests not allowed",
    Kind.MALFORMED_REQUEST: "malformed requests",
    Kind.SCANNER_PROBE: "scanner probes",
    Kind.CHALLENGE_UNANSWERED: "unanswered challenges",
    Kind.AMI_LOGIN_FAILED: "AMI login failures",
    Kind.LIMIT: "limit events",
    Kind.LOG_TAMPERING: "tampered log lines",
    Kind.SENSOR_DROP: "sensor drops",
    Kind.WEB_LOGIN_FAILED: "failed dashboard logins",
}


@dataclass(slots=True)
class EngineStats:
    events: int = 0  # events fed
    matched: int = 0  # (event, rule) pairs that passed a filter
    no_key: int = 0  # matched but had no grouping key (ip=None for a source rule, ...)
    alerts: int = 0
    evicted: int = 0  # keys dropped by the LRU cap
    expired: int = 0  # keys dropped by expire()

    def as_dict(self) -> dict[str, int]:
        return {
            "events": self.events,
            "matched": self.matched,
            "no_key": self.no_key,
            "alerts": self.alerts,
            "evicted": self.evicted,
            "expired": self.expired,
        }


def source_network(rule: RuleSpec, event: Event) -> Network | None:
    """The network a source-keyed rule groups this event under (None without an address)."""
    ip = event.ip
    if ip is None:
        return None
    prefix = rule.ipv4_prefix if ip.version == 4 else rule.ipv6_prefix
    if ip.version == 4:
        return IPv4Network((int(ip), prefix), strict=False)
    return IPv6Network((int(ip), prefix), strict=False)


#: What feed() needs of one rule, looked up once: the rule, its matchers' tests, its key table,
#: how it groups, the getter of the field it counts distinct values of, the bucket type, a
#: small number that identifies its (IPv4, IPv6) prefix pair in the source-key cache, and the
#: window when an alerted episode can be followed without the bucket (not leaky), else None,
#: and whether a key's first event is kept as a `First` record (see below).
_Plan = tuple[
    RuleSpec,
    tuple[Callable[[Event], bool], ...],
    "OrderedDict[str, Bucket | First]",
    GroupBy,
    "Callable[[Event], str | None] | None",
    type[Bucket],
    int,
    "float | None",
    bool,
]
#: A key's first event, its time and its counted value, kept instead of a Bucket until the key
#: sees a second event. A distributed flood makes a key per source and rule, most of which see
#: one event and expire: a tuple is a fifth of a bucket's memory and creation time. Only for
#: rules that cannot alert on one event (threshold 2 or more, not a trigger), so a record never
#: needs an alert's reason; the second event builds the bucket as the first would have left it.
First = tuple[Event, float, "str | None"]
# Enum members as module constants: `GroupBy.SOURCE` is a class attribute lookup through the
# enum machinery (~0.1 us), in a loop that runs once per (event, rule)
_BY_SOURCE = GroupBy.SOURCE
_BY_ACCOUNT = GroupBy.ACCOUNT
_BY_ACCOUNT_SOURCES = GroupBy.ACCOUNT_DISTINCT_SOURCES
_AUTH_SUCCESS = Kind.AUTH_SUCCESS


class Engine:
    def __init__(self, rules: Iterable[RuleSpec], max_keys: int = DEFAULT_MAX_KEYS) -> None:
        self.rules: tuple[RuleSpec, ...] = tuple(r for r in rules if r.enabled)
        self.max_keys = max_keys
        self.stats = EngineStats()
        self._tables: dict[str, OrderedDict[str, Bucket | First]] = {
            r.id: OrderedDict() for r in self.rules
        }
        self._expiry = tuple((r, self._tables[r.id]) for r in self.rules)
        self._by_kind: dict[Kind, list[RuleSpec]] = {}
        for rule in self.rules:
            for kind in rule.kinds:
                self._by_kind.setdefault(kind, []).append(rule)
        # named conditions on remembered state (detect/accounts.py): successes are tracked only
        # when a rule asks about them, alerts of the rules a response rule names are recorded
        self.accounts = AccountWatch()
        self._track_auth = any(r.unauthenticated or r.authenticated for r in self.rules)
        self._watched = frozenset(
            r.account_alerted_by for r in self.rules if r.account_alerted_by is not None
        )
        pairs: dict[tuple[int, int], int] = {}
        self._plans: dict[Kind, tuple[_Plan, ...]] = {
            kind: tuple(
                (
                    r,
                    self._tests(r),
                    self._tables[r.id],
                    r.group_by,
                    field_getter(r.distinct_field) if r.distinct_field else None,
                    BUCKET_TYPES[r.bucket],
                    pairs.setdefault((r.ipv4_prefix, r.ipv6_prefix), len(pairs)),
                    None if r.bucket is BucketKind.LEAKY else r.window,
                    r.bucket is not BucketKind.TRIGGER and r.threshold >= 2,
                )
                for r in kind_rules
            )
            for kind, kind_rules in self._by_kind.items()
        }
        self._prefixes = {n: pair for pair, n in pairs.items()}
        # The source key per address object, one cache per prefix pair, looked up by the
        # object's identity (sourcekeys); /32 and /64 share the scan report's cache.
        self._key_caches: dict[int, KeyCache] = {
            n: HOST_KEYS if pair == (32, 64) else {} for pair, n in pairs.items()
        }

    def _tests(self, rule: RuleSpec) -> tuple[Callable[[Event], bool], ...]:
        """The rule's matchers' tests, then its named conditions on remembered state."""
        return (*(m.test for m in rule.matchers), *self.accounts.tests(rule))

    def _source(self, ip: IPAddress, pair: int) -> str:
        v4, v6 = self._prefixes[pair]
        return cached_key(self._key_caches[pair], ip, v4, v6)

    def feed(self, event: Event, now: float) -> list[Alert]:
        stats = self.stats
        stats.events += 1
        kind = event.kind
        if kind is _AUTH_SUCCESS and self._track_auth:
            self.accounts.authenticated(event, now)
        plans = self._plans.get(kind)
        if plans is None:
            return []
        self.accounts.now = now
        alerts: list[Alert] = []
        watch: list[tuple[RuleSpec, str, Bucket, Alert]] = []
        ip = event.ip
        account = event.account
        key_caches = self._key_caches
        ip_id = id(ip)
        src: str | None = None  # the source key at prefix pair src_pair
        src_pair = -1
        matched = 0  # added to stats once, not per rule
        for rule, tests, table, group, value_of, bucket_type, pair, window, lazy in plans:
            if tests:
                failed = False
                for test in tests:
                    if not test(event):
                        failed = True
                        break
                if failed:
                    continue
            matched += 1
            if ip is not None and pair != src_pair and group is not _BY_ACCOUNT:
                hit = key_caches[pair].get(ip_id)
                src = hit[1] if hit is not None and hit[0] is ip else self._source(ip, pair)
                src_pair = pair  # the next rule with the same prefixes has the same key
            if group is _BY_SOURCE:
                key = src
            elif account is None:
                key = None
            elif group is _BY_ACCOUNT_SOURCES and src is None:
                key = None  # a distributed attack is counted in sources: no address, no source
            else:
                key = f"account:{account}"
            if key is None:
                stats.no_key += 1
                continue
            entry = table.get(key)
            if entry is None:
                if len(table) >= self.max_keys:
                    table.popitem(last=False)
                    stats.evicted += 1
                if lazy:
                    if group is _BY_ACCOUNT_SOURCES:
                        table[key] = (event, now, src)
                    else:
                        table[key] = (event, now, None if value_of is None else value_of(event))
                    continue
                bucket = table[key] = bucket_type(rule, now)
            else:
                table.move_to_end(key)
                if type(entry) is tuple:
                    bucket = table[key] = _from_first(bucket_type, rule, entry)
                else:
                    bucket = entry  # type: ignore[assignment]
            # bucket.add(event, now, value), inlined: this runs once per (event, rule)
            last = bucket.last
            at = last if now < last else now
            if bucket.fired and window is not None and at - last <= window:
                # an alerted episode goes on (not idle): as step() would, only note the time
                bucket.last = at
                bucket.count += 1
                continue
            if group is _BY_ACCOUNT_SOURCES:
                value = src
            else:
                value = None if value_of is None else value_of(event)
            crossed = bucket.step(at, last, value)
            bucket.last = at
            bucket.count += 1
            if bucket.fired:
                # this episode has alerted: the tallies below are only read by the alert's
                # reason and evidence, and the episode's end clears them. Attackers keep going,
                # so most events take this exit.
                continue
            counts = bucket.kinds
            counts[kind] = counts.get(kind, 0) + 1
            if account is not None and len(bucket.accounts) < MAX_ACCOUNTS:
                bucket.accounts.add(account)
            evidence = bucket.evidence
            evidence.append(event)
            if len(evidence) > rule.evidence:
                del evidence[0]
            if crossed:
                bucket.fired = True
                stats.alerts += 1
                network = _network(rule, ip, key) if group is _BY_SOURCE else None
                alert = _alert(rule, key, network, bucket, now)
                alerts.append(alert)
                if rule.id in self._watched and account is not None and network is None:
                    # after this event's rules have run: a response counts what comes after
                    watch.append((rule, account, bucket, alert))
        stats.matched += matched
        for rule, account, bucket, alert in watch:
            sources = bucket.distinct() if rule.group_by is _BY_ACCOUNT_SOURCES else 1
            self.accounts.alerted(rule, account, sources, now, alert.reason)
        return alerts

    def feed_many(self, events: Iterable[Event]) -> list[Alert]:
        """Offline use (scan, samples): each event's own time is `now`."""
        out: list[Alert] = []
        for event in events:
            out.extend(self.feed(event, event.time))
        return out

    def expire(self, now: float) -> int:
        """Drop idle keys. Tables are in last-touch order, so stop at the first live key."""
        dropped = 0
        for rule, table in self._expiry:
            if not table:
                continue
            # bucket.idle(now), with the rule's figures read once per table: a distributed
            # flood leaves a key per source to expire, ~100k per 1M-line scan
            count = 0
            window = rule.window
            # a First record is a bucket after one event: its last time is the record's, its
            # level (leaky) 1.0
            if rule.bucket is BucketKind.LEAKY:
                rate = rule.threshold / window  # as Bucket._rate()
                for entry in table.values():
                    if type(entry) is tuple:
                        level, last = 1.0, entry[1]
                    else:
                        level, last = entry.level, entry.last  # type: ignore[union-attr]
                    quiet = now - last
                    if level - (quiet if quiet > 0.0 else 0.0) * rate > 0.0:
                        break
                    count += 1
            else:
                for entry in table.values():
                    quiet = now - (entry[1] if type(entry) is tuple else entry.last)  # type: ignore[union-attr]
                    if not (quiet if quiet > 0.0 else 0.0) > window:
                        break
                    count += 1
            popitem = table.popitem
            for _ in range(count):
                popitem(False)
            dropped += count
        self.accounts.expire(now)
        self.stats.expired += dropped
        return dropped

    def state_size(self) -> int:
        return sum(len(t) for t in self._tables.values())


def _from_first(bucket_type: type[Bucket], rule: RuleSpec, first: First) -> Bucket:
    """The bucket as feed() leaves a new key's after its first event (which cannot alert)."""
    event, now, value = first
    bucket = bucket_type(rule, now)
    bucket.step(now, now, value)
    bucket.last = now
    bucket.count = 1
    bucket.kinds[event.kind] = 1
    if event.account is not None:
        bucket.accounts.add(event.account)
    if rule.evidence >= 1:
        bucket.evidence.append(event)
    return bucket


def _network(rule: RuleSpec, ip: IPAddress | None, key: str) -> Network:
    """source_network() for the source `key` of `ip` under this rule, its texts remembered."""
    if ip is None:
        raise ValueError("a source key without an address")  # feed() never makes one
    if ip.version == 4:
        prefix = rule.ipv4_prefix
        network: Network = IPv4Network((int(ip), prefix), strict=False)
    else:
        prefix = rule.ipv6_prefix
        network = IPv6Network((int(ip), prefix), strict=False)
    # the key is network_key(network); str(network) always shows the prefix length
    host = network.prefixlen == network.max_prefixlen
    remember_network(network, key, f"{key}/{network.prefixlen}" if host else key)
    return network


def _alert(rule: RuleSpec, key: str, network: Network | None, bucket: Bucket, now: float) -> Alert:
    return Alert(
        rule=rule.id,
        time=now,
        key=key,
        network=network,
        profile=rule.profile,
        reason=reason(rule, key, bucket),
        events=tuple(bucket.evidence),
        severity=rule.severity,
    )


def reason(rule: RuleSpec, key: str, bucket: Bucket) -> str:
    """A sentence a person can check against the log lines."""
    noun = rule.noun or _noun(bucket.kinds)
    span = format_duration(max(0.0, bucket.last - bucket.first))
    window = format_duration(rule.window)
    accounts = ""
    if len(bucket.accounts) == 1:
        accounts = f" for account {next(iter(bucket.accounts))!r}"
    elif bucket.accounts:
        more = "+" if len(bucket.accounts) >= 100 else ""
        accounts = f" for {len(bucket.accounts)}{more} accounts"
    if rule.bucket is BucketKind.TRIGGER and bucket.evidence:
        # the rule's own words say what was seen; the event says how
        e = bucket.evidence[-1]
        seen = [e.kind.value.replace("_", " ")]
        if e.user_agent:
            seen.append(f"user agent {e.user_agent[:80]!r}")
        if e.account is not None:
            seen.append(f"account {e.account[:80]!r}")
        if e.detail:
            seen.append(e.detail[:120])
        return f"{rule.description}: {', '.join(seen)} (alerts on the first event)"
    if rule.group_by is GroupBy.ACCOUNT_DISTINCT_SOURCES:
        account = key.removeprefix("account:")
        return (
            f"account {account!r} attacked from {bucket.distinct()} sources "
            f"({bucket.count} {noun}) in {span} (threshold {rule.threshold} sources in {window})"
        )
    if rule.bucket is BucketKind.DISTINCT:
        what = "accounts" if rule.distinct_field == "account" else f"{rule.distinct_field} values"
        # "5 distinct accounts in 5 unknown accounts in 0s" read as nonsense: name the attempts
        tried = rule.noun or ", ".join(
            f"{n} {_NOUNS.get(k, k.value)}" for k, n in bucket.kinds.items()
        )
        return (
            f"{bucket.distinct()} distinct {what} in {bucket.count} attempts ({tried}) within "
            f"{span} (threshold {rule.threshold} in {window})"
        )
    if rule.bucket is BucketKind.LEAKY:
        drain = format_duration(rule.window / rule.threshold)
        limit = f"leaky bucket of {rule.threshold}, draining 1 per {drain}"
    else:
        limit = f"threshold {rule.threshold} in {window}"
    return f"{bucket.count} {noun}{accounts} in {span} ({limit})"


def _noun(kinds: dict[Kind, int]) -> str:
    if len(kinds) == 1:
        return _NOUNS.get(next(iter(kinds)), "events")
    return "failures (" + ", ".join(f"{n} {_NOUNS.get(k, k.value)}" for k, n in kinds.items()) + ")"


__all__ = [
    "DEFAULT_MAX_KEYS",
    "Engine",
    "EngineStats",
    "network_key",
    "reason",
    "source_key",
    "source_network",
]
