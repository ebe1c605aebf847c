"""`sipguard firewall remove` takes out everything sipguard added (ban table, rendered base policy,
secret-domain chains) and leaves a foreign ruleset exactly as it was."""

from __future__ import annotations

import json
from ipaddress import ip_network

from sipguard.cli.main import main
from sipguard.sensor.render import BaseRules, apply
from sipguard.testing.netns import NetLab


def _snapshot(lab: NetLab, host) -> tuple[str, str, str]:
    nft = json.loads(lab.run(host, ["nft", "-j", "list", "ruleset"]).stdout)
    items = [i for i in nft["nftables"] if "metainfo" not in i]
    v4 = lab.run(host, ["iptables", "-S"]).stdout
    v6 = lab.run(host, ["ip6tables", "-S"]).stdout
    return json.dumps(items, sort_keys=True), v4, v6


def test_remove_takes_out_every_sipguard_object(netlab: NetLab, capsys) -> None:
    pbx = netlab.add_host("pbx")
    # someone else's firewall, which must survive untouched
    netlab.run(pbx, ["nft", "add", "table", "inet", "theirs"])
    netlab.run(
        pbx,
        ["nft", "add", "chain", "inet", "theirs", "in", "{ type filter hook input priority 0; }"],
    )
    netlab.run(pbx, ["nft", "add", "rule", "inet", "theirs", "in", "tcp", "dport", "22", "accept"])
    netlab.run(pbx, ["iptables", "-A", "INPUT", "-p", "tcp", "--dport", "80", "-j", "ACCEPT"])
    before = _snapshot(netlab, pbx)

    apply(BaseRules(domains=("pbx.example.net",), trunks=(ip_network("192.0.2.7/32"),)), pbx.name)
    from sipguard.actions import FirewallConfig, make_firewall

    fw = make_firewall("nftables", FirewallConfig(netns=pbx.name, flush_conntrack=False))
    fw.init()
    fw.close()
    during = _snapshot(netlab, pbx)
    assert "sipguard-domain" in during[1] and "sipguard_base" in during[0]

    capsys.readouterr()
    assert main(["firewall", "remove", "--netns", pbx.name]) == 0
    out = capsys.readouterr().out
    assert "sipguard_base" in out and "sipguard-domain" in out
    assert _snapshot(netlab, pbx) == before
