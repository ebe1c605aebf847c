"""The sensor's own kernel rules: queue SIP to userspace, with `bypass` (fail-open).

Preferred: one nft table, `inet sipguard_sensor`, whose rules end in `queue num N bypass`.
Kernels built without the native nft queue expression (nft_queue) answer "No such file or
directory" to that rule; there the same rules go in through iptables-nft and ip6tables-nft
(the xt NFQUEUE target with --queue-bypass) in chains of our own, `sipguard-sensor-in` and
`sipguard-sensor-out`, jumped to first from INPUT and OUTPUT. The inet table stays in both modes:
its rule references conntrack, which makes the kernel reassemble IP fragments before the queue.
"""

from __future__ import annotations

from typing import Any

from sipguard.actions import FirewallError, run_tool
from sipguard.actions.libnft import NftRunner
from sipguard.sensor.config import SensorConfig

__all__ = ["CHAIN_IN", "CHAIN_OUT", "TABLE", "QueueRules"]

TABLE = "sipguard_sensor"
CHAIN_IN, CHAIN_OUT = "sipguard-sensor-in", "sipguard-sensor-out"
_IPT = ("iptables", "ip6tables")


def _match(left: dict[str, Any], right: Any, op: str = "==") -> dict[str, Any]:
    return {"match": {"op": op, "left": left, "right": right}}


def _ports(ports: list[int]) -> Any:
    return ports[0] if len(ports) == 1 else {"set": ports}


class QueueRules:
    def __init__(self, config: SensorConfig, netns: str | None = None) -> None:
        self.config = config
        self.netns = netns
        self.mode = ""  # "nft" or "iptables" once installed
        self.in_ports = sorted({*config.sip_ports, *config.tls_ports})
        self.out_ports = sorted(config.sip_ports)

    def table_commands(self, with_queue: bool) -> list[dict[str, Any]]:
        """One nft JSON batch that (re)creates `inet sipguard_sensor`."""
        t = {"family": "inet", "table": TABLE}
        tbl = {"family": "inet", "name": TABLE}
        first, last = self.config.queue, self.config.queue + self.config.workers - 1
        # several workers: the kernel spreads packets over the queues by a hash of the address
        # pair (symmetric), so one source's packets, both ways, always meet the same worker
        num: Any = first if first == last else {"range": [first, last]}
        queue = {"queue": {"num": num, "flags": ["bypass"]}}
        l4 = _match({"meta": {"key": "l4proto"}}, {"set": ["udp", "tcp"]})
        ct = _match({"ct": {"key": "state"}}, ["invalid"], "in")
        cmds: list[dict[str, Any]] = [
            {"add": {"table": tbl}},
            {"delete": {"table": tbl}},
            {"add": {"table": tbl}},
            {"add": {"chain": {**t, "name": "input", "type": "filter", "hook": "input",
                               "prio": -5, "policy": "accept"}}},
            {"add": {"chain": {**t, "name": "output", "type": "filter", "hook": "output",
                               "prio": -5, "policy": "accept"}}},
            {"add": {"rule": {**t, "chain": "input", "expr": [ct, {"counter": None}]}}},
        ]  # fmt: skip
        if with_queue:
            for chain, field, ports in (("input", "dport", self.in_ports),
                                        ("output", "sport", self.out_ports)):  # fmt: skip
                port_match = _match({"payload": {"protocol": "th", "field": field}}, _ports(ports))
                expr = [l4, port_match, {"counter": None}, queue]
                cmds.append({"add": {"rule": {**t, "chain": chain, "expr": expr}}})
        return cmds

    def iptables_rules(self) -> list[tuple[str, list[str]]]:
        """(chain, rule args) for the iptables fallback, per protocol and direction."""
        first, last = self.config.queue, self.config.queue + self.config.workers - 1
        target = (
            ["--queue-num", str(first)] if first == last else ["--queue-balance", f"{first}:{last}"]
        )
        q = ["-j", "NFQUEUE", *target, "--queue-bypass"]
        out = []
        for proto in ("udp", "tcp"):
            ins = ",".join(map(str, self.in_ports))
            outs = ",".join(map(str, self.out_ports))
            out.append((CHAIN_IN, ["-p", proto, "-m", "multiport", "--dports", ins, *q]))
            out.append((CHAIN_OUT, ["-p", proto, "-m", "multiport", "--sports", outs, *q]))
        return out

    def queued_in(self) -> int | None:
        """Packets the kernel's inbound queue rules have matched so far (None if unknown).

        With fail-open, a packet that found the queue full is accepted without a verdict and
        counted nowhere else; matched minus judged is therefore the count of those bypasses.
        """
        try:
            if self.mode == "nft":
                runner = NftRunner(self.netns)
                try:
                    out = runner.run(
                        [{"list": {"chain": {"family": "inet", "table": TABLE, "name": "input"}}}]
                    )
                finally:
                    runner.close()
                total = 0
                for item in out.get("nftables", []):
                    exprs = item.get("rule", {}).get("expr", []) if isinstance(item, dict) else []
                    if any("queue" in e for e in exprs):
                        total += sum(e["counter"]["packets"] for e in exprs if "counter" in e)
                return total
            if self.mode == "iptables":
                total = 0
                for tool in _IPT:
                    text = run_tool([tool, "-w", "-S", CHAIN_IN, "-v"], self.netns)
                    for line in text.splitlines():
                        words = line.split()
                        if "-c" in words and "NFQUEUE" in words:
                            total += int(words[words.index("-c") + 1])
                return total
        except (FirewallError, KeyError, TypeError, ValueError):
            return None
        return None

    def install(self) -> str:
        runner = NftRunner(self.netns)
        try:
            try:
                runner.run(self.table_commands(with_queue=True))
                self.mode = "nft"
            except FirewallError as exc:
                if "No such file or directory" not in str(exc):
                    raise
                runner.run(self.table_commands(with_queue=False))
                self._install_iptables()
                self.mode = "iptables"
        finally:
            runner.close()
        return self.mode

    def _install_iptables(self) -> None:
        self._remove_iptables()
        for tool in _IPT:
            for chain, hook in ((CHAIN_IN, "INPUT"), (CHAIN_OUT, "OUTPUT")):
                run_tool([tool, "-w", "-N", chain], self.netns)
                run_tool([tool, "-w", "-I", hook, "1", "-j", chain], self.netns)
            for chain, args in self.iptables_rules():
                run_tool([tool, "-w", "-A", chain, *args], self.netns)

    def _remove_iptables(self) -> None:
        for tool in _IPT:
            for chain, hook in ((CHAIN_IN, "INPUT"), (CHAIN_OUT, "OUTPUT")):
                for argv in (["-D", hook, "-j", chain], ["-F", chain], ["-X", chain]):
                    try:
                        run_tool([tool, "-w", *argv], self.netns)
                    except FirewallError:
                        pass  # not there: nothing to remove

    def remove(self) -> None:
        runner = NftRunner(self.netns)
        try:
            runner.run(
                [{"add": {"table": {"family": "inet", "name": TABLE}}},
                 {"delete": {"table": {"family": "inet", "name": TABLE}}}]
            )  # fmt: skip
        finally:
            runner.close()
        self._remove_iptables()
        self.mode = ""
