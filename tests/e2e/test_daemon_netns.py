"""End to end in network namespaces: `sipguard run` (nftables backend) in a `pbx` namespace with a
SIP responder, an `attacker` and a `phone`; attack lines appended to the log exactly as Asterisk
writes them and the same attempts pushed as AMI security events by the test AMI server.

One test walks the whole life of a ban, because each phase starts from the state the last one
left: threshold (log+AMI counted once) -> the attacker's running UDP flow stops, the phone
keeps working -> clean restart -> kill -9 with the kernel set tampered -> unban -> expiry of a
short-profile ban -> the rest of the ruleset untouched.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sipguard.daemon.harness import SRC, DaemonProc, append, wait_for, write_config
from sipguard.testing.netns import kernel_set

pytestmark = [pytest.mark.netns, pytest.mark.slow]

HELPERS = str(Path(__file__).with_name("nethelpers.py"))


def foreign_ruleset(lab: Any, pbx: Any) -> list[Any]:
    """The ruleset without sipguard's table (handles included: nothing may be renumbered)."""
    rules = json.loads(lab.run(pbx, ["nft", "-j", "list", "ruleset"]).stdout)["nftables"]
    out = []
    for item in rules:
        body = next(iter(item.values()))
        if isinstance(body, dict) and body.get("table") == "sipguard":
            continue
        if "table" in item and item["table"].get("name") == "sipguard":
            continue
        out.append(item)
    return out


class Counts:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, ip: str) -> int:
        try:
            return int(json.loads(self.path.read_text()).get(ip, 0))
        except (OSError, ValueError):
            return 0


def sender_replies(path: Path) -> int:
    try:
        return int(path.read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def stamp(now: float) -> tuple[str, str]:
    """The log prefix time and the security EventTV for one moment."""
    base = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now))
    ms = f"{int(now % 1 * 1000):03d}"
    tv = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{ms}+0000"
    return f"{base}.{ms}", tv


class Asterisk:
    """Writes what Asterisk 20 writes for one PJSIP wrong password: the NOTICE in `messages`,
    the SECURITY line in `security`, and the same security event on AMI."""

    def __init__(self, logdir: Path, ami: subprocess.Popen[str], pbx_ip: str) -> None:
        self.messages, self.security = logdir / "messages", logdir / "security"
        self.ami, self.pbx_ip = ami, pbx_ip

    def ami_call(self, req: dict[str, Any]) -> str:
        assert self.ami.stdin is not None and self.ami.stdout is not None
        self.ami.stdin.write(json.dumps(req) + "\n")
        self.ami.stdin.flush()
        return self.ami.stdout.readline().strip()

    def wrong_password(self, ip: str, n: int) -> None:
        now = time.time()
        ts, tv = stamp(now)
        callid = f"{ip.replace('.', '').replace(':', '')}x{n}"
        v6 = ":" in ip
        where = f"[{ip}]:5301" if v6 else f"{ip}:5301"
        append(
            self.messages,
            f"[{ts}] NOTICE[18562] res_pjsip/pjsip_distributor.c: Request 'REGISTER' from "
            f"'\"1001\" <sip:1001@{self.pbx_ip}>' failed for '{where}' (callid: {callid}) "
            "- Failed to authenticate\n",
        )
        fam = "IPV6" if v6 else "IPV4"
        fields = {
            "EventTV": tv,
            "Severity": "Error",
            "Service": "PJSIP",
            "EventVersion": "1",
            "AccountID": "1001",
            "SessionID": callid,
            "LocalAddress": f"IPV4/UDP/{self.pbx_ip}/5060",
            "RemoteAddress": f"{fam}/UDP/{ip}/5301",
            "Challenge": "1795311427/47a0a6f2df0d2d657f7b280ed7f7cf60",
            "Response": "3b702065d93290f729585787b8e215af",
            "ExpectedResponse": "",
        }
        line = ",".join(f'{k}="{v}"' for k, v in fields.items())
        append(
            self.security,
            f"[{ts}] SECURITY[18584] res_security_log.c: "
            f'SecurityEvent="ChallengeResponseFailed",{line}\n',
        )
        assert self.ami_call({"event": "ChallengeResponseFailed", "fields": fields}) == "ok 1"

    def scanner_probe(self, ip: str) -> None:
        ts, _ = stamp(time.time())
        append(
            self.messages,
            f"[{ts}] NOTICE[18562] res_pjsip/pjsip_distributor.c: Request 'OPTIONS' from "
            f"'\"sipvicious\" <sip:100@1.1.1.1>' failed for '{ip}:5061' "
            f"(callid: {ip.replace('.', '')}svmap) - No matching endpoint found\n",
        )


