"""Alerts to decisions: allow-list, profiles, escalation, simulation.

`Policy.decide(alert, now)` returns:
- None for an alert with no network (keyed on an account, e.g. a distributed attack): there is
  nothing to ban; the caller reports/notifies the Alert itself.
- Action.ALERT for a profile whose action is "alert" (notify only; `expires == start`).
- Action.ALLOWED when the source is on the allow-list: never banned, and not recorded as an
  offence (the would-be duration is kept for the report).
- Action.SIMULATE in simulation mode, otherwise Action.BAN, for the duration the profile gives
  this network's offence level. Offences are recorded in both modes so a dry run shows the
  escalation a real run would apply. An alert for a network whose ban (from this policy) is
  still running is not a new offence: it gets the running ban's level and expiry back, so two
  rules firing on one attack do not escalate twice.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from ipaddress import IPv4Address, IPv6Address, ip_network

from sipguard.core.alerts import AccountDecision, Action, Alert, Decision, Network
from sipguard.core.events import Event
from sipguard.detect.durations import format_duration
from sipguard.detect.engine import network_key
from sipguard.policy.history import OffenceHistory
from sipguard.policy.profiles import DEFAULT_PROFILES, PolicyError, Profile


class AllowList:
    """Networks never banned. `contains` accepts an address or a network (any overlap counts)."""

    def __init__(self, networks: Iterable[Network | str] = ()) -> None:
        self.networks: tuple[Network, ...] = tuple(
            n if not isinstance(n, str) else ip_network(n, strict=False) for n in networks
        )

    @classmethod
    def from_strings(cls, values: Iterable[object], key: str = "allowlist") -> AllowList:
        nets: list[Network] = []
        for i, v in enumerate(values):
            try:
                nets.append(ip_network(str(v).strip(), strict=False))
            except ValueError:
                raise PolicyError(f"{key}[{i}]", f"not an address or network: {v!r}") from None
        return cls(nets)

    def contains(self, item: IPv4Address | IPv6Address | Network) -> bool:
        if isinstance(item, IPv4Address | IPv6Address):
            return any(item.version == n.version and item in n for n in self.networks)
        return any(item.version == n.version and item.overlaps(n) for n in self.networks)

    def __len__(self) -> int:
        return len(self.networks)


class Policy:
    def __init__(
        self,
        profiles: Mapping[str, Profile] | None = None,
        allowlist: AllowList | None = None,
        simulate: bool = False,
        history: OffenceHistory | None = None,
    ) -> None:
        self.profiles = dict(DEFAULT_PROFILES if profiles is None else profiles)
        if "default" not in self.profiles:
            self.profiles["default"] = DEFAULT_PROFILES["default"]
        self.allowlist = allowlist if allowlist is not None else AllowList()
        self.simulate = simulate
        self.history = history if history is not None else OffenceHistory()
        # running bans decided here: key -> (expires, level); bounded like the history
        self._running: OrderedDict[str, tuple[float | None, int]] = OrderedDict()

    def reconfigure(self, profiles: Mapping[str, Profile], simulate: bool) -> None:
        """New settings (a reload): the offence history and the running bans are kept."""
        self.profiles = dict(profiles)
        if "default" not in self.profiles:
            self.profiles["default"] = DEFAULT_PROFILES["default"]
        self.simulate = simulate

    def set_allowlist(self, allowlist: AllowList) -> None:
        self.allowlist = allowlist

    def unknown_profiles(self, names: Iterable[str]) -> list[str]:
        """Profile names (from rules) this policy does not define; check them at start-up,
        since `decide` quietly falls back to "default" for an unknown name."""
        return sorted({n for n in names if n not in self.profiles})

    def profile(self, name: str) -> Profile:
        """The named profile; an unknown name falls back to "default" (config checks names)."""
        return self.profiles.get(name) or self.profiles["default"]

    def lock(self, alert: Alert) -> str | None:
        """The account to lock (through AMI, actions/ami.py) for an account-keyed rule alert
        whose profile lists "lock" in its actions; None otherwise, and always in simulation."""
        if alert.network is not None or self.simulate or not alert.key.startswith("account:"):
            return None
        if "lock" not in self.profile(alert.profile).actions:
            return None
        return alert.key.removeprefix("account:") or None

    def decide(self, alert: Alert, now: float) -> Decision | None:
        network = alert.network
        if network is None:
            return None
        profile = self.profile(alert.profile)
        evidence = alert.events
        if profile.action is Action.ALERT:
            return Decision(
                network,
                Action.ALERT,
                alert.rule,
                f"{alert.reason}; alert only",
                now,
                now,
                evidence=evidence,
            )
        if self.allowlist.networks and self.allowlist.contains(network):
            # allow-listed first: a network allowed after its ban must never be banned again
            narrowed = self._narrow(network, evidence)
            if narrowed is None:
                level = self.history.level(network, now, profile.forget_after)
                seconds = profile.duration(level)
                ban = f"ban {format_duration(seconds)} (profile {profile.name})"
                return Decision(
                    network,
                    Action.ALLOWED,
                    alert.rule,
                    f"{alert.reason}; allow-listed, would have been: {ban}",
                    now,
                    None if seconds is None else now + seconds,
                    level,
                    evidence,
                )
            network = narrowed
        key = network_key(network)
        running = self._running.get(key)
        if running is not None and (running[0] is None or running[0] > now):
            expires, level = running
            left = None if expires is None else expires - now
            action = Action.SIMULATE if self.simulate else Action.BAN
            why = f"{alert.reason}; already banned, {format_duration(left)} left"
            return Decision(network, action, alert.rule, why, now, expires, level, evidence)
        level = self.history.level(network, now, profile.forget_after)
        seconds = profile.duration(level)
        expires = None if seconds is None else now + seconds
        ban = f"ban {format_duration(seconds)} (offence {level + 1}, profile {profile.name})"
        self.history.record(network, now)
        self._running[key] = (expires, level)
        self._running.move_to_end(key)
        if len(self._running) > self.history.max_networks:
            self._running.popitem(last=False)
        action = Action.SIMULATE if self.simulate else Action.BAN
        return Decision(
            network, action, alert.rule, f"{alert.reason}; {ban}", now, expires, level, evidence
        )

    def account_decision(self, alert: Alert, now: float) -> AccountDecision | None:
        """The account actions (alert, hangup, lock) an account's alert asks for; None when
        it names no account or no such action. As for bans: in simulation mode, or when its
        source is allow-listed, the decision is `simulated` (reported, not carried out)."""
        if alert.account is None:
            return None
        actions = tuple(a for a in alert.actions if a != "ban")  # a ban is decide()'s
        if not actions:
            return None
        allowed = alert.network is not None and self.allowlist.contains(alert.network)
        return AccountDecision(
            alert.account,
            alert.rule,
            alert.reason,
            now,
            actions,
            alert.channels,
            self.simulate or allowed,
        )

    def _narrow(self, network: Network, evidence: tuple[Event, ...]) -> Network | None:
        """A grouped network (an IPv6 /64) that overlaps the allow-list is narrowed to the
        attacking address itself when that address is not allow-listed: an attacker sharing a
        /64 with the PBX or a trunk is still banned, the trusted neighbour never is."""
        for event in reversed(evidence):
            ip = event.ip
            if ip is not None and ip in network and not self.allowlist.contains(ip):
                host = ip_network(ip)
                return None if host == network else host
        return None
