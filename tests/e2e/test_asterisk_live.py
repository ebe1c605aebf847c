"""A real Asterisk 20 (PJSIP on 5060, chan_sip on 5070, IAX2, AMI, HTTP) attacked from other
namespaces, with `sipguard run` on its defaults reading its logs and its AMI.

Each test starts its own PBX and daemon (about 3 s), so none depends on another's bans.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sipguard.daemon.control import ControlError
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
    atk2: Host

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
    atk2 = netlab.add_host("atk2", hub=pbx_host)
    config = PbxConfig(endpoints={"1001": "pj-1001-secret"}, peers={"2001": "sip-2001-secret"})
    pbx = Pbx(netlab, pbx_host, tmp_path / "asterisk", asterisk_prefix, config).start()
    cfg = tmp_path / "sipguard.toml"
    # the daemon on its defaults: only where its state lives and what it reads
    cfg.write_text(pbx.sipguard_config(tmp_path))
    daemon = DaemonProc(cfg, tmp_path / "ctl.sock", [], prefix=netlab.cmd(pbx_host, []))
    daemon.start()
    try:
        wait_for(lambda: daemon.request("status")["sources"]["ami"].get("connected"), 15)
        yield Live(netlab, pbx_host, pbx, daemon, atk, phone, atk2)
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


@pytest.mark.parametrize(("port", "stack"), [(5070, "chan_sip"), (5060, "pjsip")])
def test_challenge_flood_is_cut_within_a_second(live: Live, port: int, stack: str) -> None:
    """100 REGISTER/s that never answer the 401: chan_sip logs only ChallengeSent for them."""
    atk = live.atk
    out = live.send(atk, "flood", atk.hub_ip, port, 100, 3, "2001" if port == 5070 else "1001")
    sent, answers = out["sent"], out["answers"]
    assert len(sent) >= 250
    cut = max(answers) - sent[0]
    print(f"{stack}: {len(answers)} of {len(sent)} answered, the last {cut:.3f} s after the first")
    assert live.ban_of(atk.ip) is not None
    assert cut <= 1.0, f"{len(answers)} answered over {cut:.2f} s"
    assert len(answers) <= 100


def test_phone_that_mistypes_its_password_twice_is_never_banned(live: Live) -> None:
    """Re-registers every 1.5 s on both stacks; rounds 2 and 3 use a mistyped password."""
    ph, hub = live.phone, live.phone.hub_ip
    argv = [sys.executable, SENDERS, "phone", hub, "5060", "1001", "pj-1001-secret", "8", "1.5"]
    pj = live.lab.popen(ph, [*argv, "2,3"], stdout=subprocess.PIPE, text=True)
    out = live.send(ph, "phone", hub, 5070, "2001", "sip-2001-secret", 8, 1.5, "2,3")
    pj_out = json.loads(pj.communicate(timeout=60)[0])
    # the PBX accepted every good round and refused the mistyped ones (PJSIP 401, chan_sip 403)
    assert pj_out["results"] == [200, 200, 401, 401, 200, 200, 200, 200], pj_out
    assert out["results"] == [200, 200, 403, 403, 200, 200, 200, 200], out
    time.sleep(1.0)  # anything still in flight reaches the daemon
    assert live.banned() == set()
    status = live.daemon.request("status")
    assert not [a for a in status["recent_alerts"] if ph.ip in json.dumps(a)]


def test_svwar_against_pjsip_is_banned(live: Live) -> None:
    """PJSIP answers every request alike (401), so each svwar run sends one probe for a random
    account that cannot exist, learns nothing ("found nothing") and stops; its user tries again
    with another method. Still a scanner: banned by its third run, the fourth gets no answer."""
    svwar = str(Path(sys.executable).with_name("sipvicious_svwar"))
    atk = live.atk
    outputs = []
    for method in ("REGISTER", "INVITE", "OPTIONS"):
        argv = [svwar, "-m", method, "-p", "5060", "-e", "1000-1100", atk.hub_ip]
        res = live.lab.run(atk, argv, check=False, timeout=120)
        outputs.append(res.stdout + res.stderr)
    # each run was answered like any account: svwar learned nothing
    assert all("found nothing" in out or "Set --force" in out for out in outputs), outputs
    wait_for(lambda: live.ban_of(atk.ip), 5)
    assert live.ban_of(atk.ip)["rule"] == "account-probing"  # type: ignore[index]
    res = live.lab.run(atk, [svwar, "-p", "5060", atk.hub_ip], check=False, timeout=120)
    assert "timed out" in res.stdout + res.stderr  # no answer at all: dropped


def test_svmap_is_banned_by_its_display_name_whichever_copy_comes_first(live: Live) -> None:
    """svmap's one OPTIONS leaves "No matching endpoint found" with From "sipvicious" in the log
    and an InvalidAccountID without it on AMI; the daemon reads both, in either order."""
    svmap = str(Path(sys.executable).with_name("sipvicious_svmap"))
    atk = live.atk
    live.lab.run(atk, [svmap, "-p", "5060", atk.hub_ip], check=False, timeout=60)
    wait_for(lambda: live.ban_of(atk.ip), 5)
    assert live.ban_of(atk.ip)["rule"] == "scanner-signature"  # type: ignore[index]
    status = live.daemon.request("status")
    assert status["normalizer"]["duplicates"] >= 2  # log, security file and AMI: one attempt


def test_log_injection_frames_no_one(live: Live) -> None:
    """From display names that write "failed for '<the phone>' - Wrong password" into the log
    line, on both stacks, six times each: the phone is never an event source, never banned."""
    atk, victim = live.atk, live.phone.ip
    for port in (5060, 5070):
        for _ in range(6):
            text = f"1001' failed for '{victim}:5060' - Wrong password"
            live.send(atk, "invite", atk.hub_ip, port, text)
    wait_for(lambda: live.ban_of(atk.ip), 5)  # the injector itself is caught
    time.sleep(0.5)
    assert live.ban_of(victim) is None
    assert live.banned() == {f"{atk.ip}/32"}
    with pytest.raises(ControlError, match="nothing known"):  # no event ever named it
        live.daemon.request("explain", {"addr": victim})


def test_two_sources_guessing_one_account_slowly_are_banned(live: Live) -> None:
    """Two sources, each below the per-source threshold (4 wrong passwords, one every 2 s),
    on the same PJSIP account: the account is under attack and both sources are acted on."""
    a1, a2 = live.atk, live.atk2
    argv = [sys.executable, SENDERS, "phone", a2.hub_ip, "5060", "1001", "guess", "4", "2.0"]
    other = live.lab.popen(a2, [*argv, "0,1,2,3"], stdout=subprocess.PIPE, text=True)
    out = live.send(a1, "phone", a1.hub_ip, 5060, "1001", "guess", 4, 2.0, "0,1,2,3")
    other_out = json.loads(other.communicate(timeout=60)[0])
    # each source made 4 attempts, every one refused or (once banned) unanswered
    assert set(out["results"]) <= {401, 0} and set(other_out["results"]) <= {401, 0}
    wait_for(lambda: live.ban_of(a1.ip) and live.ban_of(a2.ip), 5)
    rules = {live.ban_of(ip)["rule"] for ip in (a1.ip, a2.ip)}  # type: ignore[index]
    assert rules <= {"account-under-attack", "distributed-account-attack"}, rules
    under = live.daemon.request("status")["accounts_under_attack"]
    assert any("1001" in json.dumps(a) for a in under), under
    assert live.phone.ip not in {b.split("/")[0] for b in live.banned()}