def test_daemon_bans_in_the_kernel_end_to_end(netlab, tmp_path):
    lab = netlab
    pbx = lab.add_host("pbx")
    atk = lab.add_host("attacker", hub=pbx)
    phone = lab.add_host("phone", hub=pbx)
    atk2 = lab.add_host("atk2", hub=pbx)
    py = sys.executable

    # someone else's firewall, with the classic "established first" accept it must not defeat
    foreign = tmp_path / "foreign.nft"
    foreign.write_text(
        "table inet foreign {\n chain input {\n  type filter hook input priority 0;"
        " policy accept;\n  ct state established,related accept\n  udp dport 5060 accept\n }\n}\n"
    )
    lab.run(pbx, ["nft", "-f", str(foreign)])
    before = foreign_ruleset(lab, pbx)

    counts = Counts(tmp_path / "counts.json")
    lab.popen(pbx, [py, HELPERS, "responder", "5060", str(counts.path)])
    ami = lab.popen(
        pbx,
        [py, HELPERS, "ami"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"},
    )
    assert ami.stdout is not None
    ami_port = int(ami.stdout.readline())

    logdir = tmp_path / "log"
    cfg = write_config(
        tmp_path,
        f"""
[sources.ami]
enabled = true
port = {ami_port}
username = "sipguard"
secret = "s3cret"
[profiles.quick]
durations = ["3s"]
[rules.scanner-signature]
profile = "quick"
[rules.password-guessing]
ipv6_prefix = 128  # the lab's /64 holds the PBX's own address: a /64 ban would be refused
""",
        logs=("messages", "security"),
    )
    sock = tmp_path / "ctl.sock"
    daemon = DaemonProc(cfg, sock, [], prefix=lab.cmd(pbx, []))
    asterisk = Asterisk(logdir, ami, atk.hub_ip)
    try:
        daemon.start()
        assert asterisk.ami_call({"wait_login": 1}) == "ok 1"

        # two flows that exist before any ban: the attacker's and the phone's
        atk_out, phone_out = tmp_path / "atk.txt", tmp_path / "phone.txt"
        lab.popen(atk, [py, HELPERS, "sender", atk.hub_ip, "5060", "0.02", str(atk_out)])
        lab.popen(phone, [py, HELPERS, "sender", phone.hub_ip, "5060", "0.02", str(phone_out)])
        wait_for(lambda: counts(atk.ip) > 10 and counts(phone.ip) > 10)
        ct = lab.run(pbx, ["conntrack", "-L", "-p", "udp", "-s", atk.ip], check=False)
        assert atk.ip in ct.stdout  # the flow is tracked: "established" before the ban

        # --- 4 attempts, each reported three times (messages, security, AMI): no ban yet
        for n in range(4):
            asterisk.wrong_password(atk.ip, n)
        wait_for(lambda: daemon.request("status")["pipeline"].get("external_events", 0) >= 4)
        wait_for(lambda: daemon.request("status")["normalizer"].get("duplicates", 0) >= 8)
        assert daemon.banned() == set()
        assert kernel_set(lab, pbx) == set()
        # --- the 5th attempt crosses the threshold: banned in the kernel
        asterisk.wrong_password(atk.ip, 4)
        wait_for(lambda: kernel_set(lab, pbx) == {f"{atk.ip}/32"}, 5, 0.005)
        wait_for(lambda: daemon.banned() == {f"{atk.ip}/32"}, 2)  # the store follows the kernel
        explained = daemon.request("explain", {"addr": atk.ip})
        assert explained["active"]["rule"] == "password-guessing"

        # the attacker's existing flow stops; the phone keeps getting answers
        time.sleep(0.3)
        stopped_at = counts(atk.ip)
        phone_before = sender_replies(phone_out)
        time.sleep(1.0)
        assert counts(atk.ip) == stopped_at
        assert sender_replies(phone_out) > phone_before + 20

        # --- clean restart: the ban stays in the kernel while down, and after
        assert daemon.stop() == 0
        assert kernel_set(lab, pbx) == {f"{atk.ip}/32"}
        daemon.start()
        assert daemon.banned() == {f"{atk.ip}/32"}
        assert kernel_set(lab, pbx) == {f"{atk.ip}/32"}

        # --- kill -9, and the kernel set tampered with while down: restart repairs it
        daemon.stop(signal.SIGKILL)
        lab.run(pbx, ["nft", "delete", "element", "inet", "sipguard", "ban4", f"{{ {atk.ip} }}"])
        lab.run(pbx, ["nft", "add", "element", "inet", "sipguard", "ban4", "{ 100.64.9.9 }"])
        daemon.start()
        assert asterisk.ami_call({"wait_login": 3}) == "ok 3"  # third start
        active = {b["network"] for b in daemon.request("bans")}
        assert active == {f"{atk.ip}/32"} == kernel_set(lab, pbx)
        # (the tampering let a few packets through while down; after the restart: none)
        time.sleep(0.3)
        stopped_at = counts(atk.ip)
        time.sleep(0.5)
        assert counts(atk.ip) == stopped_at

        # --- unban with the real CLI: traffic flows again
        cli = subprocess.run(
            [py, "-m", "sipguard", "unban", "--socket", str(sock), atk.ip],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert cli.returncode == 0, cli.stderr
        assert kernel_set(lab, pbx) == set()
        wait_for(lambda: counts(atk.ip) > stopped_at + 10, 5)

        # --- IPv6: the phone's v6 address attacks; its v6 flow stops, its v4 flow does not
        v6_out = tmp_path / "phone6.txt"
        lab.popen(phone, [py, HELPERS, "sender", phone.hub_ip6, "5060", "0.02", str(v6_out)])
        wait_for(lambda: counts(phone.ip6) > 10)
        for n in range(5):
            asterisk.wrong_password(phone.ip6, n)
        wait_for(lambda: f"{phone.ip6}/128" in kernel_set(lab, pbx), 5, 0.005)
        time.sleep(0.3)
        held6, phone_v4 = counts(phone.ip6), sender_replies(phone_out)
        time.sleep(0.5)
        assert counts(phone.ip6) == held6
        assert sender_replies(phone_out) > phone_v4 + 10
        daemon.request("unban", {"addr": phone.ip6})

        # --- a short-profile ban (scanner signature -> "quick", 3 s) expires by itself
        lab.popen(atk2, [py, HELPERS, "sender", atk2.hub_ip, "5060", "0.05", str(tmp_path / "a2")])
        wait_for(lambda: counts(atk2.ip) > 3)
        asterisk.scanner_probe(atk2.ip)
        wait_for(lambda: f"{atk2.ip}/32" in kernel_set(lab, pbx), 5, 0.005)
        ban = next(b for b in daemon.request("bans") if b["network"] == f"{atk2.ip}/32")
        assert ban["rule"] == "scanner-signature" and ban["expires"] - ban["start"] == 3
        time.sleep(0.3)
        held = counts(atk2.ip)
        time.sleep(0.5)
        assert counts(atk2.ip) == held
        wait_for(lambda: f"{atk2.ip}/32" not in kernel_set(lab, pbx), 6)
        wait_for(lambda: f"{atk2.ip}/32" not in daemon.banned(), 3)
        wait_for(lambda: counts(atk2.ip) > held + 5, 5)
    finally:
        daemon.stop()
        for pipe in (ami.stdin, ami.stdout):  # EOF ends the AMI helper; no fd left open
            if pipe is not None:
                pipe.close()
        ami.wait(10)
    # the rest of the ruleset is exactly as it was
    assert foreign_ruleset(lab, pbx) == before
