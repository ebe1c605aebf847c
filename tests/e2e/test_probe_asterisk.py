"""`sipguard probe` against a real Asterisk 20 with planted weaknesses, and its hardened twin.

The leaky PBX: chan_sip with alwaysauthreject=no and allowguest=yes into a context whose `_00.`
dials a fake trunk (sipp as UAS in its own namespace), an anonymous PJSIP endpoint into the same
context, AMI and HTTP bound to every address, IAX2 loaded, peer 100 with the secret "100", the
version in User-Agent. The hardened twin removes each. The probe runs from a third namespace;
an nft counter on the PBX counts the UDP datagrams it really received from the prober.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sipguard.audit.writer import audit_dir
from sipguard.daemon.harness import DaemonProc, wait_for
from sipguard.probe.ids import confirmed
from sipguard.testing.asterisk import Pbx, PbxConfig
from sipguard.testing.netns import Host, NetLab, netns_available

pytestmark = [pytest.mark.netns, pytest.mark.slow]

SCENARIO = Path(__file__).resolve().parents[1] / "probe" / "trunk_uas.xml"
DOMAIN = "pbx.example.test"

LEAKY = {
    "sip.conf": (
        "[general](+)\nalwaysauthreject = no\nallowguest = yes\ncontext = default\n"
        "[trunk]\ntype = peer\nhost = {trunk}\nport = 5060\ninsecure = port,invite\n"
        "context = nowhere\ndisallow = all\nallow = ulaw\n"
    ),
    "extensions.conf": (
        "[default]\nexten => _00.,1,Dial(SIP/trunk/${EXTEN},20)\n same => n,Hangup()\n"
    ),
    "pjsip.conf": "[anonymous]\ntype = endpoint\ncontext = default\ndisallow = all\nallow = ulaw\n",
}
HARDENED = {
    "sip.conf": (
        "[general](+)\nuseragent = PBX\nsdpsession = PBX\nsdpowner = PBX\n"
        f"domain = {DOMAIN}\nallowexternaldomains = no\n"
    ),
    "pjsip.conf": "[global]\ntype = global\nuser_agent = PBX\n",
    "manager.conf": "[general](+)\nbindaddr = 127.0.0.1\n",
    "http.conf": "[general](+)\nenabled = no\n",
    "modules.conf": "noload => chan_iax2.so\n",
}


@dataclass
class Run:
    reports: dict[str, dict[str, Any]]  # "chan_sip" / "pjsip" -> the JSON report
    received_udp: int  # datagrams from the prober counted by nft on the PBX
    trunk_log: str
    audit_ids: set[str]  # `sipguard audit` of the same configuration

    def ids(self, which: str) -> set[str]:
        return {f["id"] for f in self.reports[which]["findings"]}

    def finding(self, which: str, fid: str) -> dict[str, Any]:
        return next(f for f in self.reports[which]["findings"] if f["id"] == fid)


def _nft_count(lab: NetLab, pbx: Host) -> int:
    out = lab.run(pbx, ["nft", "-j", "list", "table", "inet", "probecount"]).stdout
    total = 0
    for item in json.loads(out)["nftables"]:
        for expr in item.get("rule", {}).get("expr", []):
            if "counter" in expr:
                total += int(expr["counter"]["packets"])
    return total


def _probe(lab: NetLab, atk: Host, *args: str) -> dict[str, Any]:
    argv = [sys.executable, "-m", "sipguard", "probe", *args, "--i-own-this", "--format", "json"]
    res = lab.run(atk, argv, check=False, timeout=300)
    assert res.returncode in (0, 1), res.stderr
    report: dict[str, Any] = json.loads(res.stdout)
    return report


def _run(prefix: Path, scratch: Path, extra: dict[str, str]) -> Run:
    with NetLab("pr") as lab:
        pbx_host = lab.add_host("pbx")
        atk = lab.add_host("atk", hub=pbx_host)
        trunk = lab.add_host("trunk", hub=pbx_host)
        files = {k: v.replace("{trunk}", trunk.ip) for k, v in extra.items()}
        config = PbxConfig(endpoints={"1001": "pj-1001-Xq8#rT2vLm"}, peers={}, extra=files)
        if "alwaysauthreject = no" in files.get("sip.conf", ""):
            config.peers = {"100": "100"}  # the weak secret: the extension itself
        else:
            config.peers = {"100": "Zr7-kq2P-w9Lx-4mTb"}
        pbx = Pbx(lab, pbx_host, scratch, prefix, config).start()
        log = scratch / "trunk.log"
        lab.popen(
            trunk,
            [
                "sipp",
                "-sf",
                str(SCENARIO),
                "-i",
                trunk.ip,
                "-p",
                "5060",
                "-nostdin",
                "-trace_msg",
                "-message_file",
                str(log),
            ],
        )
        lab.run(
            pbx_host,
            ["nft", "-f", "-"],
            input=(
                "table inet probecount {\n chain in {\n  type filter hook input priority -300;\n"
                f"  ip saddr {atk.ip} meta l4proto udp counter\n }}\n}}\n"
            ),
        )
        target = atk.hub_ip
        common = ["--extensions", "100-102", "--timeout", "1.5"]
        # --domain on the leaky PBX only: with alwaysauthreject=yes chan_sip answers a foreign
        # domain exactly like its own (the fake challenge comes first), so from outside a listed
        # domain looks like none (docs/probe.md)
        domain = ["--domain", DOMAIN] if "alwaysauthreject = no" in files["sip.conf"] else []
        reports = {
            "chan_sip": _probe(
                lab,
                atk,
                f"{target}:5070",
                *common,
                *domain,
                "--account",
                "100",
                "--guess",
                "20",
            ),
            # SIP over TCP (a connection, then the stream cut by Content-Length)
            "chan_sip_tcp": _probe(
                lab,
                atk,
                f"{target}:5070",
                *common,
                "--transport",
                "tcp",
                "--checks",
                "fingerprint,enumeration",
            ),
            "pjsip": _probe(
                lab,
                atk,
                f"{target}:5060",
                *common,
                "--checks",
                "fingerprint,enumeration,toll,domain,guests",
            ),
        }
        received = _nft_count(lab, pbx_host)
        pbx.stop()
        _, audit = audit_dir(scratch / "etc")
        trunk_log = log.read_text() if log.exists() else ""
        return Run(reports, received, trunk_log, {f.id for f in audit})


@pytest.fixture(scope="module")
def leaky(asterisk_prefix: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    if not netns_available():
        pytest.skip("needs root and network namespaces")
    return _run(asterisk_prefix, tmp_path_factory.mktemp("leaky"), LEAKY)


@pytest.fixture(scope="module")
def hardened(asterisk_prefix: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    if not netns_available():
        pytest.skip("needs root and network namespaces")
    return _run(asterisk_prefix, tmp_path_factory.mktemp("hardened"), HARDENED)


PLANTED = {
    "PROBE-SIP-VERSION",  # the version in Server / User-Agent
    "PROBE-SIP-ENUM",  # alwaysauthreject=no
    "PROBE-TOLL-CALL",  # allowguest=yes into a context with _00. to the trunk
    "PROBE-GUEST-CALL",  # allowguest=yes, the anonymous PJSIP endpoint
    "PROBE-AMI-OPEN",  # AMI bound to every address
    "PROBE-WEAK-SECRET",  # peer 100 with the secret "100"
    "PROBE-HTTP-OPEN",  # http.conf bound to every address
    "PROBE-IAX-OPEN",  # chan_iax2 loaded and reachable
    "PROBE-SIP-DOMAIN",  # no domain list: the bare address is answered like the domain
}


def _trunk_messages(log: str) -> tuple[list[str], list[str]]:
    """(sent, received) messages of sipp's -trace_msg file."""
    sent, received = [], []
    for block in log.split("-----------------------------------------------"):
        head, _, body = block.partition("\n\n")
        if "message sent" in head:
            sent.append(body)
        elif "message received" in head:
            received.append(body)
    return sent, received


