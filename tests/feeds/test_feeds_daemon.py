"""`sipguard run` (enforcer + parser, nftables) in a namespace the test creates, with two plain
feeds (a file and an HTTP server in that namespace): the kernel holds the feeds minus the
allow-list, `feeds refresh` reloads, `feeds status` reports, `bans --format` exports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sipguard.daemon.harness import DaemonProc, wait_for, write_config

pytestmark = [pytest.mark.netns, pytest.mark.slow]


def feed_elements(lab, host) -> dict[str, set[str]]:
    data = json.loads(lab.run(host, ["nft", "-j", "list", "table", "inet", "sipguard"]).stdout)
    out: dict[str, set[str]] = {}
    for item in data["nftables"]:
        s = item.get("set")
        if not s or not s["name"].startswith("feed_"):
            continue
        elems = set()
        for e in s.get("elem", []):
            val = e["elem"]["val"] if isinstance(e, dict) and "elem" in e else e
            if isinstance(val, dict):
                val = f"{val['prefix']['addr']}/{val['prefix']['len']}"
            elems.add(val)
        out[s["name"]] = elems
    return out


def test_daemon_loads_feeds_into_kernel_and_exports_bans(netlab, tmp_path: Path):
    pbx = netlab.add_host("pbx")
    web = tmp_path / "web"
    web.mkdir()
    (web / "list.txt").write_text("45.1.0.0/16\n198.51.100.9\n203.0.113.0/24\n2001:db8:5::/48\n")
    netlab.popen(
        pbx, [sys.executable, "-m", "http.server", "8099", "--bind", "127.0.0.1", "-d", str(web)]
    )
    probe = "import urllib.request as u; u.urlopen('http://127.0.0.1:8099/list.txt', timeout=2)"
    # up before the daemon's first refresh, which would otherwise wait a minute to retry
    wait_for(lambda: netlab.run(pbx, [sys.executable, "-c", probe], check=False).returncode == 0)
    local = tmp_path / "local.txt"
    local.write_text("# mine\n192.0.2.77\n")
    cfg = write_config(
        tmp_path,
        f"""
[allow]
networks = ["198.51.100.0/24", "203.0.113.64/26"]
[[feeds]]
name = "web"
kind = "plain"
url = "http://127.0.0.1:8099/list.txt"
interval = 3600
[[feeds]]
name = "local"
kind = "plain"
file = "{local}"
""",
    )
    daemon = DaemonProc(cfg, tmp_path / "ctl.sock", [], prefix=netlab.cmd(pbx, []))
    daemon.start()
    try:

        def loaded() -> list[dict]:
            rows = daemon.request("feeds_status")
            return rows if all(r["last_ok"] and r["loaded"] for r in rows) else []

        rows = {r["name"]: r for r in wait_for(loaded, 20)}
        assert rows["web"]["in_kernel"] == 4 and rows["web"]["origin"] == "blocklist:web"
        sets = feed_elements(netlab, pbx)
        # 203.0.113.0/24 minus the allowed /26: a /26 and a /25 stay; 198.51.100.9 is allowed
        assert sets["feed_web_4n"] == {"45.1.0.0/16", "203.0.113.0/26", "203.0.113.128/25"}
        assert sets["feed_web_6n"] == {"2001:db8:5::/48"}
        assert sets["feed_web_4"] == set()
        assert sets["feed_local_4"] == {"192.0.2.77"}

        # the list changes; `sipguard feeds refresh web` (the CLI, over the socket) reloads it
        (web / "list.txt").write_text("46.0.0.1\n")
        cli = [sys.executable, "-m", "sipguard"]
        proc = subprocess.run(
            [*cli, "feeds", "refresh", "web", "--socket", str(tmp_path / "ctl.sock")],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stderr
        out = proc.stdout
        assert out.startswith("web (plain): 1 entries, 1 in the kernel set")
        sets = feed_elements(netlab, pbx)
        assert sets["feed_web_4"] == {"46.0.0.1"} and sets["feed_web_4n"] == set()
        assert sets["feed_local_4"] == {"192.0.2.77"}

        # export: the active bans as a plain list and as APIBAN-like JSON
        daemon.request("ban", {"addr": "100.64.9.9", "for": "1h"})
        daemon.request("ban", {"addr": "100.65.0.0/24", "for": "1h"})
        sock = ["--socket", str(tmp_path / "ctl.sock")]
        txt = subprocess.run(
            [*cli, "bans", "--format", "txt", *sock], capture_output=True, text=True, check=True
        ).stdout
        assert txt.split() == ["100.64.9.9", "100.65.0.0/24"]
        js = json.loads(
            subprocess.run(
                [*cli, "bans", "--format", "json", *sock],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        assert js["ipaddress"] == ["100.64.9.9", "100.65.0.0/24"] and js["ID"].isdigit()
        status = daemon.request("status")
        assert {f["name"] for f in status["feeds"]} == {"web", "local"}
    finally:
        daemon.stop()
