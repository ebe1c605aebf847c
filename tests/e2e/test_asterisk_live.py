"""A real Asterisk 20 (PJSIP on 5060, chan_sip on 5070, IAX2, AMI, HTTP) attacked from other
namespaces, with `sipguard run` on its defaults reading its logs and its AMI.

Each test starts its own PBX and daemon (about 3 s), so none depends on another's bans.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sipguard.daemon.harness import DaemonProc, wait_for
from sipguard.testing.asterisk import Pbx, PbxConfig
from sipguard.testing.netns import Host, NetLab

pytestmark = [pytest.mark.netns, pytest.mark.slow]

SENDERS = str(Path(__file__).with_name("asterisk_senders.py"))


@dataclass
class Live:
    lab: NetLab
    pbx_host: Host
    pbx: Pbx
    daemon: DaemonProc
    atk: Host
    phone: Host

    def send(self, host: Host, *args: object, timeout: float = 60) -> Any:
        res = self.lab.run(host, [sys.executable, SENDERS, *map(str, args)], timeout=timeout)
        return json.loads(res.stdout)

    def banned(self) -> set[str]:
        return self.daemon.banned()

    def ban_of(self, ip: str) -> dict[str, Any] | None:
        return next((b for b in self.daemon.request("bans") if b["network"] == f"{ip}/32"), None)


@pytest.fixture
def live(netlab: NetLab, asterisk_prefix: Path, tmp_path: Path) -> Any:
    pbx_host = netlab.add_host("pbx")
    atk = netlab.add_host("atk", hub=pbx_host)
    phone = netlab.add_host("phone", hub=pbx_host)
    config = PbxConfig(endpoints={"1001": "pj-1001-secret"}, peers={"2001": "sip-2001-secret"})
    pbx = Pbx(netlab, pbx_host, tmp_path / "asterisk", asterisk_prefix, config).start()
    cfg = tmp_path / "sipguard.toml"
    # the daemon on its defaults: only where its state lives and what it reads
    cfg.write_text(
        f"""
[daemon]
state_dir = "{tmp_path}/state"
control_socket = "{tmp_path}/ctl.sock"
[sources.logs]
paths = ["{pbx.messages}", "{pbx.security}"]
[sources.ami]
enabled = true
port = {config.ami_port}
username = "sipguard"
secret = "{config.ami_users["sipguard"]}"
"""
    )
    daemon = DaemonProc(cfg, tmp_path / "ctl.sock", [], prefix=netlab.cmd(pbx_host, []))
    daemon.start()
    try:
        wait_for(lambda: daemon.request("status")["sources"]["ami"].get("connected"), 15)
        yield Live(netlab, pbx_host, pbx, daemon, atk, phone)
    finally:
        daemon.stop()
        pbx.stop()


def test_banned_ami_attacker_reaches_no_service_of_the_pbx(live: Live) -> None:
    atk, hub = live.atk, live.atk.hub_ip
    # before: every service answers the attacker (so "no answer" below means the ban)
    assert live.send(atk, "tcp-probe", hub, 5038)["result"] == "synack"
    assert live.send(atk, "options", hub, 5070)["result"] == "answer"
    assert live.send(atk, "options", hub, 5060)["result"] == "answer"
    out = live.send(atk, "ami-login", hub, 5038, "admin", "wrong", 3)
    assert all("Authentication failed" in r for r in out["responses"]), out
    wait_for(lambda: live.ban_of(atk.ip), 5)
    assert live.ban_of(atk.ip)["rule"] == "ami-login-failures"  # type: ignore[index]
    # after: AMI gets no SYN-ACK (not even a refusal), SIP on both stacks, HTTP: silence
    assert live.send(atk, "tcp-probe", hub, 5038)["result"] == "timeout"
    assert live.send(atk, "tcp-probe", hub, 8088)["result"] == "timeout"
    assert live.send(atk, "tcp-probe", hub, 5070)["result"] == "timeout"
    assert live.send(atk, "options", hub, 5070)["result"] == "none"
    assert live.send(atk, "options", hub, 5060)["result"] == "none"
    # the phone, on its own link, still reaches all of them
    assert live.send(live.phone, "tcp-probe", live.phone.hub_ip, 5038)["result"] == "synack"
    assert live.send(live.phone, "options", live.phone.hub_ip, 5070)["result"] == "answer"
