"""`sipguard run` names what it watches (issue 13 item 2) and manages its runtime allow-list
(`allow --list`, `allow --remove`, `unallow`), as a real process with the dry-run firewall."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_daemon import make_config

from sipguard.daemon.harness import SRC, DaemonProc, append, pjsip_failure, wait_for

pytestmark = pytest.mark.slow


def cli(sock: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": SRC}
    argv = [sys.executable, "-m", "sipguard", *args, "--socket", str(sock)]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30)


def test_status_names_missing_logs_and_warns_until_one_appears(tmp_path):
    d = DaemonProc(make_config(tmp_path), tmp_path / "ctl.sock", ["--dry-run"]).start()
    messages, security = f"{tmp_path}/log/messages", f"{tmp_path}/log/security"
    waiting = (
        f"no Asterisk log exists yet: waiting for {messages}, {security}:"
        " nothing is protected until one of them can be read"
    )
    try:
        st = d.request("status")
        assert st["watching"] == [
            {"source": "log", "name": messages, "state": "missing, waiting", "active": False},
            {"source": "log", "name": security, "state": "missing, waiting", "active": False},
        ]
        assert st["watch_warning"] == waiting
        assert st["sources"]["logs"]["state"] == "waiting"  # the task runs, but reads nothing
        text = cli(tmp_path / "ctl.sock", "status").stdout.splitlines()
        assert "  source logs: waiting, 0 restarts" in text
        assert f"  watching log {messages}: missing, waiting" in text
        assert f"  WARNING: {waiting}" in text
        assert not any("logs: running" in line for line in text)
        as_json = json.loads(cli(tmp_path / "ctl.sock", "status", "--json").stdout)
        assert as_json["watch_warning"] == waiting
        # the start-up log says it too, loudly
        wait_for(lambda: waiting in d.log.read_text())
        logged = d.log.read_text()
        assert "level=warning" in logged.split(waiting)[0].rsplit("\n", 1)[-1]
        assert f'msg=watching source=log name={messages} state="missing, waiting"' in logged

        (tmp_path / "log").mkdir()
        Path(messages).touch()
        wait_for(lambda: d.request("status")["sources"]["logs"]["state"] == "running", 5)
        st = d.request("status")
        assert st["watching"][0] == {
            "source": "log",
            "name": messages,
            "state": "following",
            "active": True,
        }
        assert st["watching"][1]["state"] == "missing, waiting"
        assert st["watch_warning"] is None
        text = cli(tmp_path / "ctl.sock", "status").stdout
        assert "WARNING" not in text and f"watching log {messages}: following" in text
    finally:
        d.stop()


def test_nothing_enabled_is_named(tmp_path):
    cfg = make_config(tmp_path)
    text = cfg.read_text().replace(
        "poll_interval = 0.2\n", "poll_interval = 0.2\nenabled = false\n"
    )
    cfg.write_text(text)
    d = DaemonProc(cfg, tmp_path / "ctl.sock", ["--dry-run"]).start()
    try:
        st = d.request("status")
        assert st["watching"] == [] and st["sources"] == {}
        assert st["watch_warning"].startswith("no source is enabled: sipguard watches nothing")
    finally:
        d.stop()


def test_allow_list_add_remove_persist_and_config_entries_are_fixed(tmp_path):
    (tmp_path / "log").mkdir()
    (tmp_path / "log" / "messages").touch()
    sock = tmp_path / "ctl.sock"
    cfg = make_config(tmp_path, "own_addresses = false")  # in [allow]: only what we name
    d = DaemonProc(cfg, sock, ["--dry-run"]).start()
    try:
        added = cli(sock, "allow", "198.51.100.0/24", "--note", "office")
        assert added.returncode == 0 and added.stdout == "allowed 198.51.100.0/24\n"
        listed = cli(sock, "allow", "--list").stdout.splitlines()
        assert listed == [
            f"{'127.0.0.0/8':<44} loopback  (not removable at runtime)",
            f"{'::1/128':<44} loopback  (not removable at runtime)",
            f"{'192.0.2.0/24':<44} config  (not removable at runtime)",
            f"{'198.51.100.0/24':<44} runtime",
        ]
        refused = cli(sock, "allow", "--remove", "192.0.2.0/24")
        assert refused.returncode != 0
        assert "192.0.2.0/24 is in the configuration file's [allow] networks" in refused.stderr
        unknown = cli(sock, "unallow", "203.0.113.0/24")
        assert unknown.returncode != 0 and "is not a runtime allow-list entry" in unknown.stderr
        # allowed: a burst from inside is not banned
        append(
            tmp_path / "log" / "messages",
            "".join(pjsip_failure("198.51.100.9", i) for i in range(5)),
        )
        wait_for(lambda: d.request("status")["pipeline"].get("decisions_allowed", 0) >= 1)
        assert d.banned() == set()
    finally:
        d.stop()
    d = DaemonProc(cfg, sock, ["--dry-run"]).start()  # the runtime entry survives a restart
    try:
        entries = json.loads(cli(sock, "allow", "--list", "--json").stdout)
        assert {"network": "198.51.100.0/24", "origin": "runtime"} in entries
        assert cli(sock, "allow", "--remove", "198.51.100.0/24").stdout == (
            "removed 198.51.100.0/24 from the allow-list\n"
        )
        entries = d.request("allow_list")
        assert [e for e in entries if e["origin"] == "runtime"] == []
        assert "198.51.100.0/24" not in d.request("status")["allow_list"]
        # no longer allowed: the next burst is banned
        more = "".join(pjsip_failure("198.51.100.9", 10 + i) for i in range(5))
        append(tmp_path / "log" / "messages", more)
        wait_for(lambda: "198.51.100.9/32" in d.banned())
    finally:
        d.stop()


def test_ami_that_does_not_answer_is_named_not_connected_never_running(tmp_path):
    import socket

    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = make_config(tmp_path)
    text = cfg.read_text().replace(
        "poll_interval = 0.2\n", "poll_interval = 0.2\nenabled = false\n"
    )
    ami = f'[sources.ami]\nenabled = true\nport = {port}\nusername = "u"\nsecret = "s"\n'
    cfg.write_text(text + ami)
    d = DaemonProc(cfg, tmp_path / "ctl.sock", ["--dry-run"]).start()
    try:
        wait_for(lambda: d.request("status")["sources"]["ami"]["ami_error"], 10)
        st = d.request("status")
        [watch] = st["watching"]
        assert watch["source"] == "ami" and watch["name"] == f"127.0.0.1:{port}"
        assert watch["state"].startswith("not connected (") and watch["active"] is False
        assert st["sources"]["ami"]["state"] == "waiting"
        assert st["watch_warning"] == (
            f"nothing read from ami 127.0.0.1:{port} ({watch['state']}):"
            " nothing is protected until one of them can be read"
        )
        text = cli(tmp_path / "ctl.sock", "status").stdout
        assert "  source ami: waiting," in text and "ami: running" not in text
    finally:
        d.stop()


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((), "sipguard: error: allow: give a CIDR, --list or --remove CIDR\n"),
        (("--list", "192.0.2.1"), "sipguard: error: allow --list takes no CIDR\n"),
        (
            ("192.0.2.1", "--remove", "192.0.2.2"),
            "sipguard: error: allow --remove CIDR takes no second CIDR\n",
        ),
    ],
)
def test_allow_usage_errors_are_one_line_before_any_request(tmp_path, args, error):
    done = cli(tmp_path / "no-daemon.sock", "allow", *args)
    assert done.returncode == 2 and done.stderr == error
