"""nftables backend: an own `table inet <table>`, v4/v6 sets with kernel timeouts, one drop chain.

    table inet sipguard {
      set ban4    { type ipv4_addr; flags timeout; }           single addresses
      set ban6    { type ipv6_addr; flags timeout; }
      set ban4net { type ipv4_addr; flags interval,timeout; }  CIDRs (kernel refuses overlaps)
      set ban6net { type ipv6_addr; flags interval,timeout; }
      chain prerouting {
        type filter hook prerouting priority -300; policy accept;
        ip saddr @ban4 counter drop                  all_ports (the daemon's default scope)
        ip saddr @ban4 meta l4proto udp th dport { 5060-5061, 4569 } counter drop   scope "ports"
        ...
      }
    }

Priority -300 runs before conntrack (-200) and before any filter-table "ct state established
accept", so an existing UDP flow from a banned source stops at the next packet. Addresses and
CIDRs live in separate sets so adding a single address never needs the interval cache, which keeps
a single ban at one short netlink transaction.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from ipaddress import ip_address
from typing import Any

from sipguard.actions.base import (
    Firewall,
    FirewallConfig,
    FirewallError,
    as_network,
)
from sipguard.actions.libnft import NftRunner
from sipguard.core.alerts import Network
from sipguard.policy.reconcile import collapse

SINGLE = {4: "ban4", 6: "ban6"}
NETS = {4: "ban4net", 6: "ban6net"}
_TYPES = {4: "ipv4_addr", 6: "ipv6_addr"}
_PROTO = {4: "ip", 6: "ip6"}
CHAIN = "prerouting"
PRIORITY = -300
FEED_CHAIN = "feeds"  # blocklist feeds: own chain, so init()'s flush of the ban rules spares it
FEED_PREFIX = "feed_"
_ENTRY = re.compile(r"[0-9a-fA-F.:]{2,45}(/[0-9]{1,3})?")


def feed_sets(name: str) -> dict[tuple[int, bool], str]:
    """(family, holds CIDRs) -> set name. Addresses go to a plain hash set: nft computes no
    intervals for it, which makes a 95,000-address load ~3x faster than one interval set."""
    return {
        (ver, nets): f"{FEED_PREFIX}{name}_{ver}{'n' if nets else ''}"
        for ver in (4, 6)
        for nets in (False, True)
    }


class NftablesFirewall(Firewall):
    name = "nftables"

    def __init__(self, cfg: FirewallConfig) -> None:
        super().__init__(cfg)
        self.nft = NftRunner(cfg.netns, prefer_cli=cfg.prefer_cli)

    @property
    def via(self) -> str:
        """ "libnftables" or "nft": which path carries the transactions."""
        return self.nft.via

    def _obj(self, **kw: Any) -> dict[str, Any]:
        return {"family": "inet", "table": self.cfg.table, **kw}

    def init(self) -> None:
        table = {"family": "inet", "name": self.cfg.table}
        cmds: list[dict[str, Any]] = [{"add": {"table": table}}]
        for ver in (4, 6):
            cmds.append(
                {"add": {"set": self._obj(name=SINGLE[ver], type=_TYPES[ver], flags=["timeout"])}}
            )
            cmds.append(
                {
                    "add": {
                        "set": self._obj(
                            name=NETS[ver], type=_TYPES[ver], flags=["interval", "timeout"]
                        )
                    }
                }
            )
        chain = self._obj(name=CHAIN, type="filter", hook="prerouting", prio=PRIORITY)
        chain["policy"] = "accept"
        cmds.append({"add": {"chain": chain}})
        # flush + re-add in the same transaction: idempotent, and a changed port list applies
        cmds.append({"flush": {"chain": self._obj(name=CHAIN)}})
        cmds.extend({"add": {"rule": self._obj(chain=CHAIN, expr=e)}} for e in self._rule_exprs())
        self.nft.run(cmds)

    def set_feeds(self, names: Sequence[str]) -> None:
        """Feed sets have no timeouts (a feed says when an entry goes), CIDRs in an interval set;
        drop rules live in the `feeds` chain, rebuilt here in the same transaction."""
        want = {s for n in names for s in feed_sets(n).values()}
        old = [s for s in self._set_names() if s.startswith(FEED_PREFIX) and s not in want]
        chain = self._obj(name=FEED_CHAIN, type="filter", hook="prerouting", prio=PRIORITY + 1)
        chain["policy"] = "accept"
        cmds: list[dict[str, Any]] = [
            {"add": {"table": {"family": "inet", "name": self.cfg.table}}},
            {"add": {"chain": chain}},
            {"flush": {"chain": self._obj(name=FEED_CHAIN)}},
        ]
        sets: dict[int, list[str]] = {4: [], 6: []}
        for n in names:
            for (ver, nets), set_name in feed_sets(n).items():
                new = self._obj(name=set_name, type=_TYPES[ver])
                if nets:
                    new["flags"] = ["interval"]
                cmds.append({"add": {"set": new}})
                sets[ver].append(set_name)
        exprs = self._rule_exprs(sets)
        cmds.extend({"add": {"rule": self._obj(chain=FEED_CHAIN, expr=e)}} for e in exprs)
        cmds.extend({"delete": {"set": self._obj(name=s)}} for s in old)
        self.nft.run(cmds)

    def load_feed(self, name: str, entries: Sequence[str]) -> int:
        """Flush and refill in ONE transaction: no moment where the feed's set is empty.
        nft's own syntax here (see NftRunner.run_text), so every entry is checked to be an
        address or ADDR/LEN spelled with address characters only."""
        by_set: dict[tuple[int, bool], list[str]] = {k: [] for k in feed_sets(name)}
        for text in entries:
            if not _ENTRY.fullmatch(text):
                raise FirewallError(f"feed {name}: not an address or network: {text[:60]!r}")
            by_set[6 if ":" in text else 4, "/" in text].append(text)
        lines = []
        for key, set_name in feed_sets(name).items():
            where = f"inet {self.cfg.table} {set_name}"
            lines.append(f"flush set {where}")
            if by_set[key]:
                lines.append(f"add element {where} {{ {', '.join(by_set[key])} }}")
        self.nft.run_text("\n".join(lines) + "\n")
        return len(entries)

    def list_feed(self, name: str) -> set[Network]:
        return set(self._list_sets(list(feed_sets(name).values())))

    def _set_names(self) -> list[str]:
        try:
            data = self.nft.run([{"list": {"sets": {"family": "inet"}}}])
        except FirewallError:
            return []
        out = []
        for item in data.get("nftables", []):
            s = item.get("set") if isinstance(item, dict) else None
            if isinstance(s, dict) and s.get("table") == self.cfg.table:
                out.append(str(s.get("name")))
        return out

    def _rule_exprs(self, sets: dict[int, list[str]] | None = None) -> list[list[dict[str, Any]]]:
        """One drop rule per set (per port range when the scope is "ports")."""
        sets = sets or {ver: [SINGLE[ver], NETS[ver]] for ver in (4, 6)}
        rules: list[list[dict[str, Any]]] = []
        for ver in (4, 6):
            for set_name in sets[ver]:
                src = {
                    "match": {
                        "op": "==",
                        "left": {"payload": {"protocol": _PROTO[ver], "field": "saddr"}},
                        "right": f"@{set_name}",
                    }
                }
                tail = [{"counter": None}, {"drop": None}]
                if self.cfg.all_ports:
                    rules.append([src, *tail])
                    continue
                for proto in ("udp", "tcp"):
                    ranges = self.cfg.ports.ranges(proto)
                    if not ranges:
                        continue
                    items: list[Any] = [
                        lo if lo == hi else {"range": [lo, hi]} for lo, hi in ranges
                    ]
                    port = {
                        "match": {
                            "op": "==",
                            "left": {"payload": {"protocol": "th", "field": "dport"}},
                            "right": {"set": items},
                        }
                    }
                    l4 = {
                        "match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": proto}
                    }
                    rules.append([src, l4, port, *tail])
        return rules

    def _elem(self, net: Network, timeout: int | None) -> dict[str, Any]:
        val: Any
        if net.prefixlen == net.max_prefixlen:
            val = str(net.network_address)
        else:
            val = {"prefix": {"addr": str(net.network_address), "len": net.prefixlen}}
        if timeout is None:
            return {"elem": {"val": val}}
        return {"elem": {"val": val, "timeout": timeout}}

    def _set_for(self, net: Network) -> str:
        table = SINGLE if net.prefixlen == net.max_prefixlen else NETS
        return table[net.version]

    def _element_cmd(self, verb: str, set_name: str, elems: list[Any]) -> dict[str, Any]:
        return {verb: {"element": self._obj(name=set_name, elem=elems)}}

    def _apply(self, add: dict[Network, int | None], remove: Sequence[Network]) -> None:
        nets_touched = any(n.prefixlen != n.max_prefixlen for n in [*add, *remove])
        held_nets = self._list_sets(list(NETS.values())) if nets_touched else {}
        by_set_add: dict[str, list[tuple[Network, int | None]]] = {}
        by_set_del: dict[str, list[Network]] = {}
        cidrs = [n for n in add if n.prefixlen != n.max_prefixlen]
        widest = collapse([*cidrs, *held_nets])
        for net, secs in add.items():
            if net.prefixlen != net.max_prefixlen and net not in widest:
                continue  # a wider network already held (or sent) covers it
            by_set_add.setdefault(self._set_for(net), []).append((net, secs))
        for held in held_nets:
            if held not in widest:  # swallowed by a wider CIDR in this batch
                by_set_del.setdefault(self._set_for(held), []).append(held)
        for net in remove:
            if net.prefixlen == net.max_prefixlen or net in held_nets:
                by_set_del.setdefault(self._set_for(net), []).append(net)
        cmds: list[dict[str, Any]] = []
        for set_name, nets in by_set_del.items():
            uniq = list(dict.fromkeys(nets))
            if set_name in SINGLE.values():
                # add-then-delete makes the delete valid whether or not the element is there
                cmds.append(self._element_cmd("add", set_name, [self._elem(n, 1) for n in uniq]))
            cmds.append(self._element_cmd("delete", set_name, [self._elem(n, None) for n in uniq]))
        for set_name, items in by_set_add.items():
            elems = [self._elem(n, s) for n, s in items]
            cmds.append(self._element_cmd("add", set_name, elems))
            # delete + add again so a changed timeout (escalation, permanent) really applies:
            # re-adding an existing element keeps its old timeout on older kernels
            cmds.append(
                self._element_cmd("delete", set_name, [self._elem(n, None) for n, _ in items])
            )
            cmds.append(self._element_cmd("add", set_name, elems))
        if cmds:
            self.nft.run(cmds)

    def _list_sets(self, names: list[str]) -> dict[Network, float | None]:
        out: dict[Network, float | None] = {}
        for name in names:
            data = self.nft.run([{"list": {"set": self._obj(name=name)}}])
            out.update(_elements(data))
        return out

    def list(self) -> dict[Network, float | None]:
        data = self.nft.run([{"list": {"table": {"family": "inet", "name": self.cfg.table}}}])
        ours = {*SINGLE.values(), *NETS.values()}
        out: dict[Network, float | None] = {}
        for item in data.get("nftables", []):
            s = item.get("set") if isinstance(item, dict) else None
            if isinstance(s, dict) and s.get("name") in ours:
                out.update(_elements({"nftables": [item]}))
        return out

    def exists(self) -> bool:
        try:
            data = self.nft.run([{"list": {"tables": {"family": "inet"}}}])
        except FirewallError:
            return False
        for item in data.get("nftables", []):
            t = item.get("table") if isinstance(item, dict) else None
            if (
                isinstance(t, dict)
                and t.get("family") == "inet"
                and t.get("name") == self.cfg.table
            ):
                return True
        return False

    def teardown(self) -> None:
        # add-then-delete: removes our table if present, succeeds if it is not; touches nothing else
        table = {"family": "inet", "name": self.cfg.table}
        self.nft.run([{"add": {"table": table}}, {"delete": {"table": table}}])

    def close(self) -> None:
        self.nft.close()
        super().close()


def _elements(data: dict[str, Any]) -> dict[Network, float | None]:
    out: dict[Network, float | None] = {}
    for item in data.get("nftables", []):
        s = item.get("set") if isinstance(item, dict) else None
        if not isinstance(s, dict):
            continue
        for e in s.get("elem", []) or []:
            val, left = _value(e)
            if val is not None:
                out[val] = left
    return out


def _value(e: Any) -> tuple[Network | None, float | None]:
    left: float | None = None
    if isinstance(e, dict) and "elem" in e:
        inner = e["elem"]
        if isinstance(inner, dict):
            exp = inner.get("expires")
            if isinstance(exp, int | float):
                left = float(exp)
            elif isinstance(inner.get("timeout"), int | float):
                left = float(inner["timeout"])
            e = inner.get("val")
    try:
        if isinstance(e, str):
            return as_network(e), left
        if isinstance(e, dict) and "prefix" in e:
            p = e["prefix"]
            return as_network(f"{p['addr']}/{int(p['len'])}"), left
        if isinstance(e, dict) and "range" in e:
            lo, hi = e["range"]
            # only prefixes are ever added; a range means someone else edited our set
            a, b = ip_address(str(lo)), ip_address(str(hi))
            if a == b:
                return as_network(str(a)), left
    except (ValueError, KeyError, TypeError):
        pass
    return None, left
