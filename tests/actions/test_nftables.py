"""nftables backend against the real kernel, inside namespaces the test creates."""

from __future__ import annotations

import json
import time
from ipaddress import ip_network

import pytest

from sipguard.actions import FirewallConfig, FirewallError, NftablesFirewall, Ports
from sipguard.core.alerts import Action, Decision

pytestmark = pytest.mark.netns

FOREIGN = """
table inet foreign {
  set keep { type ipv4_addr; elements = { 192.0.2.200 } }
  chain input {
    type filter hook input priority 0; policy accept;
    ct state established,related accept
    ip saddr @keep drop
  }
}
"""


def ban(net: str, now: float, secs: float | None = 600) -> Decision:
    expires = None if secs is None else now + secs
    return Decision(ip_network(net), Action.BAN, "test", "test ban", now, expires)


def ruleset(lab, host) -> list[dict]:
    data = json.loads(lab.run(host, ["nft", "-j", "list", "ruleset"]).stdout)
    return [x for x in data["nftables"] if "metainfo" not in x]


def set_elems(lab, host, name: str) -> dict[str, dict]:
    data = json.loads(lab.run(host, ["nft", "-j", "list", "set", "inet", "sipguard", name]).stdout)
    out = {}
    for item in data["nftables"]:
        for e in item.get("set", {}).get("elem", []):
            inner = e["elem"] if isinstance(e, dict) and "elem" in e else {"val": e}
            val = inner["val"]
            key = val if isinstance(val, str) else f"{val['prefix']['addr']}/{val['prefix']['len']}"
            out[key] = inner
    return out


@pytest.fixture(params=[False, True], ids=["libnftables", "nft-cli"])
def prefer_cli(request) -> bool:
    return request.param


def test_init_ban_list_reconcile_teardown(netlab, prefer_cli):
    pbx = netlab.add_host("pbx")
    netlab.run(pbx, ["nft", "-f", "-"], input=FOREIGN)
    before = ruleset(netlab, pbx)
    fw = NftablesFirewall(FirewallConfig(netns=pbx.name, prefer_cli=prefer_cli))
    assert fw.via == ("nft" if prefer_cli else "libnftables")
    fw.init()
    fw.init()  # idempotent: no duplicate rules
    chain = json.loads(
        netlab.run(pbx, ["nft", "-j", "list", "chain", "inet", "sipguard", "prerouting"]).stdout
    )
    rules = [x["rule"] for x in chain["nftables"] if "rule" in x]
    assert len(rules) == 8  # {ban4, ban4net, ban6, ban6net} x {udp, tcp}
    hook = next(x["chain"] for x in chain["nftables"] if "chain" in x)
    assert hook["hook"] == "prerouting" and hook["prio"] < -200  # before conntrack

    now = time.time()
    fw.add(
        [
            ban("198.51.100.7", now, 600),
            ban("2001:db8:9::5", now, 1200),
            ban("192.0.2.0/24", now, None),
            ban("192.0.2.128/25", now, 60),
        ],
        now,
    )
    v4, v6, nets = (set_elems(netlab, pbx, n) for n in ("ban4", "ban6", "ban4net"))
    assert v4["198.51.100.7"]["timeout"] == 600
    assert v6["2001:db8:9::5"]["timeout"] == 1200
    assert list(nets) == ["192.0.2.0/24"]  # the /25 inside it is covered, not a conflict
    assert "timeout" not in nets["192.0.2.0/24"]  # permanent
    held = fw.list()
    assert held[ip_network("198.51.100.7/32")] == pytest.approx(600, abs=3)
    assert held[ip_network("192.0.2.0/24")] is None

    fw.init()  # a restart re-inits: the bans stay
    assert set(fw.list()) == set(held)

    # re-ban with a longer timeout (escalation) really changes the kernel timeout
    fw.add([ban("198.51.100.7", now, 7200)], now)
    assert set_elems(netlab, pbx, "ban4")["198.51.100.7"]["timeout"] == 7200

    desired = [
        ban("198.51.100.7", now, 7200),
        ban("203.0.113.99", now, 300),
        ban("2001:db8:77::/64", now, 300),
    ]
    res = fw.reconcile(desired, now)
    assert set(res.added) == {ip_network("203.0.113.99/32"), ip_network("2001:db8:77::/64")}
    assert set(res.removed) == {ip_network("2001:db8:9::5/128"), ip_network("192.0.2.0/24")}
    assert res.kept == (ip_network("198.51.100.7/32"),)
    assert set(fw.list()) == {d.network for d in desired}
    again = fw.reconcile(desired, now)
    assert again.added == () and again.removed == () and len(again.kept) == 3

    fw.remove([ip_network("203.0.113.99"), ip_network("10.9.9.9")])  # absent one is fine
    assert ip_network("203.0.113.99/32") not in fw.list()

    fw.teardown()
    fw.teardown()  # nothing left to remove: still fine
    assert ruleset(netlab, pbx) == before
    fw.close()


