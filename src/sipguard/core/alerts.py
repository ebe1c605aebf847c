"""What a rule raises, and what policy turns it into."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import IPv4Network, IPv6Network

from sipguard.core.events import Event

Network = IPv4Network | IPv6Network


@dataclass(frozen=True, slots=True)
class Alert:
    """A rule crossed its threshold for one grouping key.

    `network` is the source to act on (a /32, /128, or the /64 an IPv6 attacker lives in); it is
    None for alerts keyed on something else (an account under distributed attack).
    """

    rule: str
    time: float
    key: str  # the grouping key value ("203.0.113.5", "2001:db8:1::/64", "account:1001")
    network: Network | None
    profile: str  # ban profile to apply ("default", "alert", ...)
    reason: str  # human sentence: "8 wrong passwords in 60s (threshold 5)"
    events: tuple[Event, ...] = ()  # the evidence, bounded by the engine
    severity: str = "high"  # low | medium | high | critical
    # an account's alert (the fraud rules): the account, its live calls' channels, and the
    # actions its profile names (alert, hangup, lock, ban) for the policy to decide on
    account: str | None = None
    channels: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "rule": self.rule,
            "time": self.time,
            "key": self.key,
            "network": str(self.network) if self.network is not None else None,
            "profile": self.profile,
            "reason": self.reason,
            "severity": self.severity,
            "events": [e.to_dict() for e in self.events],
        }
        if self.account is not None:  # only accounts' alerts: others' JSON is unchanged
            out.update(
                account=self.account, channels=list(self.channels), actions=list(self.actions)
            )
        return out


class Action(StrEnum):
    BAN = "ban"
    ALERT = "alert"  # notify only
    SIMULATE = "simulate"  # would have banned; report only
    ALLOWED = "allowed"  # would have banned, but the source is on the allow-list


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do about one network, until when, and why."""

    network: Network
    action: Action
    rule: str
    reason: str
    start: float
    expires: float | None  # None = permanent
    level: int = 0  # escalation level: 0 for a first offence
    evidence: tuple[Event, ...] = field(default=())
    origin: str = "local"  # "local", "manual", "fleet:<node>", "blocklist:<name>"

    @property
    def duration(self) -> float | None:
        return None if self.expires is None else self.expires - self.start

    def active(self, now: float) -> bool:
        return self.expires is None or self.expires > now

    def to_dict(self) -> dict[str, object]:
        return {
            "network": str(self.network),
            "action": self.action.value,
            "rule": self.rule,
            "reason": self.reason,
            "start": self.start,
            "expires": self.expires,
            "level": self.level,
            "origin": self.origin,
            "evidence": [e.to_dict() for e in self.evidence],
        }


@dataclass(frozen=True, slots=True)
class AccountDecision:
    """What to do about an account an alert names: hang up its live calls (`channels`), lock
    it, notify. `simulated`: decided in simulation mode or for an allow-listed source, so
    reported but not carried out (a ban of the source stays `Decision`'s)."""

    account: str
    rule: str
    reason: str
    time: float
    actions: tuple[str, ...]  # "alert", "hangup", "lock"
    channels: tuple[str, ...] = ()
    simulated: bool = False

    def to_dict(self) -> dict[str, object]:
        return {
            "account": self.account,
            "rule": self.rule,
            "reason": self.reason,
            "time": self.time,
            "actions": list(self.actions),
            "channels": list(self.channels),
            "simulated": self.simulated,
        }
