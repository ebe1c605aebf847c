"""Kernel-only mode: the rendered rules, and the same rules applied in a namespace under traffic."""

from __future__ import annotations

import argparse
import sys
from ipaddress import ip_network
from pathlib import Path

import pytest
from sensorlab import DOMAIN, Lab

from sipguard.cli.main import CliError
from sipguard.config.errors import ConfigError
from sipguard.sensor.render import (
    BaseRules,
    apply,
    cmd_render,
    read_rtp_range,
    render_iptables,
    render_nft,
)

RULES = BaseRules(
    domains=(DOMAIN,),
    trunks=(ip_network("198.51.100.2/32"), ip_network("2001:db8:2::/64")),
    known=(ip_network("192.168.10.0/24"),),
    rtp=(12000, 12999),
)


def test_rtp_range_from_rtp_conf(tmp_path: Path) -> None:
    assert read_rtp_range(str(tmp_path)) == (10000, 20000)  # Asterisk's defaults
    (tmp_path / "rtp.conf").write_text("[general]\nrtpstart=12000 ; comment\nrtpend => 12999\n")
    assert read_rtp_range(str(tmp_path)) == (12000, 12999)
    (tmp_path / "rtp.conf").write_text("[general]\nrtpstart=abc\n")
    with pytest.raises(ConfigError) as err:
        read_rtp_range(str(tmp_path))
    assert err.value.key == "general.rtpstart" and err.value.file.endswith("rtp.conf")


def test_rendered_nft_policy() -> None:
    text = render_nft(RULES)
    assert "elements = { 198.51.100.2/32 }" in text and "elements = { 2001:db8:2::/64 }" in text
    assert "udp dport 12000-12999 accept" in text
    assert "udp dport 4569 counter drop" in text and "tcp dport 5038 counter drop" in text
    # trunks by address: no conntrack state anywhere in the policy
    assert "ct state" not in text and "established" not in text


def test_rendered_string_match_rules() -> None:
    v4, v6 = render_iptables(RULES, 4), render_iptables(RULES, 6)
    assert '-m string --algo bm --icase --string "@secret.example.com" -j RETURN' in v4
    for method in ("REGISTER", "INVITE", "OPTIONS"):
        assert f'--from 28 --to 52 --string "{method} "' in v4
        assert f'--from 48 --to 72 --string "{method} "' in v6
    assert "-A sipguard-domain -s 198.51.100.2/32 -j RETURN" in v4
    assert "2001:db8:2::/64" in v6 and "2001:db8:2::/64" not in v4


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    args = argparse.Namespace(config=None, domain=[], trusted=[], known=[], out=None,
                              asterisk_dir=str(tmp_path), apply=False, netns=None)  # fmt: skip
    with pytest.raises(CliError, match=r"sensor.domains: at least one secret domain"):
        cmd_render(args)
    args.domain, args.known = [DOMAIN], ["not-a-net"]
    with pytest.raises(CliError, match=r"--known: 'not-a-net' is not an address"):
        cmd_render(args)
    args.known, args.out = [], str(tmp_path / "out")
    assert cmd_render(args) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "sipguard-base.nft", "sipguard-domain.v4", "sipguard-domain.v6",
    ]  # fmt: skip


@pytest.mark.netns
def test_applied_rules_filter_real_traffic(lab: Lab) -> None:
    rules = BaseRules(domains=(DOMAIN,), trunks=(ip_network(lab.trunk.ip),))
    apply(rules, lab.pbx.name)
    apply(rules, lab.pbx.name)  # twice: idempotent, no stacked jumps
    listing = lab.lab.run(lab.pbx, ["iptables", "-S", "INPUT"]).stdout
    assert listing.count("sipguard-domain") == 1

    assert lab.client(lab.atk, 3, "REGISTER", DOMAIN, "Yealink")["answered"] == 3
    assert lab.client(lab.atk, 3, "REGISTER", lab.atk.hub_ip, "Yealink")["answered"] == 0
    assert lab.client(lab.atk, 3, "OPTIONS", lab.atk.hub_ip, "Yealink")["answered"] == 0
    # the trunk reaches the bare address, also after its conntrack entries are gone
    assert lab.client(lab.trunk, 2, "INVITE", lab.trunk.hub_ip, "trunk")["answered"] == 2
    lab.lab.run(lab.pbx, ["conntrack", "-F"], check=False)
    assert lab.client(lab.trunk, 2, "INVITE", lab.trunk.hub_ip, "trunk")["answered"] == 2
    # IAX2 is closed to the attacker: the drop rule counts its packet
    send = "import socket, sys; socket.socket(2, 2).sendto(b'x', (sys.argv[1], 4569))"
    lab.lab.run(lab.atk, [sys.executable, "-c", send, lab.atk.hub_ip])
    nft = lab.lab.run(lab.pbx, ["nft", "list", "table", "inet", "sipguard_base"]).stdout
    assert "udp dport 4569 counter packets 1" in nft
