"""A blocklist minus the allow-list, as pure set algebra (no I/O, no clock).

A feed entry inside an allow-listed network is dropped; an entry that contains an allow-listed
network is narrowed to the pieces around it (10.0.0.0/8 minus 10.1.2.0/24 is 16 networks), so the
rest of the feed's range stays blocked and the trunk does not. The result holds no overlaps:
interval sets in the kernel refuse overlapping elements.

Cost is O(entries x distinct prefix lengths): a 100,000-entry list with a short allow-list
stays well under a second, which is what lets a big list load in the 2 s budget.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sipguard.policy.reconcile import Network, _supernet, collapse


def _lengths(nets: Iterable[Network]) -> dict[int, list[int]]:
    out: dict[int, set[int]] = {4: set(), 6: set()}
    for n in nets:
        out[n.version].add(n.prefixlen)
    return {v: sorted(ls) for v, ls in out.items()}


def subtract(entries: Iterable[Network], allowed: Sequence[Network]) -> list[Network]:
    """`entries` minus every allow-listed address, collapsed (no element inside another)."""
    nets = collapse(entries)
    if not allowed:
        return sorted(nets, key=_order)
    allow_set = set(allowed)
    allow_len = _lengths(allowed)
    # 1. entries inside (or equal to) an allow-listed network go entirely
    kept = {
        n
        for n in nets
        if not any(_supernet(n, p) in allow_set for p in allow_len[n.version] if p <= n.prefixlen)
    }
    # 2. entries that contain an allow-listed network are split around it
    ent_len = _lengths(kept)
    holes: dict[Network, list[Network]] = {}
    for a in allowed:
        for p in ent_len[a.version]:
            if p < a.prefixlen:
                sup = _supernet(a, p)
                if sup in kept:
                    holes.setdefault(sup, []).append(a)
    for net, inside in holes.items():
        kept.discard(net)
        kept.update(_cut(net, inside))
    return sorted(kept, key=_order)


def _cut(net: Network, holes: Sequence[Network]) -> list[Network]:
    pieces = [net]
    for hole in holes:
        nxt: list[Network] = []
        for p in pieces:
            if hole.subnet_of(p):  # type: ignore[arg-type]
                nxt.extend(p.address_exclude(hole))  # type: ignore[arg-type]
            elif not p.subnet_of(hole):  # type: ignore[arg-type]
                nxt.append(p)
        pieces = nxt
    return pieces


def _order(n: Network) -> tuple[int, int, int]:
    return (n.version, int(n.network_address), n.prefixlen)