def test_leaky_pbx_every_planted_weakness_with_its_evidence(leaky: Run) -> None:
    both = leaky.ids("chan_sip") | leaky.ids("pjsip")
    assert both >= PLANTED, PLANTED - both
    assert {"PROBE-TOLL-CALL", "PROBE-GUEST-CALL"} <= leaky.ids("pjsip")  # the anonymous endpoint

    version = leaky.finding("chan_sip", "PROBE-SIP-VERSION")
    assert "Asterisk PBX 20.20.1" in version["message"]
    assert "Server: Asterisk PBX 20.20.1" in version["evidence"][0]["received"]

    enum = [f for f in leaky.reports["chan_sip"]["findings"] if f["id"] == "PROBE-SIP-ENUM"]
    register = next(f for f in enum if f["data"]["method"] == "REGISTER")
    assert register["data"]["confirmed"] == ["100"]  # 101 and 102 do not exist
    existing, missing = register["evidence"]
    assert "From: <sip:100@" in existing["sent"] and "SIP/2.0 401" in existing["received"]
    assert "SIP/2.0 404" in missing["received"]
    assert register["audit_ids"] == ["SIP-AUTHREJECT"]
    tcp = [f for f in leaky.reports["chan_sip_tcp"]["findings"] if f["id"] == "PROBE-SIP-ENUM"]
    assert {f["data"]["method"] for f in tcp} == {"REGISTER", "INVITE", "SUBSCRIBE"}
    assert "SIP/2.0/TCP" in tcp[0]["evidence"][0]["sent"]
    assert leaky.reports["chan_sip_tcp"]["sent"][0] == {
        **leaky.reports["chan_sip_tcp"]["sent"][0],
        "channel": "sip/tcp",
        "data": "",
    }  # the connection is the first send

    for which in ("chan_sip", "pjsip"):
        toll = leaky.finding(which, "PROBE-TOLL-CALL")
        evidence = toll["evidence"][0]
        assert "CANCEL sip:00442079460000@" in evidence["sent"]
        assert "SIP/2.0 180 Ringing" in evidence["received"]
        assert "SIP/2.0 487" in evidence["received"]
        assert toll["data"]["answered"] is False
        guest = leaky.finding(which, "PROBE-GUEST-CALL")
        assert "From: <sip:anonymous@" in guest["evidence"][0]["sent"]

    ami = leaky.finding("chan_sip", "PROBE-AMI-OPEN")
    assert ami["evidence"][0]["received"].startswith("Asterisk Call Manager/")
    weak = leaky.finding("chan_sip", "PROBE-WEAK-SECRET")
    assert weak["data"] == {"account": "100", "tries": 1}
    assert 'Authorization: Digest username="100"' in weak["evidence"][0]["sent"]
    assert "SIP/2.0 200 OK" in weak["evidence"][0]["received"]


