#!/usr/bin/env python3
"""Firewall backend speed: single bans, one batch, listing, reconcile, in a throw-away namespace.

    sudo python bench/firewall_ops.py [--n 1000] [--backends nftables,nft-cli,iptables]

Everything happens inside a network namespace this script creates and deletes; addresses are
from 10.0.0.0/8 and never leave it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from ipaddress import IPv4Network

from sipguard.actions import FirewallConfig, make_firewall
from sipguard.core.alerts import Action, Decision


def decisions(n: int, base: int, now: float) -> list[Decision]:
    return [
        Decision(
            IPv4Network(((10 << 24) + base + i, 32)), Action.BAN, "bench", "x", now, now + 3600
        )
        for i in range(n)
    ]


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def run(backend: str, ns: str, n: int, conntrack_n: int) -> None:
    kind = "nftables" if backend.startswith("nft") else "iptables"
    cfg = FirewallConfig(netns=ns, flush_conntrack=False, prefer_cli=backend == "nft-cli")
    fw = make_firewall(kind, cfg)
    fw.init()
    now = time.time()
    singles = []
    for d in decisions(n, 0, now):
        t = time.perf_counter()
        fw.add([d], now)
        singles.append((time.perf_counter() - t) * 1000)
    t = time.perf_counter()
    fw.add(decisions(n, 100_000, now), now)
    batch = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    held = fw.list()
    listing = (time.perf_counter() - t) * 1000
    desired = (
        decisions(n, 0, now) + decisions(n // 2, 100_000, now) + decisions(n // 2, 200_000, now)
    )
    now = time.time()  # the singles took a while: kernel timeouts are counted from now
    t = time.perf_counter()
    res = fw.reconcile(desired, now)
    recon = (time.perf_counter() - t) * 1000
    fw.close()
    # with the conntrack flush the daemon does after each ban (one `conntrack -D` per address)
    cfg_ct = FirewallConfig(netns=ns, flush_conntrack=True, prefer_cli=backend == "nft-cli")
    fw = make_firewall(kind, cfg_ct)
    with_ct = []
    t_all = time.perf_counter()
    for d in decisions(conntrack_n, 300_000, now):
        t = time.perf_counter()
        fw.add([d], now)
        with_ct.append((time.perf_counter() - t) * 1000)
    fw.wait_flushed(60)
    ct_total = (time.perf_counter() - t_all) * 1000
    fw.teardown()
    fw.close()
    print(
        f"{backend:9} single add (n={n}): p50 {statistics.median(singles):.2f} ms"
        f"  p99 {pct(singles, 0.99):.2f} ms  max {max(singles):.2f} ms\n"
        f"{'':9} batch of {n}: {batch:.1f} ms   list of {len(held)}: {listing:.1f} ms   "
        f"reconcile (+{len(res.added)} -{len(res.removed)} ={len(res.kept)}): {recon:.1f} ms\n"
        f"{'':9} single add + conntrack flush (n={conntrack_n}): "
        f"p50 {statistics.median(with_ct):.2f} ms  p99 {pct(with_ct, 0.99):.2f} ms  "
        f"(all {conntrack_n} bans + their flushes done in {ct_total:.0f} ms)"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--conntrack-n", type=int, default=100)
    ap.add_argument("--backends", default="nftables,nft-cli,iptables")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    if not 1 <= args.n <= 50_000:
        print("--n must be 1..50000", file=sys.stderr)
        return 2
    ns = f"sgbench{os.getpid() % 100000}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        for backend in args.backends.split(","):
            run(backend, ns, args.n, args.conntrack_n)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
