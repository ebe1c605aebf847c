"""Privilege separation against the real kernel: `sipguard run` (nftables) in a namespace. The
parsing process holds no capability at all while a log burst still puts every attacker into the
kernel set, and the enforcer refuses this host's own address even when the parser asks for it
(the parser's own allow-list of own addresses switched off to let the request through)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sipguard.config.settings import render_toml
from sipguard.daemon.caps import read_caps
from sipguard.daemon.control import ControlError
from sipguard.daemon.harness import DaemonProc, append, pjsip_failure, wait_for

pytestmark = [pytest.mark.netns, pytest.mark.slow]

sys.path.insert(0, str(Path(__file__).parent))
from test_daemon_netns import HELPERS, Counts, kernel_set  # noqa: E402

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


# ---- the packet sensor as the third process --------------------------------------------------
sys.path.insert(0, str(Path(__file__).parents[1] / "daemon"))
from test_privsep import alive, config, python_for_nobody, shared_dir, status_of  # noqa: E402

# sends one UDP datagram (argv 2) to HOST:5060 (argv 1); prints whether anything answered in 1 s
PROBE = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1.0)
s.sendto(sys.argv[2].encode(), (sys.argv[1], 5060))
try:
    s.recvfrom(2048)
    print("answered")
except TimeoutError:
    print("silent")
"""


def probe(lab, host, target: str, agent: str) -> str:
    """One SIP OPTIONS from `host` to `target` with User-Agent `agent`: answered or silent."""
    msg = "\r\n".join(
        [
            f"OPTIONS sip:100@{target} SIP/2.0",
            f"Via: SIP/2.0/UDP {host.ip}:5060;branch=z9hG4bK-{agent}",
            f"From: <sip:100@{target}>;tag=1",
            f"To: <sip:100@{target}>",
            f"Call-ID: {agent}-1",
            "CSeq: 1 OPTIONS",
            "Max-Forwards: 70",
            f"User-Agent: {agent}",
            "Content-Length: 0",
            "",
            "",
        ]
    )
    return lab.run(host, [sys.executable, "-c", PROBE, target, msg], timeout=20).stdout.strip()


def watching(daemon: DaemonProc) -> dict[str, dict[str, object]]:
    return {w["source"]: w for w in daemon.request("status")["watching"]}


