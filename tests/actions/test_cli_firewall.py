"""`sipguard firewall list / remove` against a namespace's real kernel state."""

from __future__ import annotations

import json
import re
import time
from ipaddress import ip_network

import pytest

from sipguard.actions import FirewallConfig, make_firewall
from sipguard.cli.main import main
from sipguard.core.alerts import Action, Decision


@pytest.mark.netns
@pytest.mark.parametrize("backend", ["nftables", "iptables"])
def test_list_and_remove(netlab, capsys, backend):
    pbx = netlab.add_host("pbx")
    fw = make_firewall(backend, FirewallConfig(netns=pbx.name, flush_conntrack=False))
    fw.init()
    now = time.time()
    fw.add(
        [
            Decision(ip_network("198.51.100.7"), Action.BAN, "r", "x", now, now + 600),
            Decision(ip_network("2001:db8::/64"), Action.BAN, "r", "x", now, None),
        ],
        now,
    )
    fw.close()
    args = ["firewall", "list", "--backend", backend, "--netns", pbx.name]
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    bans = {b["network"]: b["seconds_left"] for b in out["bans"]}
    assert bans["2001:db8::/64"] is None and 590 <= bans["198.51.100.7/32"] <= 600
    assert main(args) == 0
    text = capsys.readouterr().out
    assert (
        re.search(r"198.51.100.7/32  (9m5\ds|10m)", text)
        and "permanent" in text
        and "2 banned" in text
    )

    assert main(["firewall", "remove", "--backend", backend, "--netns", pbx.name]) == 0
    capsys.readouterr()
    assert main(args) == 2  # nothing of ours is left to list
    assert "is sipguard's table there?" in capsys.readouterr().err


def test_bad_table_is_one_line_error(capsys):
    assert main(["firewall", "list", "--table", "x;y"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--table" in err