def test_the_fake_trunk_never_sees_an_answered_call(leaky: Run) -> None:
    sent, received = _trunk_messages(leaky.trunk_log)
    invites = [m for m in received if m.startswith("INVITE sip:00442079460000@")]
    cancels = [m for m in received if m.startswith("CANCEL ")]
    assert len(invites) == 2 and len(cancels) == 2  # one call via chan_sip, one via PJSIP
    answered = [m for m in sent if m.startswith("SIP/2.0 200") and " INVITE" in m]
    assert answered == []
    # each call ended by the trunk's 487 to the cancelled INVITE, acknowledged by the PBX
    assert sum(1 for m in sent if m.startswith("SIP/2.0 487")) == 2
    assert sum(1 for m in received if m.startswith("ACK ")) == 2


def test_hardened_twin_shows_none_of_them(hardened: Run) -> None:
    for which in ("chan_sip", "chan_sip_tcp", "pjsip"):
        findings = hardened.reports[which]["findings"]
        # answering OPTIONS at all is information, not one of the planted weaknesses
        assert {f["id"] for f in findings} <= {"PROBE-SIP-OPTIONS"}, findings
        notes = {n["check"]: n["status"] for n in hardened.reports[which]["checks"]}
        assert notes["enumeration/REGISTER"] == notes["enumeration/INVITE"] == "ok"
        if which != "chan_sip_tcp":
            assert notes["toll"] == notes["guests/call"] == "ok"
    notes = {n["check"]: n for n in hardened.reports["chan_sip"]["checks"]}
    assert notes["credentials/guess"]["status"] == "ok"
    assert notes["ami"]["status"] == notes["iax2"]["status"] == notes["http"]["status"] == "ok"