@pytest.mark.parametrize("as_user", [False, True], ids=["root", "nobody"])
def test_sensor_process_keeps_net_admin_alone_and_feeds_the_parser(netlab, as_user):
    """With [sensor]: three processes. The parser holds nothing, the sensor CAP_NET_ADMIN alone
    (as [daemon] user when set), a scanner's packet is dropped on the wire and its event crosses
    the link to the parser's detection, which bans it. kill -9 of the sensor: the enforcer stops
    the parser cleanly and exits 1 (systemd restarts the three); bans stay, SIP passes."""
    python = python_for_nobody() if as_user else sys.executable
    if python is None:
        pytest.skip("no Python 3.11 here whose library user nobody may read")
    lab = netlab
    pbx = lab.add_host("pbx")
    atk = lab.add_host("attacker", hub=pbx)
    phone = lab.add_host("phone", hub=pbx)
    tmp = shared_dir()
    counts = Counts(tmp / "counts.json")
    lab.popen(pbx, [sys.executable, HELPERS, "responder", "5060", str(counts.path)])
    cfg = config(tmp, 'user = "nobody"\ngroup = "nogroup"' if as_user else "")
    cfg.write_text(cfg.read_text() + "\n[sensor]\nsip_ports = [5060]\n")
    daemon = DaemonProc(cfg, tmp / "run" / "ctl.sock", [], prefix=lab.cmd(pbx, []))
    daemon.argv[daemon.argv.index(sys.executable)] = python
    try:
        daemon.start()
        sources = lambda: daemon.request("status")["sources"]  # noqa: E731
        view = wait_for(lambda: sources().get("sensor", {}).get("stats"), 15)
        assert view["link_status"] >= 1
        st = daemon.request("status")
        parser, enforcer = st["pid"], st["enforcer"]["pid"]
        sensor = st["sources"]["sensor"]["sensor_pid"]
        assert len({parser, enforcer, sensor}) == 3
        assert status_of(sensor)["PPid"] == str(enforcer)
        p = status_of(parser)
        for key in ("CapEff", "CapPrm", "CapBnd", "CapAmb"):
            assert p[key] == "0000000000000000", (key, p[key])
        s = read_caps(sensor)
        assert s["CapEff"] == s["CapPrm"] == s["CapBnd"] == CAP_NET_ADMIN
        # as another user, ambient too: its iptables fallback (a kernel without nft_queue) is
        # run with exec and would otherwise have no capability at all
        assert s["CapAmb"] == (CAP_NET_ADMIN if as_user else 0)
        assert status_of(sensor)["NoNewPrivs"] == "1"
        uid = "65534" if as_user else "0"
        assert status_of(sensor)["Uid"].split() == [uid] * 4
        assert status_of(parser)["Uid"].split() == [uid] * 4
        assert watching(daemon)["sensor"]["state"] == "running"

        # a phone passes; a scanner's packet is dropped by the sensor, and banned by the parser
        assert probe(lab, phone, phone.hub_ip, "Yealink-SIP-T46S") == "answered"
        assert probe(lab, atk, atk.hub_ip, "friendly-scanner") == "silent"
        wait_for(lambda: counts(phone.ip) == 1, 5)
        assert counts(atk.ip) == 0
        wait_for(lambda: f"{atk.ip}/32" in kernel_set(lab, pbx), 10)
        ban = next(b for b in daemon.request("bans") if b["network"] == f"{atk.ip}/32")
        assert ban["rule"] == "scanner-signature"
        explained = daemon.request("explain", {"addr": atk.ip})
        assert any(e["kind"] == "scanner_probe" for e in explained["events"])
        stats = wait_for(lambda: (x := sources()["sensor"]["stats"])["packets_in"] >= 2 and x)
        assert stats["link_events"] >= 1 and stats["link_dropped"] == 0
        assert "link_invalid" not in stats and "link_malformed" not in stats

        # a changed [sensor] table takes a restart: the reload says so, the sensor keeps going
        cfg.write_text(cfg.read_text().replace("sip_ports = [5060]", "sip_ports = [5060, 5070]"))
        assert daemon.request("reload")["reloaded"]
        wait_for(lambda: "restart sipguard" in watching(daemon)["sensor"]["state"], 5)
        assert watching(daemon)["sensor"]["active"]
        assert probe(lab, atk, atk.hub_ip, "friendly-scanner") == "silent"  # still judged

        # the sensor dies: the parser is stopped cleanly, the enforcer exits 1
        os.kill(sensor, signal.SIGKILL)
        assert daemon.proc is not None and daemon.proc.wait(20) == 1
        daemon.proc = None
        wait_for(lambda: not alive(parser), 5)
        log = daemon.log.read_text()
        assert "sensor process died" in log and "enforcer stopped" in log
        assert f"{atk.ip}/32" in kernel_set(lab, pbx)  # the bans stay
        # nobody judges the queue now: its rule's bypass lets SIP through until the restart
        assert probe(lab, phone, phone.hub_ip, "Yealink-SIP-T46S") == "answered"
    finally:
        daemon.stop()
        print(daemon.log.read_text()[-6000:])  # shown when the test fails
        subprocess.run(["rm", "-rf", str(tmp)], check=False)


@pytest.mark.parametrize("victim", ["parser", "enforcer"])
def test_the_sensor_process_goes_with_the_others(netlab, victim):
    """kill -9 of the parser or of the enforcer: the sensor process stops too, cleanly, taking
    its queue rules with it (nothing is left queueing SIP to a queue nobody reads)."""
    lab = netlab
    pbx = lab.add_host("pbx")
    tmp = shared_dir()
    cfg = config(tmp)
    cfg.write_text(cfg.read_text() + "\n[sensor]\nsip_ports = [5060]\n")
    daemon = DaemonProc(cfg, tmp / "run" / "ctl.sock", [], prefix=lab.cmd(pbx, []))
    try:
        daemon.start()
        wait_for(lambda: daemon.request("status")["sources"].get("sensor", {}).get("stats"), 15)
        st = daemon.request("status")
        parser, enforcer = st["pid"], st["enforcer"]["pid"]
        sensor = st["sources"]["sensor"]["sensor_pid"]
        assert "sipguard_sensor" in lab.run(pbx, ["nft", "list", "tables"]).stdout
        os.kill(parser if victim == "parser" else enforcer, signal.SIGKILL)
        assert daemon.proc is not None
        rc = daemon.proc.wait(20)
        assert rc == (1 if victim == "parser" else -signal.SIGKILL)
        daemon.proc = None
        wait_for(lambda: not alive(sensor) and not alive(parser), 10)
        assert "sipguard_sensor" not in lab.run(pbx, ["nft", "list", "tables"]).stdout
        assert "sensor process stopped" in daemon.log.read_text()
    finally:
        daemon.stop()
        subprocess.run(["rm", "-rf", str(tmp)], check=False)
