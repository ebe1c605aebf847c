"""iptables + ipset backend against the real kernel, inside namespaces the test creates."""

from __future__ import annotations

import time
from ipaddress import ip_network

import pytest

from sipguard.actions import FirewallConfig, FirewallError, IpsetFirewall
from sipguard.actions.tools import flush_conntrack
from sipguard.core.alerts import Action, Decision

pytestmark = pytest.mark.netns


def ban(net: str, now: float, secs: float | None = 600) -> Decision:
    expires = None if secs is None else now + secs
    return Decision(ip_network(net), Action.BAN, "test", "test ban", now, expires)


def dump(lab, host) -> tuple[str, str, str]:
    v4 = lab.run(host, ["iptables-save"]).stdout
    v6 = lab.run(host, ["ip6tables-save"]).stdout
    sets = lab.run(host, ["ipset", "list", "-n"]).stdout
    strip = lambda t: "\n".join(x for x in t.splitlines() if not x.startswith("#"))  # noqa: E731
    return strip(v4), strip(v6), sets


def test_ban_unban_reconcile_teardown(netlab):
    pbx = netlab.add_host("pbx")
    netlab.run(pbx, ["ipset", "create", "foreign", "hash:ip"])
    netlab.run(
        pbx, ["iptables", "-t", "raw", "-A", "PREROUTING", "-s", "192.0.2.200", "-j", "DROP"]
    )
    netlab.run(
        pbx, ["iptables", "-A", "INPUT", "-m", "state", "--state", "ESTABLISHED", "-j", "ACCEPT"]
    )
    before = dump(netlab, pbx)
    fw = IpsetFirewall(FirewallConfig(netns=pbx.name))
    fw.init()
    fw.init()  # idempotent: one jump, same rules
    v4 = netlab.run(pbx, ["iptables", "-t", "raw", "-S"]).stdout
    assert v4.count("-j SIPGUARD") == 1
    assert v4.splitlines().index("-A PREROUTING -j SIPGUARD") < v4.splitlines().index(
        "-A PREROUTING -s 192.0.2.200/32 -j DROP"
    )  # first position
    assert "--match-set sipguard4 src" in v4 and "5060:5061,4569" in v4
    assert "--match-set sipguard6 src" in netlab.run(pbx, ["ip6tables", "-t", "raw", "-S"]).stdout

    now = time.time()
    fw.add(
        [
            ban("198.51.100.7", now, 600),
            ban("2001:db8:9::5", now, 900),
            ban("192.0.2.0/24", now, None),
        ],
        now,
    )
    held = fw.list()
    assert held[ip_network("198.51.100.7/32")] == pytest.approx(600, abs=3)
    assert held[ip_network("2001:db8:9::5/128")] == pytest.approx(900, abs=3)
    assert held[ip_network("192.0.2.0/24")] is None
    fw.add([ban("198.51.100.7", now, 7200)], now)  # escalation updates the timeout
    assert fw.list()[ip_network("198.51.100.7/32")] == pytest.approx(7200, abs=3)

    res = fw.reconcile([ban("198.51.100.7", now, 7200), ban("203.0.113.9", now, 60)], now)
    assert res.added == (ip_network("203.0.113.9/32"),)
    assert set(res.removed) == {ip_network("2001:db8:9::5/128"), ip_network("192.0.2.0/24")}
    fw.remove([ip_network("203.0.113.9"), ip_network("10.1.1.1")])
    assert set(fw.list()) == {ip_network("198.51.100.7/32")}

    fw.teardown()
    fw.teardown()
    assert dump(netlab, pbx) == before
    fw.close()


@pytest.mark.slow
def test_existing_flow_stops(pbx_attacker, tmp_path, flow_cls):
    lab, pbx, atk = pbx_attacker
    # the usual stateful input rule: it also turns conntrack on in this namespace
    lab.run(pbx, ["iptables", "-A", "INPUT", "-m", "conntrack", "--ctstate",
                  "ESTABLISHED,RELATED", "-j", "ACCEPT"])  # fmt: skip
    # conntrack flushing off here, so the `conntrack` tool fallback can be checked by hand
    fw = IpsetFirewall(FirewallConfig(netns=pbx.name, flush_conntrack=False))
    fw.init()
    flow = flow_cls(lab, pbx, atk, tmp_path, [5060, 5070])
    flow.wait_for(5060, 20)
    now = time.time()
    fw.add([ban(atk.ip, now, 600)], now)
    time.sleep(0.3)
    c1 = flow.counts()
    time.sleep(0.7)
    c2 = flow.counts()
    assert c2[5060] == c1[5060] and c2[5070] > c1[5070] + 20
    assert "dport=5060" in flow.conntrack_from(atk.ip)  # dropped in raw, the entry lingers
    assert flush_conntrack([ip_network(f"{atk.ip}/24", strict=False)], pbx.name) == 1
    assert "dport=5060" not in flow.conntrack_from(atk.ip)
    fw.remove([ip_network(atk.ip)])
    flow.wait_for(5060, c2[5060] + 20)
    fw.teardown()
    fw.close()


def test_errors_name_the_tool(netlab):
    pbx = netlab.add_host("pbx")
    fw = IpsetFirewall(FirewallConfig(netns=pbx.name))
    with pytest.raises(FirewallError, match="ipset"):
        fw.list()
