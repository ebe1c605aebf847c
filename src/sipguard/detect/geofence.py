"""Geo fences and impossible travel on successful registrations (pure, bounded state).

The daemon looks the source up at the edge (sipguard.geo) and hands the `Location` in with the
event; this module only decides. A fence is per account (or the default): allowed countries,
regions (ISO 3166-2 codes such as "US-MN"), ASNs and/or a radius in km around the account's usual
locations, learned from its successful registrations. A success outside the fence alerts even
though the password was right. Two successes whose distance over time needs a speed above
`max_speed_kmh` are impossible travel.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import ip_network

from sipguard.core.alerts import Alert
from sipguard.core.events import Event, Kind

EARTH_KM = 6371.0
MAX_ACCOUNTS = 10_000  # accounts remembered (least recently seen forgotten first)
MAX_HOMES = 8  # usual locations per account
HOME_MERGE_KM = 50.0  # a success this close to a known home is the same home


@dataclass(frozen=True, slots=True)
class Location:
    country: str | None = None  # ISO 3166-1 alpha-2
    region: str | None = None  # ISO 3166-2 ("US-MN")
    city: str | None = None
    lat: float | None = None
    lon: float | None = None
    asn: int | None = None
    org: str | None = None

    def describe(self) -> str:
        parts = [p for p in (self.city, self.region or self.country) if p]
        if self.asn is not None:
            parts.append(f"AS{self.asn}")
        return ", ".join(parts) or "unknown location"


@dataclass(frozen=True, slots=True)
class Fence:
    countries: frozenset[str] = frozenset()
    regions: frozenset[str] = frozenset()
    asns: frozenset[int] = frozenset()
    radius_km: float | None = None
    learn: int = 3  # successes to learn the usual locations before the radius applies

    def violation(self, loc: Location, homes: list[tuple[float, float]]) -> str | None:
        """Why `loc` is outside this fence, or None when it is inside (or cannot be judged).
        The radius applies once `homes` are learned (pass none while learning)."""
        if self.countries and loc.country is not None and loc.country not in self.countries:
            return f"country {loc.country} not in {sorted(self.countries)}"
        if self.regions and loc.region is not None and loc.region not in self.regions:
            return f"region {loc.region} not in {sorted(self.regions)}"
        if self.asns and loc.asn is not None and loc.asn not in self.asns:
            return f"AS{loc.asn} not in {sorted(self.asns)}"
        if self.radius_km is not None and loc.lat is not None and loc.lon is not None and homes:
            nearest = min(distance_km((loc.lat, loc.lon), h) for h in homes)
            if nearest > self.radius_km:
                return f"{nearest:.0f} km from the usual locations (radius {self.radius_km:g} km)"
        return None


@dataclass(frozen=True, slots=True)
class GeoRules:
    default: Fence | None = None
    accounts: Mapping[str, Fence] | None = None
    max_speed_kmh: float = 900.0  # 0 disables impossible travel
    profile: str = "default"  # what an out-of-fence success does (ban profile)
    travel_profile: str = "alert"
    lock: bool = False  # ask the policy to lock the account too

    def fence_for(self, account: str) -> Fence | None:
        if self.accounts and account in self.accounts:
            return self.accounts[account]
        return self.default


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance (haversine)."""
    lat1, lon1, lat2, lon2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_KM * math.asin(min(1.0, math.sqrt(h)))


@dataclass(slots=True)
class _Account:
    homes: list[tuple[float, float]]
    seen: int = 0
    last: tuple[float, float, float] | None = None  # (time, lat, lon) of the last success


class GeoDetector:
    """`feed(event, location)` -> alerts for one successful registration/login."""

    def __init__(self, rules: GeoRules) -> None:
        self.rules = rules
        self._accounts: OrderedDict[str, _Account] = OrderedDict()

    def feed(self, event: Event, loc: Location) -> list[Alert]:
        if event.kind is not Kind.AUTH_SUCCESS or not event.account or event.ip is None:
            return []
        state = self._state(event.account)
        alerts: list[Alert] = []
        fence = self.rules.fence_for(event.account)
        learned = state.homes if fence is not None and state.seen >= fence.learn else []
        why = fence.violation(loc, learned) if fence is not None else None
        if why is not None:
            alerts.append(self._alert("geo-fence", event, loc, why, self.rules.profile, True))
        point = (loc.lat, loc.lon) if loc.lat is not None and loc.lon is not None else None
        if point is not None:
            travel = self._travel(state, event.time, point)
            if travel is not None:
                alerts.append(
                    self._alert("impossible-travel", event, loc, travel, self.rules.travel_profile)
                )
            if why is None:  # only successes inside the fence teach the usual locations
                self._learn(state, point)
            state.last = (event.time, point[0], point[1])
        if why is None:
            state.seen += 1
        return alerts

    def _state(self, account: str) -> _Account:
        state = self._accounts.get(account)
        if state is None:
            state = self._accounts[account] = _Account(homes=[])
            if len(self._accounts) > MAX_ACCOUNTS:
                self._accounts.popitem(last=False)
        else:
            self._accounts.move_to_end(account)
        return state

    def _learn(self, state: _Account, point: tuple[float, float]) -> None:
        if any(distance_km(point, h) <= HOME_MERGE_KM for h in state.homes):
            return
        state.homes.append(point)
        del state.homes[:-MAX_HOMES]

    def _travel(self, state: _Account, now: float, point: tuple[float, float]) -> str | None:
        if self.rules.max_speed_kmh <= 0 or state.last is None:
            return None
        then, lat, lon = state.last
        km = distance_km((lat, lon), point)
        if km <= HOME_MERGE_KM:  # city-level databases place one town dozens of km apart
            return None
        hours = max(now - then, 1.0) / 3600.0
        speed = km / hours
        if speed <= self.rules.max_speed_kmh:
            return None
        return (
            f"{km:.0f} km in {hours * 60:.0f} min ({speed:.0f} km/h > {self.rules.max_speed_kmh:g})"
        )

    def _alert(
        self, rule: str, event: Event, loc: Location, why: str, profile: str, lock: bool = False
    ) -> Alert:
        assert event.ip is not None and event.account is not None
        prefix = 32 if event.ip.version == 4 else 128
        # only a fence breach with `lock` set makes it an account's alert (policy: lock it)
        locking = lock and self.rules.lock
        return Alert(
            rule=rule,
            time=event.time,
            key=str(event.ip),
            network=ip_network(f"{event.ip}/{prefix}"),
            profile=profile,
            reason=f"account {event.account} authenticated from {loc.describe()}: {why}",
            events=(event,),
            account=event.account if locking else None,
            actions=("alert", "lock") if locking else (),
        )
