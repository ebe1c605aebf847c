"""The daemon's default scope (all_ports: everything from a banned source) on both backends,
against the real kernel: a TCP service that no port list names (AMI's 5038) stops answering the
banned source, and answers everyone else."""

from __future__ import annotations

import sys
import time
from ipaddress import ip_network

import pytest

from sipguard.actions import FirewallConfig, IpsetFirewall, NftablesFirewall
from sipguard.core.alerts import Action, Decision

pytestmark = pytest.mark.netns

PROBE = (
    "import socket,sys\n"
    "try:\n"
    "    socket.create_connection((sys.argv[1], 5038), timeout=1).close(); print('synack')\n"
    "except ConnectionRefusedError:\n    print('refused')\n"
    "except OSError:\n    print('timeout')\n"
)
LISTEN = "import socket,time\ns=socket.create_server(('0.0.0.0',5038))\ntime.sleep(60)\n"


@pytest.mark.parametrize("backend", [NftablesFirewall, IpsetFirewall], ids=["nftables", "ipset"])
def test_all_ports_scope_blocks_a_service_no_port_list_names(netlab, backend):
    pbx = netlab.add_host("pbx")
    atk = netlab.add_host("atk", hub=pbx)
    other = netlab.add_host("other", hub=pbx)
    netlab.popen(pbx, [sys.executable, "-c", LISTEN])
    probe = lambda host: netlab.run(host, [sys.executable, "-c", PROBE, host.hub_ip]).stdout.strip()  # noqa: E731
    deadline = time.monotonic() + 10
    while probe(atk) != "synack":
        assert time.monotonic() < deadline, "the listener never came up"
        time.sleep(0.1)
    fw = backend(FirewallConfig(netns=pbx.name, all_ports=True))
    fw.init()
    now = time.time()
    fw.add([Decision(ip_network(atk.ip), Action.BAN, "test", "test ban", now, now + 600)], now)
    try:
        assert probe(atk) == "timeout"  # no SYN-ACK, not even a refusal
        assert probe(other) == "synack"
    finally:
        fw.teardown()
        fw.close()
    assert probe(atk) == "synack"
