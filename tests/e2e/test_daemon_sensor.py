"""The packet sensor inside `sipguard run`: a real sipvicious scan from the `attacker` namespace
is seen on the wire (NFQUEUE), the daemon's engine bans the scanner in the kernel, and the
phone's traffic keeps flowing. No log line is involved: Asterisk logs nothing for this scan."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from sipguard.daemon.harness import DaemonProc, wait_for, write_config

pytestmark = [pytest.mark.netns, pytest.mark.slow]

sys.path.insert(0, str(Path(__file__).parent))
from test_daemon_netns import HELPERS, Counts, kernel_set, sender_replies  # noqa: E402


@pytest.mark.skipif(shutil.which("sipvicious_svmap") is None, reason="needs sipvicious")
def test_sensor_in_the_daemon_bans_a_real_scan(netlab, tmp_path):
    lab = netlab
    pbx = lab.add_host("pbx")
    atk = lab.add_host("attacker", hub=pbx)
    phone = lab.add_host("phone", hub=pbx)
    py = sys.executable
    counts = Counts(tmp_path / "counts.json")
    lab.popen(pbx, [py, HELPERS, "responder", "5060", str(counts.path)])
    cfg = write_config(tmp_path, "[sensor]\nsip_ports = [5060]\n")
    daemon = DaemonProc(cfg, tmp_path / "ctl.sock", [], prefix=lab.cmd(pbx, []))
    try:
        daemon.start()
        wait_for(lambda: daemon.request("status")["sources"].get("sensor", {}).get("stats"), 10)
        phone_out = tmp_path / "phone.txt"
        # a phone's OPTIONS keepalive, well under the sensor's flood rate (2/s)
        lab.popen(phone, [py, HELPERS, "sender", phone.hub_ip, "5060", "1.0", str(phone_out)])
        wait_for(lambda: sender_replies(phone_out) >= 2)  # the sensor passes a real phone

        svmap = ["sipvicious_svmap", "-p", "5060", atk.hub_ip]
        scan = lab.run(atk, svmap, check=False, timeout=60)
        assert "found nothing" in scan.stderr  # the scanner got no answer at all
        wait_for(lambda: f"{atk.ip}/32" in kernel_set(lab, pbx), 10, 0.01)
        ban = next(b for b in daemon.request("bans") if b["network"] == f"{atk.ip}/32")
        assert ban["rule"] == "scanner-signature"
        explained = daemon.request("explain", {"addr": atk.ip})
        assert any(e["kind"] == "scanner_probe" for e in explained["events"])
        assert counts(atk.ip) == 0  # the scan never reached the "PBX"
        before = sender_replies(phone_out)
        wait_for(lambda: sender_replies(phone_out) >= before + 2, 5)
        sensor = daemon.request("status")["sources"]["sensor"]
        assert sensor["running"] and sensor["stats"].get("packets_in", 0) > 0
    finally:
        daemon.stop()
    # the sensor's own table went with it (fail-open); sipguard's bans stay
    rules = lab.run(pbx, ["nft", "list", "tables"]).stdout
    assert "sipguard_sensor" not in rules and "sipguard" in rules
