"""Rule specs built from plain data (one `rule.toml` table), validated once at load.

A rule says which events it looks at (kinds + matchers), how it counts them (a bucket kind from
a closed set), per what (the grouping key), and what to do when the count crosses (profile).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TypeGuard

from sipguard.core.events import Event, Kind
from sipguard.detect.durations import format_duration, parse_duration
from sipguard.detect.matchers import FIELDS, Matcher, RuleError, build_matcher

SEVERITIES = ("low", "medium", "high", "critical")
Conv = Callable[[str, object], object]
MAX_EVIDENCE = 20


class BucketKind(StrEnum):
    # level +1 per event, drains `threshold` per `window`; full (alerts) when `threshold` events
    # come faster than the drain (5 per 60s: 5 within 12s) or a faster steady rate piles up
    LEAKY = "leaky"
    COUNTER = "counter"  # events within a sliding window
    TRIGGER = "trigger"  # the first matching event alerts
    DISTINCT = "distinct"  # distinct values of a field within a window


class GroupBy(StrEnum):
    SOURCE = "source"  # the source network (/32, /128 or the IPv6 /64 by default)
    ACCOUNT = "account"  # the account tried, whatever the source (ip=None counts too)
    ACCOUNT_DISTINCT_SOURCES = "account_distinct_sources"  # sources per account: distributed


@dataclass(frozen=True, slots=True)
class RuleSpec:
    id: str
    description: str
    kinds: frozenset[Kind]
    matchers: tuple[Matcher, ...]
    bucket: BucketKind
    threshold: int
    window: float  # seconds; for trigger: how long a key stays quiet before it may fire again
    group_by: GroupBy = GroupBy.SOURCE
    distinct_field: str | None = None  # for DISTINCT (account_distinct_sources: the source)
    ipv4_prefix: int = 32
    ipv6_prefix: int = 64
    profile: str = "default"
    severity: str = "high"
    enabled: bool = True
    evidence: int = MAX_EVIDENCE
    noun: str = ""  # how the reason names the events: "wrong passwords"
    # named conditions on what the engine remembers (detect/accounts.py)
    unauthenticated: bool = False  # only sources never authenticated on the event's account
    authenticated: bool = False  # only sources that authenticated on the event's account
    account_alerted_by: str | None = None  # only accounts under this rule's alert

    def matches(self, event: Event) -> bool:
        return event.kind in self.kinds and all(m(event) for m in self.matchers)

    def summary(self) -> str:
        """One phrase: "leaky 5 in 1m per source (/32, /64)"."""
        if self.bucket is BucketKind.TRIGGER:
            count = "first event"
        elif self.bucket is BucketKind.DISTINCT:
            what = f"{self.distinct_field}s" if self.distinct_field else "sources"
            count = f"{self.threshold} distinct {what} in {format_duration(self.window)}"
        else:
            count = f"{self.threshold} in {format_duration(self.window)}"
        per = (
            "account" if self.group_by is GroupBy.ACCOUNT_DISTINCT_SOURCES else self.group_by.value
        )
        if self.group_by is GroupBy.SOURCE:
            per += f" (/{self.ipv4_prefix}, /{self.ipv6_prefix})"
        return f"{self.bucket.value} {count} per {per}"

    def with_overrides(self, overrides: Mapping[str, object]) -> RuleSpec:
        """The same rule with config overrides applied (threshold, window, enabled, ...)."""
        changes: dict[str, object] = {}
        for key, value in overrides.items():
            if key not in _OVERRIDABLE:
                raise RuleError(key, f"cannot override (one of {', '.join(_OVERRIDABLE)})")
            changes[key] = _OVERRIDABLE[key](key, value)
        rule = replace(self, **changes)  # type: ignore[arg-type]
        _check_consistent(rule)
        return rule


def _int(key: str, value: object, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise RuleError(key, f"needs an integer from {lo} to {hi}, got {value!r}")
    return value


def _int_in(lo: int, hi: int) -> Conv:
    return lambda key, value: _int(key, value, lo, hi)


def _window(key: str, value: object) -> float:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise RuleError(key, str(exc)) from None
    if not 0 < seconds <= 366 * 86400:
        raise RuleError(key, "window must be more than 0s and at most a year")
    return seconds


def _bool(key: str, value: object) -> object:
    if not isinstance(value, bool):
        raise RuleError(key, f"needs true or false, got {value!r}")
    return value


def _text(key: str, value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > 200:
        raise RuleError(key, "needs a non-empty string")
    return value


def _severity(key: str, value: object) -> object:
    if value not in SEVERITIES:
        raise RuleError(key, f"needs one of {', '.join(SEVERITIES)}, got {value!r}")
    return value


_OVERRIDABLE: dict[str, Conv] = {
    "threshold": _int_in(1, 1_000_000),
    "window": _window,
    "enabled": _bool,
    "profile": _text,
    "severity": _severity,
    "ipv4_prefix": _int_in(8, 32),
    "ipv6_prefix": _int_in(16, 128),
    "evidence": _int_in(1, 200),
}

_TOP_KEYS = frozenset(
    {"id", "description", "severity", "profile", "enabled", "noun", "filter", "bucket", "group"}
)


def rule_id_of(data: Mapping[str, object], top_keys: frozenset[str]) -> str:
    """A rule.toml's id, once its top-level keys are known ones (log and fraud rules alike)."""
    unknown = sorted(set(data) - top_keys)
    if unknown:
        raise RuleError(unknown[0], "unknown key")
    rule_id = data.get("id")
    if not _is_id(rule_id):
        raise RuleError("id", "needs a name of letters, digits, '-' and '_'")
    return rule_id


