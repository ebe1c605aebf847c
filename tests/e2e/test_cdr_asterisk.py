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
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sipguard.daemon.harness import DaemonProc, wait_for
from sipguard.testing.asterisk import Pbx, PbxConfig
from sipguard.testing.netns import NetLab, netns_available

sys.path.insert(0, str(Path(__file__).parent))
from fraudlab import FRAUD, PASSWORD, PHONE, sipp_calls

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
