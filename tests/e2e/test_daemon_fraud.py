"""Toll-fraud protection inside the real daemon: `sipguard run --dry-run` with its AMI source
pointed at the test AMI server (real wire protocol, event text as Asterisk 20 sends it).

One AMI login serves both the security events and the fraud watcher: a satellite call is hung
up within a second of its DialBegin and its account locked in AstDB over that connection; a
registration from a country the account may not use becomes a ban in the daemon (allow-list
applies), explained by the calls behind it; the learned baseline survives a restart; a SIGHUP
with new fraud rules applies them, a bad one is refused. Then the standalone `sipguard fraud
watch` hands its bans to the running daemon over the control socket.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sipguard.daemon.harness import SRC, DaemonProc
from sipguard.store import Baseline, BaselineStore, Store
from sipguard.testing.ami_calls import dial, registered
from sipguard.testing.ami_server import AmiServer
from sipguard.testing.waits import until

pytestmark = pytest.mark.slow

USERS = {"sipguard": "s3cret"}
CN_IP = "14.21.198.22"  # iptocc: CN (only text inside an AMI event; nothing is sent to it)
JP_IP = "1.0.16.1"  # iptocc: JP, allow-listed below
FR_IP = "5.39.0.1"  # iptocc: FR
LOCK_FAMILY = "sipguard/locked"
ALWAYS = 'days = ["mon","tue","wed","thu","fri","sat","sun"]\nstart = "00:00"\nend = "24:00"'


def config(tmp: Path, port: int, extra: str = "", fraud: bool = True) -> Path:
    cfg = tmp / "sipguard.toml"
    cfg.write_text(
        f"""
[daemon]
state_dir = "{tmp}/state"
control_socket = "{tmp}/ctl.sock"
tick_interval = 0.2
[daemon.fraud]
enabled = {"true" if fraud else "false"}
cdr = ["{tmp}/Master.csv"]
[sources.logs]
enabled = false
[sources.ami]
enabled = true
port = {port}
username = "sipguard"
secret = "s3cret"
keepalive = 0.0
[allow]
networks = ["{JP_IP}/32"]
[fraud]
home_country = "DE"
national_prefix = "0"
international_prefixes = ["00"]
[fraud.rules.after_hours]
{ALWAYS}
[fraud.rules.new_country]
learn_seconds = 0
[fraud.accounts."1003"]
countries = ["DE"]
{extra}
"""
    )
    return cfg


CDR_ROW = (  # cdr_csv's Master.csv with loguniqueid: a premium-rate call by 1004
    '"","1004","09001234567","from-internal","""D"" <1004>","PJSIP/1004-00000001",'
    '"PJSIP/trunk-00000002","Dial","PJSIP/09001234567@trunk","2026-11-11 10:00:00",'
    '"2026-11-11 10:00:05","2026-11-11 10:01:05",65,60,"ANSWERED","DOCUMENTATION",'
    '"1762855200.1",""\n'
)


def cli(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "sipguard", *argv]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=20, env=env)


def stored_baseline(path: Path) -> Baseline | None:
    store = Store.open(path)
    try:
        return BaselineStore(store).load()
    finally:
        store.close()


def fraud_status(d: DaemonProc) -> dict[str, Any]:
    st: dict[str, Any] = d.request("status")["fraud"]
    return st


async def start(d: DaemonProc, server: AmiServer, logins: int) -> None:
    await asyncio.to_thread(d.start)
    await until(lambda: server.logins >= logins)


def test_fraud_protection_runs_inside_the_daemon(tmp_path: Path) -> None:
    asyncio.run(asyncio.wait_for(_daemon_flow(tmp_path), 60))


