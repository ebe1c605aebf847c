"""Reconciliation as pure set algebra: what must change so that `current` becomes `desired`.

Every reconciler (kernel sets at start, fleet, blocklists) asks the same two questions, so the
answer lives here once, stdlib-only and without I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network
from typing import TypeVar

Network = IPv4Network | IPv6Network
T = TypeVar("T")


def diff(current: Iterable[T], desired: Iterable[T]) -> tuple[set[T], set[T]]:
    """(to_add, to_remove): to_add = desired - current, to_remove = current - desired."""
    cur, want = set(current), set(desired)
    return want - cur, cur - want


@dataclass(frozen=True, slots=True)
class TimedDiff:
    to_add: frozenset[Network]  # missing, or held with a timeout that is clearly too short
    to_remove: frozenset[Network]
    kept: frozenset[Network]


def diff_timed(
    current: Mapping[Network, float | None],
    desired: Mapping[Network, float | None],
    slack: float = 5.0,
) -> TimedDiff:
    """Like `diff`, but also re-adds a network whose kernel timeout would end a ban early.

    Values are seconds left (None = no timeout). A kernel timeout within `slack` seconds of the
    decision's is kept (the two clocks were read a moment apart); one that would end the ban
    early or late, or a permanent entry for a timed decision (and vice versa), is refreshed.
    """
    to_add, to_remove = diff(current, desired)
    refresh: set[Network] = set()
    for net in set(current) & set(desired):
        have, want = current[net], desired[net]
        if have is None and want is None:
            continue
        if want is None or have is None or have + slack < want or have > want + slack:
            refresh.add(net)
    kept = (set(current) & set(desired)) - refresh
    return TimedDiff(frozenset(to_add | refresh), frozenset(to_remove), frozenset(kept))


def collapse(networks: Iterable[Network]) -> set[Network]:
    """Drop every network that another one in the collection already contains.

    Interval sets in the kernel refuse overlapping elements, so only the widest survive.
    """
    nets = sorted(set(networks), key=lambda n: (n.version, n.prefixlen))
    kept: list[Network] = []
    for net in nets:
        if not any(_covers(wide, net) for wide in kept):
            kept.append(net)
    return set(kept)


def _covers(wide: Network, net: Network) -> bool:
    if wide.version != net.version:
        return False
    if isinstance(wide, IPv4Network) and isinstance(net, IPv4Network):
        return net.subnet_of(wide)
    if isinstance(wide, IPv6Network) and isinstance(net, IPv6Network):
        return net.subnet_of(wide)
    return False
