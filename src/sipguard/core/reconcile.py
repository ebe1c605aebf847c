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

    Interval sets in the kernel refuse overlapping elements, so only the widest survive. Cost is
    O(n x distinct prefix lengths): each network looks up its own supernets, not every other one.
    """
    kept: set[Network] = set()
    lengths: dict[int, set[int]] = {4: set(), 6: set()}  # prefix lengths among kept, per family
    for net in sorted(set(networks), key=lambda n: (n.version, n.prefixlen)):
        if not any(_supernet(net, plen) in kept for plen in lengths[net.version]):
            kept.add(net)
            lengths[net.version].add(net.prefixlen)
    return kept


def _supernet(net: Network, prefixlen: int) -> Network:
    return net if prefixlen >= net.prefixlen else net.supernet(new_prefix=prefixlen)
