"""`sipguard fraud scan` on the Master.csv a real Asterisk 20 writes (cdr_csv).

A carrier (sipp as UAC in its own namespace, identified by its address, no registration)
sends calls into the `from-pstn` context; a second carrier endpoint sends a few into
`from-trunk`; phone 1001 (digest authentication) dials a premium-rate number. Asterisk
answers each, sipp hangs up, and cdr_csv writes one row per call, as it writes them on a real
PBX. The scan must read every row (no malformed one), count the busy carrier's calls on its
trunk (`inbound_volume`, low, alert only), leave the quiet one alone, charge none of them to
an account (they are calls to the office, not by it), and flag the phone's call as its own.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from sipguard.daemon.harness import DaemonProc, wait_for
from sipguard.testing.asterisk import Pbx, PbxConfig
from sipguard.testing.netns import Host, NetLab, netns_available

pytestmark = [pytest.mark.netns, pytest.mark.slow]

PJSIP = (
    "[{name}]\ntype = endpoint\ncontext = {context}\ndisallow = all\nallow = ulaw\n"
    "[{name}]\ntype = identify\nendpoint = {name}\nmatch = {ip}\n"
)
DIALPLAN = (
    "[phones](+)\nexten => _0.,1,Answer()\n same => n,Wait(20)\n same => n,Hangup()\n"
    "[from-pstn]\nexten => _X.,1,Answer()\n same => n,Wait(20)\n same => n,Hangup()\n"
    "[from-trunk]\nexten => _X.,1,Answer()\n same => n,Wait(20)\n same => n,Hangup()\n"
)
# cdr_csv reads its options from cdr.conf's [csv]: the uniqueid and userfield columns, GMT dates
CDR = "[general]\nenable = yes\n[csv]\nusegmtime = yes\nloguniqueid = yes\nloguserfield = yes\n"
FRAUD = 'home_country = "DE"\nnational_prefix = "0"\ninternational_prefixes = ["00"]\n'
FRAUD += 'timezone = "UTC"\n'
PHONE = Path(__file__).resolve().parent / "sipp" / "uac_auth.xml"
PASSWORD = "pj-1001-Xq8#rT2vLm"


def sipp_calls(lab: NetLab, host: Host, target: str, dst: str, calls: int, *scenario: str) -> None:
    """`calls` calls from sipp's own uac scenario (INVITE, ACK on 200, BYE after 300 ms), or
    from `scenario` (sipp's arguments)."""
    argv = ["sipp", *(scenario or ("-sn", "uac")), "-s", dst, "-i", host.ip, "-p", "5062",
            "-m", str(calls), "-r", "4", "-d", "300", "-nostdin", "-timeout", "60",
            f"{target}:5060"]  # fmt: skip
    res = lab.run(host, argv, check=False, timeout=90)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]