async def _daemon_flow(tmp: Path) -> None:
    async with AmiServer(USERS) as server:
        cfg = config(tmp, server.port)
        sock = tmp / "ctl.sock"
        (tmp / "Master.csv").write_text("")
        d = DaemonProc(cfg, sock, ["--dry-run"])
        try:
            await start(d, server, 1)
            assert server.logins == 1  # ONE AMI client for security events and fraud
            # a national call: nothing happens
            await dial(server, "1001", 1, "03012345678")
            # a satellite call: hung up within 1 s of its DialBegin, the account locked
            t0 = time.monotonic()
            channel, _uid = await dial(server, "1001", 3, "00881612345678")
            hangup = await server.wait_for_action("Hangup", timeout=5)
            elapsed = time.monotonic() - t0
            assert elapsed < 1.0, f"Hangup sent {elapsed:.3f}s after DialBegin"
            assert hangup.get("Channel") == channel
            await server.wait_for_action("DBPut", timeout=5)
            assert server.db[(LOCK_FAMILY, "1001")].startswith("risky_destination")
            assert [a.get("Channel") for a in server.actions if a.get("Action") == "Hangup"] == [
                channel
            ]
            st = await until(lambda: (s := fraud_status(d))["actions"].get("lock_ok") and s)
            assert st["hits"]["risky_destination"] >= 1
            assert st["actions"]["hangup_ok"] == 1 and st["locked"] == ["1001"]

            # a CDR row appended to the followed Master.csv is checked too
            await until(lambda: d.request("status")["sources"]["fraud"]["running"])
            with (tmp / "Master.csv").open("a") as f:
                f.write(CDR_ROW)
            recent = await until(
                lambda: [
                    r for r in d.request("status")["recent_alerts"] if r["key"] == "account:1004"
                ]
            )
            assert recent[0]["rule"] == "fraud.risky_destination"
            assert recent[0]["reason"].endswith("calls 1762855200.1")

            # registration of 1003 (allowed only in DE) from China: banned by the daemon
            await registered(server, "1003", CN_IP, "sess-cn")
            await until(lambda: f"{CN_IP}/32" in d.banned())
            out = cli("bans", "--json", "--socket", str(sock))
            assert out.returncode == 0, out.stderr
            ban = next(b for b in json.loads(out.stdout) if b["network"] == f"{CN_IP}/32")
            assert ban["rule"] == "fraud.address_country" and ban["action"] == "ban"
            assert "CN" in ban["reason"] and ban["remaining"] > 0
            ex = d.request("explain", {"addr": CN_IP})
            assert ex["active"]["rule"] == "fraud.address_country"
            assert [e["detail"] for e in ex["events"]] == ["fraud:address_country"]
            assert ex["events"][0]["account"] == "1003"
            assert ex["events"][0]["kind"] == "toll_fraud"
            # the same from an allow-listed address: alerted, locked, never banned
            await registered(server, "1003", JP_IP, "sess-jp")
            await until(lambda: d.request("status")["pipeline"].get("decisions_allowed", 0) >= 1)
            assert f"{JP_IP}/32" not in d.banned()
            recent = d.request("status")["recent_alerts"]
            assert any(r["rule"] == "fraud.address_country" for r in recent)

            # 1002 learns GB; the baseline is saved at stop and loaded at the next start
            await dial(server, "1002", 20, "00442079460000")
            await until(lambda: fraud_status(d)["hits"].get("new_country", 0) >= 1)
            assert await asyncio.to_thread(d.stop) == 0
            saved = stored_baseline(tmp / "state" / "sipguard.db")
            assert saved is not None and saved["accounts"]["1002"] == ["GB"]

            await start(d, server, 2)
            assert f"{CN_IP}/32" in d.banned()  # the ban survived too
            await dial(server, "1002", 30, "00442079460001")  # GB again: known, no alert
            await dial(server, "1002", 32, "0033142685300")  # FR: new
            await until(lambda: fraud_status(d)["tracker"]["calls"] >= 2)
            st = await until(lambda: (s := fraud_status(d))["hits"].get("new_country") and s)
            assert st["hits"] == {"new_country": 1}  # FR only

            # SIGHUP: a bad fraud setting is refused and the watcher keeps running ...
            cfg.write_text(cfg.read_text() + "\n[fraud.rules.nonsense]\nx = 1\n")
            d.send(signal.SIGHUP)
            await until(lambda: d.request("status")["reloads"]["failed"] == 1)
            assert "fraud.rules.nonsense" in d.request("status")["reloads"]["last_error"]
            # ... a good one applies: every account now only in DE
            cfg.write_text(
                config(tmp, server.port)
                .read_text()
                .replace(
                    "learn_seconds = 0",
                    'learn_seconds = 0\n[fraud.rules.address_country]\nallowed = ["DE"]',
                )
            )
            d.send(signal.SIGHUP)
            await until(lambda: d.request("status")["reloads"]["ok"] == 1)
            await until(lambda: d.request("status")["sources"].get("fraud", {}).get("running"))
            await registered(server, "1009", FR_IP, "sess-fr")
            await until(lambda: f"{FR_IP}/32" in d.banned())
            assert server.logins == 2  # the reload kept the AMI session
        finally:
            await asyncio.to_thread(d.stop)
            log = d.log.read_text() if d.log.exists() else ""
        assert "Traceback" not in log, log