def rule_from_dict(data: Mapping[str, object], lists: Mapping[str, Sequence[str]]) -> RuleSpec:
    """Build and validate a rule from a parsed rule.toml. Raises RuleError(key, reason)."""
    rule_id = rule_id_of(data, _TOP_KEYS)
    flt = _table(data, "filter")
    raw_kinds = flt.get("kinds")
    if not isinstance(raw_kinds, list) or not raw_kinds:
        raise RuleError("filter.kinds", "needs a non-empty list of event kinds")
    kinds = set()
    for i, k in enumerate(raw_kinds):
        try:
            kinds.add(Kind(k))
        except ValueError:
            raise RuleError(f"filter.kinds[{i}]", f"unknown kind {k!r}") from None
    raw_match = flt.get("match", [])
    if not isinstance(raw_match, list):
        raise RuleError("filter.match", "needs a list of tables ([[filter.match]])")
    matchers = tuple(build_matcher(m, f"filter.match[{i}]", lists) for i, m in enumerate(raw_match))
    conditions = {"unauthenticated", "authenticated", "account_alerted_by"}
    extra = sorted(set(flt) - {"kinds", "match", *conditions})
    if extra:
        raise RuleError(f"filter.{extra[0]}", "unknown key")
    alerted_by = flt.get("account_alerted_by")
    if alerted_by is not None and not _is_id(alerted_by):
        raise RuleError("filter.account_alerted_by", "needs a rule id")
    bucket_t = _table(data, "bucket")
    try:
        bucket = BucketKind(str(bucket_t.get("type")))
    except ValueError:
        raise RuleError("bucket.type", "needs one of leaky, counter, trigger, distinct") from None
    threshold = _int("bucket.threshold", bucket_t.get("threshold", 1), 1, 1_000_000)
    window = _window("bucket.window", bucket_t.get("window", "1h"))
    group_t = _table(data, "group", required=False)
    try:
        group_by = GroupBy(str(group_t.get("by", "source")))
    except ValueError:
        raise RuleError("group.by", "needs source, account or account_distinct_sources") from None
    distinct = bucket_t.get("field")
    if bucket is BucketKind.DISTINCT and group_by is not GroupBy.ACCOUNT_DISTINCT_SOURCES:
        if distinct not in FIELDS:
            raise RuleError("bucket.field", f"distinct needs a field ({', '.join(FIELDS)})")
    elif distinct is not None:
        raise RuleError("bucket.field", "only for distinct buckets not grouped by sources")
    rule = RuleSpec(
        id=rule_id,
        description=_text("description", data.get("description")),
        kinds=frozenset(kinds),
        matchers=matchers,
        bucket=bucket,
        threshold=threshold,
        window=window,
        group_by=group_by,
        distinct_field=distinct if isinstance(distinct, str) else None,
        ipv4_prefix=_int("group.ipv4_prefix", group_t.get("ipv4_prefix", 32), 8, 32),
        ipv6_prefix=_int("group.ipv6_prefix", group_t.get("ipv6_prefix", 64), 16, 128),
        profile=_text("profile", data.get("profile", "default")),
        severity=str(_severity("severity", data.get("severity", "high"))),
        enabled=bool(_bool("enabled", data.get("enabled", True))),
        evidence=_int("bucket.evidence", bucket_t.get("evidence", MAX_EVIDENCE), 1, 200),
        noun=str(data.get("noun", "")),
        unauthenticated=bool(_bool("filter.unauthenticated", flt.get("unauthenticated", False))),
        authenticated=bool(_bool("filter.authenticated", flt.get("authenticated", False))),
        account_alerted_by=alerted_by,
    )
    extra = sorted(set(bucket_t) - {"type", "threshold", "window", "field", "evidence"})
    if extra:
        raise RuleError(f"bucket.{extra[0]}", "unknown key")
    extra = sorted(set(group_t) - {"by", "ipv4_prefix", "ipv6_prefix"})
    if extra:
        raise RuleError(f"group.{extra[0]}", "unknown key")
    _check_consistent(rule)
    return rule


def _is_id(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and value.replace("-", "").replace("_", "").isalnum()


def _table(data: Mapping[str, object], key: str, required: bool = True) -> Mapping[str, object]:
    value = data.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, Mapping):
        raise RuleError(key, "needs a table")
    return value


def _check_consistent(rule: RuleSpec) -> None:
    if rule.unauthenticated and rule.authenticated:
        raise RuleError("filter.authenticated", "cannot be true with unauthenticated")
    if rule.group_by is GroupBy.ACCOUNT_DISTINCT_SOURCES and rule.bucket is not BucketKind.DISTINCT:
        raise RuleError("bucket.type", "account_distinct_sources needs a distinct bucket")


__all__ = [
    "SEVERITIES",
    "BucketKind",
    "GroupBy",
    "RuleError",
    "RuleSpec",
    "rule_from_dict",
]
