"""Offence history per network: how many times it was banned lately, for escalation.

Bounded (offences per network and networks in total), exportable to plain data so the store
can persist it across restarts, and importable back with validation.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from ipaddress import ip_network

from sipguard.core.alerts import Network
from sipguard.detect.engine import network_key

MAX_PER_NETWORK = 32
MAX_NETWORKS = 200_000


class OffenceHistory:
    def __init__(self, max_networks: int = MAX_NETWORKS) -> None:
        self.max_networks = max_networks
        self._times: OrderedDict[str, list[float]] = OrderedDict()
        self.evicted = 0

    def level(self, network: Network, now: float, forget_after: float) -> int:
        """Offences of this network within `forget_after` before `now` (0 = first offence)."""
        times = self._times.get(network_key(network))
        if not times:
            return 0
        horizon = now - forget_after
        return sum(1 for t in times if horizon < t <= now)

    def record(self, network: Network, now: float) -> None:
        key = network_key(network)
        times = self._times.get(key)
        if times is None:
            if len(self._times) >= self.max_networks:
                self._times.popitem(last=False)
                self.evicted += 1
            times = self._times[key] = []
        else:
            self._times.move_to_end(key)
        times.append(now)
        del times[:-MAX_PER_NETWORK]

    def forget(self, now: float, forget_after: float) -> int:
        """Drop offences older than the lookback; returns how many networks went clean."""
        horizon = now - forget_after
        dropped = 0
        for key in list(self._times):
            kept = [t for t in self._times[key] if t > horizon]
            if kept:
                self._times[key] = kept
            else:
                del self._times[key]
                dropped += 1
        return dropped

    def __len__(self) -> int:
        return len(self._times)

    def export(self) -> dict[str, list[float]]:
        """Plain data: {"203.0.113.5": [t1, t2], "2001:db8::/64": [t]}."""
        return {k: list(v) for k, v in self._times.items()}

    @classmethod
    def load(cls, data: Mapping[str, Iterable[object]]) -> OffenceHistory:
        """Rebuild from `export()` output; entries that do not parse are skipped, not fatal."""
        history = cls()
        for key, times in data.items():
            try:
                net = ip_network(str(key), strict=False)
                stamps = sorted(float(t) for t in times)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                continue
            for t in stamps[-MAX_PER_NETWORK:]:
                history.record(net, t)
        return history