def test_kernel_errors_are_firewall_errors(netlab, prefer_cli):
    pbx = netlab.add_host("pbx")
    fw = NftablesFirewall(FirewallConfig(netns=pbx.name, prefer_cli=prefer_cli))
    with pytest.raises(FirewallError, match="No such file or directory"):
        fw.list()  # no table yet
    netlab.run(
        pbx, ["nft", "add table inet sipguard; add set inet sipguard ban4 { type ipv4_addr; }"]
    )  # a set of ours with the wrong flags
    with pytest.raises(FirewallError):
        fw.init()
    fw.close()


@pytest.mark.slow
def test_existing_udp_flow_stops_and_other_ports_flow(pbx_attacker, tmp_path, flow_cls):
    lab, pbx, atk = pbx_attacker
    lab.run(pbx, ["nft", "-f", "-"], input=FOREIGN)  # an established-accept rule in input
    fw = NftablesFirewall(FirewallConfig(netns=pbx.name))
    fw.init()
    flow = flow_cls(lab, pbx, atk, tmp_path, [5060, 5070])
    flow.wait_for(5060, 20)
    assert "dport=5060" in flow.conntrack_from(atk.ip)  # the flow is tracked before the ban

    now = time.time()
    fw.add([ban(atk.ip, now, 600)], now)
    assert fw.wait_flushed(5)
    time.sleep(0.3)  # datagrams in flight drain
    c1 = flow.counts()
    time.sleep(0.7)
    c2 = flow.counts()
    assert c2[5060] == c1[5060], "banned source still reaches the SIP port"
    assert c2[5070] > c1[5070] + 20, "an unprotected port must keep flowing"
    assert "dport=5060" not in flow.conntrack_from(atk.ip)  # flushed, and not re-created
    assert fw._flusher is not None and fw._flusher.via == "ctnetlink"
    assert fw._flusher.flushed >= 1  # the kernel confirmed the delete over ctnetlink
    counters = lab.run(pbx, ["nft", "list", "chain", "inet", "sipguard", "prerouting"]).stdout
    assert "counter packets 0 " in counters and "drop" in counters
    assert any(int(w) > 50 for w in counters.split() if w.isdigit())

    fw.remove([ip_network(atk.ip)])
    flow.wait_for(5060, c2[5060] + 20)  # unban restores traffic
    fw.teardown()
    fw.close()


def test_all_ports_and_custom_ports(netlab):
    pbx = netlab.add_host("pbx")
    fw = NftablesFirewall(FirewallConfig(netns=pbx.name, all_ports=True))
    fw.init()
    text = netlab.run(pbx, ["nft", "list", "chain", "inet", "sipguard", "prerouting"]).stdout
    assert "dport" not in text and text.count("drop") == 4
    fw2 = NftablesFirewall(FirewallConfig(netns=pbx.name, ports=Ports(udp="5080", tcp="")))
    fw2.init()  # re-init with other ports replaces the rules atomically
    text = netlab.run(pbx, ["nft", "list", "chain", "inet", "sipguard", "prerouting"]).stdout
    assert text.count("udp dport 5080") == 4 and "tcp" not in text
    fw2.teardown()
    fw.close()
    fw2.close()
