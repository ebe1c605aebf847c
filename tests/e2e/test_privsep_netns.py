"""Privilege separation against the real kernel: `sipguard run` (nftables) in a namespace. The
parsing process holds no capability at all while a log burst still puts every attacker into the
kernel set, and the enforcer refuses this host's own address even when the parser asks for it
(the parser's own allow-list of own addresses switched off to let the request through)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from sipguard.config.settings import render_toml
from sipguard.daemon.caps import read_caps
from sipguard.daemon.control import ControlError
from sipguard.daemon.harness import DaemonProc, append, pjsip_failure, wait_for

pytestmark = [pytest.mark.netns, pytest.mark.slow]

sys.path.insert(0, str(Path(__file__).parent))
from test_daemon_netns import kernel_set  # noqa: E402

CAP_NET_ADMIN = 1 << 12


def test_parser_without_capabilities_still_bans_in_the_kernel(netlab, tmp_path):
    lab = netlab
    pbx = lab.add_host("pbx")
    atk = lab.add_host("attacker", hub=pbx)
    log = tmp_path / "messages"
    log.touch()
    cfg = tmp_path / "sipguard.toml"
    daemon_table = {"state_dir": f"{tmp_path}/state", "control_socket": f"{tmp_path}/ctl.sock"}
    settings = {
        "daemon": {**daemon_table, "tick_interval": 0.2},
        "sources": {"logs": {"paths": [str(log)]}},
        "allow": {"own_addresses": False},  # so the parser asks, and the enforcer must refuse
    }
    cfg.write_text(render_toml(settings))
    daemon = DaemonProc(cfg, tmp_path / "ctl.sock", [], prefix=lab.cmd(pbx, []))
    try:
        daemon.start()
        st = daemon.request("status")
        parser, enforcer = st["pid"], st["enforcer"]["pid"]
        assert st["enforcer"]["backend"] == "nftables"
        status = Path(f"/proc/{parser}/status").read_text()
        assert "CapEff:\t0000000000000000" in status
        assert "CapPrm:\t0000000000000000" in status
        assert "CapBnd:\t0000000000000000" in status
        assert "NoNewPrivs:\t1" in status
        e = read_caps(enforcer)
        assert e["CapEff"] == e["CapBnd"] == CAP_NET_ADMIN

        # a burst from 50 sources: all of them reach the kernel set through the enforcer
        ips = [f"100.64.7.{i}" for i in range(1, 51)]
        append(log, "".join(pjsip_failure(ip, n) for n in range(5) for ip in ips))
        want = {f"{ip}/32" for ip in ips}
        wait_for(lambda: want <= kernel_set(lab, pbx), 10)
        wait_for(lambda: daemon.banned() == want, 5)

        # the host's own address: the parser asks (its allow-list lacks it), the enforcer refuses
        with pytest.raises(ControlError, match="not banned"):
            daemon.request("ban", {"addr": atk.hub_ip, "for": "1h"})
        assert f"{atk.hub_ip}/32" not in kernel_set(lab, pbx)
        assert f"{atk.hub_ip}/32" not in daemon.banned()
        counts = daemon.request("status")["enforcer"]["counts"]
        assert counts["refused-own-address"] == 1
        # and it still serves: a manual ban of an attacker address lands
        daemon.request("ban", {"addr": atk.ip, "for": "1h"})
        assert f"{atk.ip}/32" in kernel_set(lab, pbx)
        assert daemon.stop() == 0
        assert want | {f"{atk.ip}/32"} == kernel_set(lab, pbx)  # bans stay after a stop
    finally:
        daemon.stop()
