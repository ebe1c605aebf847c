"""Fraud rule kinds: detectors over call Events whose destination facts the edge filled in.

`fraud/` classifies the dialled number (phonenumbers, hotlist, rates) before detection and
writes what it found into the event's `call` (`dest`, `risky`, `rate`, `range_key`, the
office's `day`/`weekday`/`minute`); a kind only reads those fields, so it stays pure and
`detect/` keeps importing only `core`. The contract is the log rules' one: `feed(event, now)`
-> what fired, `expire(now)` -> keys forgotten. A kind returns `Finding`s rather than core
Alerts because the fraud stage merges them into incidents per rule and account and names the
calls behind them (fraud.report.AlertBook) before an Alert leaves.

Here: the per-call and per-address kinds (`risky_destination`, `after_hours`,
`address_country`, `distant_registrations`). In `fraudcounts`: the kinds counting an
account's (or a trunk's) calls (`velocity`, `concurrent`, `short_burst`, `inbound_volume`),
in `fraudledger` the per-account ledgers (`spend`, `new_country`), all with typed entries for
the hot CDR loop. `FRAUD_KINDS`
names every detector of `fraudrules.FRAUD_DETECTORS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from sipguard.core.events import Event
from sipguard.detect.findings import Finding, FraudKind, prune
from sipguard.detect.fraudcounts import Concurrent, InboundVolume, ShortBurst, Velocity
from sipguard.detect.fraudledger import NewCountry, Spend
from sipguard.detect.geofence import distance_km  # one haversine for fraud and geo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class RiskyDestination:
    """A call to a destination the edge marked risky: a premium or other listed number type,
    a hotlist range, a high-risk country (which of these count is the edge's `types`,
    `hotlist` and `high_risk_countries` parameters: they decide `risky`). Stateless."""

    def __init__(self, params: Mapping[str, object] | None = None) -> None:
        del params  # its parameters are applied where `risky` is computed (the edge)

    def feed(self, event: Event, now: float) -> list[Finding]:
        call = event.call
        if call is None or not call.risky or not event.account:
            return []
        return [Finding(event.account, f"call to {call.dest}: {call.risky}", (call.uid,))]

    def expire(self, now: float) -> int:
        return 0

    def state_size(self) -> int:
        return 0


class AfterHours:
    """An international/premium/high-risk call (the edge's `hours_scoped`, from the `scopes`
    parameter) dialled outside business hours: a day not in `days`, or a minute of the day not
    in `start`-`end` (the office's local time the edge put on the call). Stateless."""

    def __init__(self, params: Mapping[str, object]) -> None:
        days = params.get("days", [])
        names = [d for d in days if isinstance(d, str)] if isinstance(days, list) else []
        self.days = frozenset(DAYS.index(d) for d in names if d in DAYS)
        self.start = minutes_of(str(params.get("start", "00:00")))
        self.end = minutes_of(str(params.get("end", "24:00")))

    def outside(self, weekday: int, minute: int) -> bool:
        return weekday not in self.days or not self.start <= minute < self.end

    def feed(self, event: Event, now: float) -> list[Finding]:
        call = event.call
        if call is None or not call.hours_scoped or call.weekday < 0 or not event.account:
            return []
        if not self.outside(call.weekday, call.minute):
            return []
        reason = (
            f"{call.scope} call to {call.dest} ({call.country}, {call.dest_type}) "
            "outside business hours"
        )
        return [Finding(event.account, reason, (call.uid,))]

    def expire(self, now: float) -> int:
        return 0

    def state_size(self) -> int:
        return 0


class AddressCountry:
    """An account registered, authenticated or called from an address whose country (the
    edge's `ip_country`) is outside the account's own list, else the rule's `allowed`."""

    def __init__(
        self,
        params: Mapping[str, object],
        per_account: Mapping[str, frozenset[str]] | None = None,
    ) -> None:
        allowed = params.get("allowed", [])
        names = allowed if isinstance(allowed, list) else []
        self.allowed = frozenset(c for c in names if isinstance(c, str))
        self.per_account = per_account or {}

    def feed(self, event: Event, now: float) -> list[Finding]:
        call = event.call
        if call is None or not call.ip_country or not event.account or event.ip is None:
            return []
        allowed = self.per_account.get(event.account) or self.allowed
        if not allowed or call.ip_country in allowed:
            return []
        ip = str(event.ip)
        reason = (
            f"{ip} is in {call.ip_country}, account allowed only in {','.join(sorted(allowed))}"
        )
        return [Finding(event.account, reason, (call.uid,), ip)]

    def expire(self, now: float) -> int:
        return 0

    def state_size(self) -> int:
        return 0


MAX_PLACES = 16  # countries remembered per account (the oldest goes)
MAX_PLACE_ACCOUNTS = 100_000  # accounts with remembered places (the first seen goes)


class DistantRegistrations:
    """The same account seen (registered, authenticated, calling) from two countries at least
    `min_km` apart within `window` seconds: the edge puts the address's country and that
    country's point on the call. Remembers the last sighting per (account, country)."""

    def __init__(self, params: Mapping[str, object]) -> None:
        window, min_km = params.get("window", 3600.0), params.get("min_km", 1500.0)
        self.window = float(window) if isinstance(window, int | float) else 3600.0
        self.min_km = float(min_km) if isinstance(min_km, int | float) else 1500.0
        # account -> country -> (time, address, point): insertion order is the report order
        self.places: dict[str, dict[str, tuple[float, str, tuple[float, float] | None]]] = {}

    def feed(self, event: Event, now: float) -> list[Finding]:
        call = event.call
        if call is None or not call.ip_country or not event.account or event.ip is None:
            return []
        account, country, point, ip = event.account, call.ip_country, call.ip_point, str(event.ip)
        places = self.places.get(account)
        if places is None:
            if len(self.places) >= MAX_PLACE_ACCOUNTS:
                del self.places[next(iter(self.places))]
            places = self.places[account] = {}
        out: list[Finding] = []
        if point is not None:
            for other, (t, other_ip, other_point) in places.items():
                if other == country or now - t > self.window or other_point is None:
                    continue
                km = distance_km(point, other_point)
                if km >= self.min_km:
                    reason = (
                        f"seen from {other_ip} ({other}) and {ip} ({country}), "
                        f"{km:.0f} km apart, within {now - t:.0f}s"
                    )
                    out.append(Finding(account, reason, (call.uid,)))
        places[country] = (now, ip, point)
        if len(places) > MAX_PLACES:
            del places[min(places, key=lambda c: places[c][0])]
        return out

    def forget(self, account: str) -> None:
        self.places.pop(account, None)

    def expire(self, now: float) -> int:
        """Drop sightings older than the window (they can no longer fire)."""
        return prune(self.places, lambda p: now - p[0] > self.window)

    def state_size(self) -> int:
        return sum(len(p) for p in self.places.values())


def minutes_of(hhmm: str) -> int:
    """`"18:30"` -> 1110, `"9"` -> 540."""
    h, _, m = hhmm.partition(":")
    return int(h) * 60 + int(m or 0)


#: detector name -> the kind built from its rule's parameters (per-account overrides, where a
#: kind has them, are its second argument).
FRAUD_KINDS: dict[str, Callable[[Mapping[str, object]], FraudKind]] = {
    "risky_destination": RiskyDestination,
    "after_hours": AfterHours,
    "address_country": AddressCountry,
    "distant_registrations": DistantRegistrations,
    "velocity": Velocity,
    "concurrent": Concurrent,
    "short_burst": ShortBurst,
    "spend": Spend,
    "new_country": NewCountry,
    "inbound_volume": InboundVolume,
}

__all__ = [
    "DAYS",
    "FRAUD_KINDS",
    "AddressCountry",
    "AfterHours",
    "Concurrent",
    "DistantRegistrations",
    "Finding",
    "FraudKind",
    "InboundVolume",
    "NewCountry",
    "RiskyDestination",
    "ShortBurst",
    "Spend",
    "Velocity",
    "distance_km",
    "minutes_of",
]
