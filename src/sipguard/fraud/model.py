"""The call model shared by the CDR readers, the live tracker and the detectors."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import ip_address, ip_network

from sipguard.core.alerts import Alert
from sipguard.core.calls import account_of
from sipguard.core.events import NO_ORIGIN, Event, Kind, Origin, Service

__all__ = ["ACTIONS", "SEVERITIES", "Call", "Hit", "account_of"]

SEVERITIES = ("low", "medium", "high", "critical")
ACTIONS = ("alert", "hangup", "lock", "ban")


@dataclass(slots=True)
class Call:
    """One outbound call attempt by an account.

    `end` is None while a live call is in progress. Times are POSIX seconds (UTC).
    """

    uid: str
    account: str
    dst: str  # the dialled string as the caller dialled it
    start: float
    end: float | None = None
    billsec: float = 0.0
    answered: bool = False
    channel: str = ""
    ip: str = ""  # the caller's address when a source knows it ("" otherwise)
    line_no: int = 0
    answer: float | None = None  # when a live call was answered (running cost starts)


@dataclass(frozen=True, slots=True)
class Hit:
    """A rule fired on an account; names the calls behind it and what to do."""

    rule: str
    account: str
    severity: str
    reason: str
    time: float
    calls: tuple[str, ...]  # uniqueids, oldest first, bounded
    actions: tuple[str, ...] = ("alert",)
    ip: str = ""  # the source address to ban, when the rule is about one
    channels: tuple[str, ...] = field(default=())  # live channels to hang up
    dest: str = ""  # the E.164 number a destination rule fired on (its range is shared)

    def to_dict(self) -> dict[str, object]:
        return {
            "account": self.account,
            "rule": self.rule,
            "severity": self.severity,
            "calls": list(self.calls),
            "reason": self.reason,
        }

    def to_alert(self, rule: str = "", events: tuple[Event, ...] = ()) -> Alert:
        """The core Alert the daemon turns into a Decision (a ban when an address is known).

        `rule`: the rule's id (default `fraud.<detector>`); `events`: the call events behind
        the hit as evidence (default: one TOLL_FRAUD event naming the calls)."""
        network = None
        if self.ip and "ban" in self.actions:
            try:
                network = ip_network(ip_address(self.ip))
            except ValueError:
                network = None
        evidence = events or (
            Event(
                time=self.time,
                kind=Kind.TOLL_FRAUD,
                service=Service.UNKNOWN,
                ip=ip_address(self.ip) if network is not None else None,
                account=self.account,
                detail=f"fraud:{self.rule}",
                origin=Origin("fraud", 0, " ".join(self.calls)[:512]) if self.calls else NO_ORIGIN,
            ),
        )
        return Alert(
            rule=rule or f"fraud.{self.rule}",
            time=self.time,
            key=f"account:{self.account}",
            network=network,
            profile="default" if network is not None else "alert",
            reason=self.reason,
            events=evidence,
            severity=self.severity,
            account=self.account,
            channels=self.channels,
            actions=self.actions,
        )