def test_scan_of_real_master_csv_counts_inbound_calls_on_their_trunk(
    asterisk_prefix: Path, tmp_path: Path
) -> None:
    if not netns_available():
        pytest.skip("needs root and network namespaces")
    with NetLab("cdr") as lab:
        pbx_host = lab.add_host("pbx")
        busy = lab.add_host("busy", hub=pbx_host)
        quiet = lab.add_host("quiet", hub=pbx_host)
        phone = lab.add_host("phone", hub=pbx_host)
        extra = {
            "pjsip.conf": PJSIP.format(name="carrier", context="from-pstn", ip=busy.ip)
            + PJSIP.format(name="carrier2", context="from-trunk", ip=quiet.ip),
            "extensions.conf": DIALPLAN,
            "cdr.conf": CDR,
        }
        config = PbxConfig(endpoints={"1001": PASSWORD}, peers={}, extra=extra)
        # cdr_csv writes into an existing directory only ("Unable to open file"): `make
        # install` creates it on a real PBX
        (tmp_path / "pbx" / "log" / "cdr-csv").mkdir(parents=True)
        pbx = Pbx(lab, pbx_host, tmp_path / "pbx", asterisk_prefix, config).start()
        try:
            sipp_calls(lab, busy, busy.hub_ip, "0301234567", 12)  # a DID, 12 times in ~3 s
            sipp_calls(lab, quiet, quiet.hub_ip, "200", 3)  # an extension, 3 times
            auth = ("-sf", str(PHONE), "-key", "phone", "1001", "-au", "1001", "-ap", PASSWORD)
            sipp_calls(lab, phone, phone.hub_ip, "09001234567", 1, *auth)  # premium rate
            master = tmp_path / "pbx" / "log" / "cdr-csv" / "Master.csv"
            wait_for(lambda: master.exists() and len(master.read_text().splitlines()) >= 16)
        finally:
            pbx.stop()

    with master.open(newline="") as f:
        rows = list(csv.reader(f))
    assert len(rows) == 16
    by_context = {r[3] for r in rows}
    assert by_context == {"from-pstn", "from-trunk", "phones"}  # dcontext, as cdr_csv writes it
    assert all(r[5].startswith(("PJSIP/carrier-", "PJSIP/carrier2-", "PJSIP/1001-")) for r in rows)
    assert all(r[14] == "ANSWERED" for r in rows)

    conf = tmp_path / "fraud.toml"
    conf.write_text(FRAUD)
    argv = [sys.executable, "-m", "sipguard", "fraud", "scan", str(master), "--config", str(conf)]
    res = subprocess.run([*argv, "--format", "json"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 1, res.stderr  # alerts found
    report = json.loads(res.stdout)
    assert report["rows"] == 16 and report["malformed"] == {}
    assert report["calls"] == 1  # the phone's: the 15 others came in
    alerts = {(a["rule"], a["account"]): a for a in report["alerts"]}
    assert {account for _, account in alerts} == {"carrier", "1001"}
    inbound = alerts["inbound_volume", "carrier"]
    busy_uids = [r[16] for r in rows if r[5].startswith("PJSIP/carrier-")]
    assert inbound["severity"] == "low"
    assert inbound["calls"][:11] == busy_uids[:11]  # the 11th call crossed max_calls 10
    risky = alerts["risky_destination", "1001"]
    phone_uid = next(r[16] for r in rows if r[5].startswith("PJSIP/1001-"))
    assert risky["severity"] in ("high", "critical") and risky["calls"] == [phone_uid]


def test_daemon_counts_an_ivr_flood_from_real_ami_once(asterisk_prefix: Path, tmp_path: Path):
    """The carrier's calls are answered by an IVR (Answer, Wait): no DialBegin ever comes. The
    daemon, reading the real AMI and following the real Master.csv, counts each call once, at
    its Hangup, on the carrier's trunk; the CDR rows of the same calls are skipped."""
    if not netns_available():
        pytest.skip("needs root and network namespaces")
    with NetLab("ivr") as lab:
        pbx_host = lab.add_host("pbx")
        busy = lab.add_host("busy", hub=pbx_host)
        extra = {
            "pjsip.conf": PJSIP.format(name="carrier", context="from-pstn", ip=busy.ip),
            "extensions.conf": DIALPLAN,
            "cdr.conf": CDR,
        }
        (tmp_path / "pbx" / "log" / "cdr-csv").mkdir(parents=True)
        master = tmp_path / "pbx" / "log" / "cdr-csv" / "Master.csv"
        master.touch()
        config = PbxConfig(endpoints={"1001": PASSWORD}, peers={}, extra=extra)
        pbx = Pbx(lab, pbx_host, tmp_path / "pbx", asterisk_prefix, config).start()
        fraud = f'[daemon.fraud]\nenabled = true\ncdr = ["{master}"]\n[fraud]\n{FRAUD}'
        cfg = tmp_path / "sipguard.toml"
        cfg.write_text(pbx.sipguard_config(tmp_path, fraud))
        daemon = DaemonProc(cfg, tmp_path / "ctl.sock", ["--dry-run"], prefix=lab.cmd(pbx_host, []))
        try:
            daemon.start()
            wait_for(lambda: daemon.request("status")["sources"]["ami"].get("connected"), 15)
            sipp_calls(lab, busy, busy.hub_ip, "0301234567", 12)
            wait_for(lambda: len(master.read_text().splitlines()) == 12)

            def fraud() -> dict[str, Any]:
                st: dict[str, Any] = daemon.request("status")["fraud"]
                return st

            wait_for(lambda: fraud()["hits"].get("inbound_volume"), 10)
            wait_for(lambda: fraud()["tracker"]["undialled"] == 12, 10)
            time.sleep(2)  # the CDR follower reads the same 12 calls meanwhile
            st = fraud()
            cdr = daemon.request("status")["sources"]["cdr"]
        finally:
            daemon.stop()
            pbx.stop()
    assert cdr["stats"]["lines"] == 12  # the follower read every row of the same calls
    assert st["tracker"]["calls"] == 0  # no DialBegin: an IVR answered every call
    # the 11th and the 12th call each crossed max_calls 10, once: not again from the CDRs
    assert st["hits"] == {"inbound_volume": 2}


TRUNK_UAS = Path(__file__).resolve().parents[1] / "probe" / "trunk_uas.xml"  # rings 8 s


def test_daemon_hangs_up_a_real_premium_call_before_it_connects(
    asterisk_prefix: Path, tmp_path: Path
) -> None:
    """Phone 1001 dials a premium-rate number through the PBX's carrier (sipp as UAS: it rings
    and would answer after 8 s). The daemon sees the real DialBegin on AMI, hangs the call up
    and locks the account in AstDB through the same AMI: the carrier gets a CANCEL, never an
    ACK of an answer, and Asterisk's own database shows the lock."""
    if not netns_available():
        pytest.skip("needs root and network namespaces")
    with NetLab("hup") as lab:
        pbx_host = lab.add_host("pbx")
        phone = lab.add_host("phone", hub=pbx_host)
        carrier = lab.add_host("carrier", hub=pbx_host)
        extra = {
            "pjsip.conf": (
                "[carrier]\ntype = endpoint\ncontext = from-pstn\ndisallow = all\nallow = ulaw\n"
                "aors = carrier\n[carrier]\ntype = aor\n"
                f"contact = sip:{carrier.ip}:5060\n"
                f"[carrier]\ntype = identify\nendpoint = carrier\nmatch = {carrier.ip}\n"
            ),
            "extensions.conf": locking_dialplan(),
            # the fraud actions: Hangup needs the call class, DBPut the system class
            "manager.conf": "[sipguard](+)\nwrite = call,system\n",
        }
        config = PbxConfig(endpoints={"1001": PASSWORD}, peers={}, extra=extra)
        pbx = Pbx(lab, pbx_host, tmp_path / "pbx", asterisk_prefix, config).start()
        trunk_log = tmp_path / "trunk.log"
        trunk_argv = ["sipp", "-sf", str(TRUNK_UAS), "-i", carrier.ip, "-p", "5060", "-nostdin",
                      "-trace_msg", "-message_file", str(trunk_log)]  # fmt: skip
        trunk = lab.popen(carrier, trunk_argv)
        cfg = tmp_path / "sipguard.toml"
        cfg.write_text(
            pbx.sipguard_config(tmp_path, f"[daemon.fraud]\nenabled = true\n[fraud]\n{FRAUD}")
        )
        daemon = DaemonProc(cfg, tmp_path / "ctl.sock", ["--dry-run"], prefix=lab.cmd(pbx_host, []))
        try:
            daemon.start()
            wait_for(lambda: daemon.request("status")["sources"]["ami"].get("connected"), 15)
            auth = ("-sf", str(PHONE), "-key", "phone", "1001", "-au", "1001", "-ap", PASSWORD)
            argv = ["sipp", *auth, "-s", "09001234567", "-i", phone.ip, "-p", "5062", "-m", "1",
                    "-nostdin", "-timeout", "30", f"{phone.hub_ip}:5060"]  # fmt: skip
            t0 = time.monotonic()
            lab.run(phone, argv, check=False, timeout=60)  # the call fails: it was hung up
            elapsed = time.monotonic() - t0

            def fraud() -> dict[str, Any]:
                st: dict[str, Any] = daemon.request("status")["fraud"]
                return st

            st = wait_for(lambda: (s := fraud())["actions"].get("lock_ok") and s, 10)
            locked = pbx.cli("database show sipguard/locked")
            wait_for(lambda: "CANCEL" in trunk_log.read_text(errors="replace"), 10)
            # the locked account dials again: the documented snippet refuses it in the dialplan
            lab.run(phone, argv, check=False, timeout=60)
            refused = wait_for(lambda: "by locked account 1001" in pbx.messages.read_text(), 10)
            trace = trunk_log.read_text(errors="replace")
        finally:
            daemon.stop()
            trunk.kill()
            pbx.stop()
    assert st["actions"]["hangup_ok"] == 1 and st["locked"] == ["1001"]
    assert st["hits"].get("risky_destination") == 1
    assert "/sipguard/locked/1001" in locked and "risky_destination" in locked
    assert refused and "refused: risky_destination" in pbx.messages.read_text()
    assert trace.count("INVITE sip:09001234567@") == 1  # the second call never left the PBX
    assert "INVITE sip:09001234567@" in trace  # the PBX did dial the carrier ...
    assert "CANCEL sip:09001234567@" in trace  # ... and cancelled it while it rang
    assert "ACK sip:09001234567@" not in trace.split("CANCEL sip:", 1)[0]  # never answered
    assert elapsed < 8.0  # the phone's call ended before the carrier would have answered
    rang = received_at(trace, "CANCEL sip:") - received_at(trace, "INVITE sip:")
    assert 0 <= rang < 1.0, f"the carrier rang {rang:.3f} s"  # 6 ms when this was written


def locking_dialplan() -> str:
    """docs/fraud.md's dialplan snippet, as documented, in the phones' context and through
    this lab's carrier: what the docs tell an administrator to paste must really work."""
    docs = (Path(__file__).resolve().parents[2] / "docs" / "fraud.md").read_text()
    snippet = docs.split("```\n[outbound]\n", 1)[1].split("```", 1)[0]
    assert "DB_EXISTS(sipguard/locked/" in snippet and "@trunk," in snippet
    return "[phones](+)\n" + snippet.replace("@trunk,", "@carrier,")


def received_at(trace: str, start: str) -> float:
    """When sipp's -trace_msg block of the first received message starting with `start` began."""
    for m in re.finditer(r"^-{20,} (\S+ \S+)\n(.*?)(?=^-{20,} |\Z)", trace, re.M | re.S):
        head, _, body = m.group(2).partition("\n\n")
        if "received" in head and body.lstrip().startswith(start):
            return datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
    raise AssertionError(f"no {start!r} received")
