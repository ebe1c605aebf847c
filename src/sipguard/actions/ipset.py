"""iptables + ipset backend, for hosts without nftables.

Two ipsets (`<table>4`, `<table>6`, hash:net with per-entry timeouts) and one own chain
`<TABLE>` in the raw table of iptables and ip6tables, jumped to from the first position of raw
PREROUTING: raw runs before conntrack, so an established UDP flow of a banned source stops too.
Teardown removes only the jump, the chain and the two sets.
"""

from __future__ import annotations

from collections.abc import Sequence

from sipguard.actions.base import Firewall, FirewallConfig, FirewallError, as_network, run_tool
from sipguard.core.alerts import Network

_MAX_LIST_LINES = 5_000_000


class IpsetFirewall(Firewall):
    name = "iptables"

    def __init__(self, cfg: FirewallConfig) -> None:
        super().__init__(cfg)
        self.chain = cfg.table.upper()
        self.sets = {4: f"{cfg.table}4", 6: f"{cfg.table}6"}
        self.tools = {4: "iptables", 6: "ip6tables"}
        self.feeds: list[str] = []

    def feed_set(self, name: str, ver: int) -> str:
        # ipset names are at most 31 characters: 10 + 1 + 15 + 1 (+ 1 for the swap's "t")
        return f"{self.cfg.table[:10]}_{name}{ver}"

    def _run(self, argv: Sequence[str], stdin: str | None = None) -> str:
        return run_tool(list(argv), self.cfg.netns, stdin=stdin)

    def _ok(self, argv: Sequence[str]) -> bool:
        try:
            self._run(argv)
        except FirewallError:
            return False
        return True

    def init(self) -> None:
        for ver, family in ((4, "inet"), (6, "inet6")):
            # timeout 0: entries may carry their own timeout; without one they are permanent
            create = ["ipset", "create", self.sets[ver], "hash:net", "family", family]
            self._run([*create, "timeout", "0", "-exist"])
            ipt = self.tools[ver]
            if not self._ok([ipt, "-w", "-t", "raw", "-n", "-L", self.chain]):
                self._run([ipt, "-w", "-t", "raw", "-N", self.chain])
            self._rules_into_chain(ver)
            jump = ["PREROUTING", "-j", self.chain]
            if not self._ok([ipt, "-w", "-t", "raw", "-C", *jump]):
                self._run([ipt, "-w", "-t", "raw", "-I", "PREROUTING", "1", "-j", self.chain])

    def _rules_into_chain(self, ver: int) -> None:
        ipt = self.tools[ver]
        self._run([ipt, "-w", "-t", "raw", "-F", self.chain])
        for set_name in [self.sets[ver], *(self.feed_set(n, ver) for n in self.feeds)]:
            for rule in self._rules(ver, set_name):
                self._run([ipt, "-w", "-t", "raw", "-A", self.chain, *rule])

    def set_feeds(self, names: Sequence[str]) -> None:
        """One hash:net set per feed and family (the kernel stores CIDRs as ranges), matched
        from the same chain as the bans."""
        old = [n for n in self.feeds if n not in names]
        self.feeds = list(names)
        for name in self.feeds:
            for ver, family in ((4, "inet"), (6, "inet6")):
                create = ["ipset", "create", self.feed_set(name, ver), "hash:net"]
                self._run([*create, "family", family, "maxelem", "1048576", "-exist"])
        for ver in (4, 6):
            self._rules_into_chain(ver)
        for name in old:
            for ver in (4, 6):
                self._ok(["ipset", "destroy", self.feed_set(name, ver)])

    def load_feed(self, name: str, entries: Sequence[str]) -> int:
        """Fill a temporary set, swap it with the live one (atomic in the kernel), drop it."""
        for ver, family in ((4, "inet"), (6, "inet6")):
            live, tmp = self.feed_set(name, ver), self.feed_set(name, ver) + "t"
            lines = [
                f"create {tmp} hash:net family {family} maxelem 1048576 -exist",
                f"flush {tmp}",
            ]
            lines += [f"add {tmp} {e} -exist" for e in entries if (":" in e) == (ver == 6)]
            self._run(["ipset", "restore"], stdin="\n".join(lines) + "\n")
            self._run(["ipset", "swap", tmp, live])
            self._run(["ipset", "destroy", tmp])
        return len(entries)

    def list_feed(self, name: str) -> set[Network]:
        out: set[Network] = set()
        for ver in (4, 6):
            set_name = self.feed_set(name, ver)
            for line in self._run(["ipset", "save", set_name]).splitlines()[:_MAX_LIST_LINES]:
                parts = line.split()
                if len(parts) >= 3 and parts[0] == "add" and parts[1] == set_name:
                    out.add(as_network(parts[2]))
        return out

    def _rules(self, ver: int, set_name: str) -> list[list[str]]:
        match = ["-m", "set", "--match-set", set_name, "src"]
        if self.cfg.all_ports:
            return [[*match, "-j", "DROP"]]
        rules = []
        for proto in ("udp", "tcp"):
            ranges = self.cfg.ports.ranges(proto)
            # multiport takes at most 15 ports, a range counting as two
            for i in range(0, len(ranges), 7):
                chunk = ranges[i : i + 7]
                ports = ",".join(str(lo) if lo == hi else f"{lo}:{hi}" for lo, hi in chunk)
                rules.append(
                    [*match, "-p", proto, "-m", "multiport", "--dports", ports, "-j", "DROP"]
                )
        return rules

    def _apply(self, add: dict[Network, int | None], remove: Sequence[Network]) -> None:
        lines = [f"del {self.sets[n.version]} {n} -exist" for n in dict.fromkeys(remove)]
        for net, secs in add.items():
            # -exist on add updates the timeout of an entry that is already there
            lines.append(f"add {self.sets[net.version]} {net} timeout {secs or 0} -exist")
        if lines:
            self._run(["ipset", "restore"], stdin="\n".join(lines) + "\n")

    def list(self) -> dict[Network, float | None]:
        out: dict[Network, float | None] = {}
        for name in self.sets.values():
            text = self._run(["ipset", "save", name])
            for line in text.splitlines()[:_MAX_LIST_LINES]:
                parts = line.split()
                if len(parts) < 3 or parts[0] != "add" or parts[1] != name:
                    continue
                try:
                    net = as_network(parts[2])
                except ValueError:
                    continue
                left: float | None = None
                if "timeout" in parts[3:-1]:
                    secs = parts[parts.index("timeout", 3) + 1]
                    left = float(secs) if secs.isdigit() and int(secs) > 0 else None
                out[net] = left
        return out

    def _drop_empty_nft_raw(self, ver: int) -> None:
        """iptables-nft creates the raw table on first use; leave none behind if it is empty.

        Only an empty table with ACCEPT policies goes: it has no effect, so even one that
        existed before sipguard is not a loss. iptables-legacy's built-in tables are left alone.
        """
        ipt = self.tools[ver]
        try:
            if "nf_tables" not in self._run([ipt, "--version"]):
                return
            rules = self._run([ipt, "-w", "-t", "raw", "-S"]).split("\n")
        except FirewallError:
            return
        empty = {"-P PREROUTING ACCEPT", "-P OUTPUT ACCEPT", ""}
        if all(line.strip() in empty for line in rules):
            family = "ip" if ver == 4 else "ip6"
            self._ok(["nft", "delete", "table", family, "raw"])

    def teardown(self) -> None:
        for ver in (4, 6):
            ipt = self.tools[ver]
            while self._ok([ipt, "-w", "-t", "raw", "-D", "PREROUTING", "-j", self.chain]):
                pass
            if self._ok([ipt, "-w", "-t", "raw", "-n", "-L", self.chain]):
                self._run([ipt, "-w", "-t", "raw", "-F", self.chain])
                self._run([ipt, "-w", "-t", "raw", "-X", self.chain])
            self._drop_empty_nft_raw(ver)
        # feed sets by prefix: a restarted daemon may not know every feed it once loaded
        prefix = f"{self.cfg.table[:10]}_"
        listed = self._run(["ipset", "list", "-n"]).split() if self._ok(["ipset", "-v"]) else []
        feed_sets = [n for n in listed if n.startswith(prefix)]
        for name in [*self.sets.values(), *feed_sets]:
            if self._ok(["ipset", "list", "-n", name]):
                self._run(["ipset", "destroy", name])