@pytest.mark.parametrize("variant", ["leaky", "hardened"])
def test_the_report_lists_exactly_what_was_sent(
    variant: str, request: pytest.FixtureRequest
) -> None:
    run: Run = request.getfixturevalue(variant)
    udp = 0
    for report in run.reports.values():
        assert report["sent_count"] == len(report["sent"])
        assert [s["seq"] for s in report["sent"]] == list(range(1, report["sent_count"] + 1))
        udp += sum(1 for s in report["sent"] if s["channel"].endswith("/udp"))
    assert udp == run.received_udp  # counted by nft on the PBX


def test_audit_and_probe_name_the_same_weaknesses(leaky: Run) -> None:
    probe_ids = [f["id"] for r in leaky.reports.values() for f in r["findings"]]
    pairs = dict(confirmed(probe_ids, leaky.audit_ids))
    # found in the configuration and confirmed from outside
    assert pairs["PROBE-SIP-ENUM"] == ("SIP-AUTHREJECT",)
    assert "SIP-ALLOWGUEST" in pairs["PROBE-TOLL-CALL"]
    assert "DP-TOLLFRAUD" in pairs["PROBE-TOLL-CALL"]
    assert "PJS-ANONYMOUS" in pairs["PROBE-GUEST-CALL"]
    assert "AMI-BIND" in pairs["PROBE-AMI-OPEN"]
    assert "HTTP-BIND" in pairs["PROBE-HTTP-OPEN"]
    assert {"SEC-CONTAINS-NAME", "SEC-SHORT"} <= set(pairs["PROBE-WEAK-SECRET"])


def test_protection_check_reports_the_daemons_ban(
    netlab: NetLab, asterisk_prefix: Path, tmp_path: Path
) -> None:
    """sipguard in front of the leaky PBX: password-guessing bans after 5 wrong passwords."""
    pbx_host = netlab.add_host("pbx")
    atk = netlab.add_host("atk", hub=pbx_host)
    # the leaky chan_sip (the weak secret is not guessed here: the check fails on purpose)
    leaky = {"sip.conf": "[general](+)\nalwaysauthreject = no\nallowguest = yes\n"}
    config = PbxConfig(endpoints={}, peers={"100": "100"}, extra=leaky)
    pbx = Pbx(netlab, pbx_host, tmp_path / "asterisk", asterisk_prefix, config).start()
    cfg = tmp_path / "sipguard.toml"
    cfg.write_text(
        f'[daemon]\nstate_dir = "{tmp_path}/state"\ncontrol_socket = "{tmp_path}/ctl.sock"\n'
        f'[sources.logs]\npaths = ["{pbx.messages}", "{pbx.security}"]\n'
    )
    daemon = DaemonProc(cfg, tmp_path / "ctl.sock", [], prefix=netlab.cmd(pbx_host, []))
    daemon.start()
    try:
        # 2 sends per failure (REGISTER, then the wrong answer to its challenge) at 4 per
        # second: the daemon has half a second to ban before the next failure begins
        report = _probe(
            netlab,
            atk,
            f"{atk.hub_ip}:5070",
            "--checks",
            "protection",
            "--account",
            "100",
            "--protection",
            "12",
            "--rate",
            "4",
            "--timeout",
            "1.5",
        )
        wait_for(lambda: f"{atk.ip}/32" in daemon.banned(), 5)  # the ban it ran into
    finally:
        daemon.stop()
        pbx.stop()
    assert report["findings"] == []
    assert report["data"]["protection"] == {"blocked_after": 5}
    (note,) = report["checks"]
    assert note["note"] == "this source stopped getting answers after 5 failed logins"