def test_standalone_watch_sends_bans_to_the_running_daemon(tmp_path: Path) -> None:
    asyncio.run(asyncio.wait_for(_watch_flow(tmp_path), 60))


async def _watch_flow(tmp: Path) -> None:
    async with AmiServer(USERS) as server:
        # the daemon without fraud protection; `fraud watch` on its own AMI login
        cfg = config(tmp, server.port, fraud=False)
        sock = tmp / "ctl.sock"
        secret = tmp / "ami.secret"
        secret.write_text("s3cret\n")
        argv = ["fraud", "watch", "--config", str(cfg), "--port", str(server.port)]
        argv += ["--user", "sipguard", "--secret-file", str(secret)]
        env = {"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"}
        watch_log = tmp / "watch.log"
        d = DaemonProc(cfg, sock, ["--dry-run"])
        with watch_log.open("w") as out:
            watch = subprocess.Popen(
                [sys.executable, "-m", "sipguard", *argv], stdout=out, stderr=out, env=env
            )
        try:
            await until(lambda: server.logins >= 1)
            # no daemon yet: the ban is logged, nothing else
            await registered(server, "1003", CN_IP, "sess-1")
            await until(lambda: "not applied" in watch_log.read_text())
            assert f"fraud ban {CN_IP}/32 not applied (sipguard is not running" in (
                watch_log.read_text()
            )
            await start(d, server, 2)
            assert d.request("status")["fraud"] == {"enabled": False}
            await registered(server, "1004", FR_IP, "sess-2")  # no country list: nothing
            await registered(server, "1003", FR_IP, "sess-3")
            bans = await until(lambda: d.request("bans", {"evidence": True}))
            assert [b["network"] for b in bans] == [f"{FR_IP}/32"]
            assert bans[0]["rule"] == "manual"
            assert bans[0]["reason"].startswith("fraud.address_country: 5.39.0.1 is in FR")
            assert bans[0]["reason"].endswith("calls 1003@5.39.0.1")  # the call behind it
            assert 86000 < bans[0]["remaining"] <= 86400  # --ban-for 1d
            # an allow-listed address: the daemon refuses, the watcher logs it
            await registered(server, "1003", JP_IP, "sess-4")
            await until(lambda: f"fraud ban {JP_IP}/32 not applied" in watch_log.read_text())
            assert "allow-list" in watch_log.read_text()
            assert [b["network"] for b in d.request("bans")] == [f"{FR_IP}/32"]
        finally:
            watch.send_signal(signal.SIGTERM)
            try:
                watch.wait(10)
            except subprocess.TimeoutExpired:
                watch.kill()
                watch.wait(5)
            await asyncio.to_thread(d.stop)
