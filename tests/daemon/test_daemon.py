"""`sipguard run` as a real process (dry-run firewall): bans at the threshold, the control
commands, reload (good and bad), restart, and a start with no Asterisk logs yet."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from sipguard.daemon.control import ControlError
from sipguard.daemon.harness import DaemonProc, append, pjsip_failure, wait_for

pytestmark = pytest.mark.slow


def make_config(tmp: Path, extra: str = "") -> Path:
    cfg = tmp / "etc" / "sipguard.toml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(
        f"""
[daemon]
state_dir = "{tmp}/state"
control_socket = "{tmp}/ctl.sock"
tick_interval = 0.2
[sources.logs]
paths = ["{tmp}/log/messages", "{tmp}/log/security"]
poll_interval = 0.2
[allow]
networks = ["192.0.2.0/24"]
{extra}
"""
    )
    return cfg


@pytest.fixture
def daemon(tmp_path):
    (tmp_path / "log").mkdir()
    (tmp_path / "log" / "messages").touch()
    d = DaemonProc(make_config(tmp_path), tmp_path / "ctl.sock", ["--dry-run"])
    d.start()
    yield d
    d.stop()


def attack(tmp: Path, ip: str, count: int, start: int = 0, file: str = "messages") -> None:
    append(tmp / "log" / file, "".join(pjsip_failure(ip, start + i) for i in range(count)))


def test_ban_after_exactly_the_threshold_and_control_commands(daemon, tmp_path):
    attack(tmp_path, "203.0.113.7", 4)
    wait_for(lambda: daemon.request("status")["pipeline"].get("events", 0) >= 4)
    assert daemon.banned() == set()  # 4 of 5: not yet
    attack(tmp_path, "203.0.113.7", 1, start=4)
    wait_for(lambda: daemon.banned() == {"203.0.113.7/32"})
    # explain: the rule, the events and the very log lines
    logs = daemon.request("status")["sources"]["logs"]
    assert logs["inotify"] is True and logs["stats"]["lines"] >= 5
    ex = daemon.request("explain", {"addr": "203.0.113.7"})
    assert ex["active"]["rule"] == "password-guessing"
    assert len(ex["events"]) == 5
    assert all("failed for '203.0.113.7:5301'" in e["origin"]["text"] for e in ex["events"])
    assert ex["events"][0]["origin"]["source"].endswith("/log/messages")
    # an allow-listed source is never banned, even past the threshold
    attack(tmp_path, "192.0.2.9", 8)
    wait_for(lambda: daemon.request("status")["pipeline"].get("decisions_allowed", 0) >= 1)
    assert "192.0.2.9/32" not in daemon.banned()
    # manual ban / unban, and the allow-list guard on manual bans
    daemon.request("ban", {"addr": "198.51.100.0/24", "for": "10m", "reason": "test"})
    assert "198.51.100.0/24" in daemon.banned()
    with pytest.raises(ControlError, match="allow-list"):
        daemon.request("ban", {"addr": "192.0.2.5"})
    with pytest.raises(ControlError, match="allow-list"):
        daemon.request("ban", {"addr": "127.0.0.1"})  # loopback, always allowed
    with pytest.raises(ControlError, match="not an address"):
        daemon.request("ban", {"addr": "nonsense"})
    daemon.request("unban", {"addr": "198.51.100.0/24"})
    assert daemon.banned() == {"203.0.113.7/32"}
    with pytest.raises(ControlError, match="is not banned"):
        daemon.request("unban", {"addr": "198.51.100.0/24"})
    # allow lifts the ban
    r = daemon.request("allow", {"cidr": "203.0.113.0/28"})
    assert r["unbanned"] == ["203.0.113.7/32"]
    assert daemon.banned() == set()
    attack(tmp_path, "203.0.113.8", 6, start=100)  # newly allowed range: never banned
    wait_for(lambda: daemon.request("status")["pipeline"].get("decisions_allowed", 0) >= 2)
    assert daemon.banned() == set()


def test_reload_bad_file_keeps_running_config_good_file_applies(daemon, tmp_path):
    confd = tmp_path / "etc" / "conf.d"
    confd.mkdir()
    bad = confd / "50-bad.toml"
    bad.write_text("[rules.password-guessing]\nthreshold = -1\n")
    daemon.send(signal.SIGHUP)
    st = wait_for(lambda: (s := daemon.request("status"))["reloads"]["failed"] == 1 and s)
    assert "50-bad.toml: rules.password-guessing.threshold" in st["reloads"]["last_error"]
    assert "\n" not in st["reloads"]["last_error"]
    # the old rules still run: 5 failures ban
    attack(tmp_path, "203.0.113.20", 5)
    wait_for(lambda: "203.0.113.20/32" in daemon.banned())
    # a good reload: the threshold drops to 2
    bad.write_text("[rules.password-guessing]\nthreshold = 2\n")
    r = daemon.request("reload")
    assert r["reloaded"] is True
    attack(tmp_path, "203.0.113.21", 2)
    wait_for(lambda: "203.0.113.21/32" in daemon.banned())
    assert daemon.request("status")["reloads"]["ok"] == 1
    # a reload that changes the followed files restarts only the log source, on the new list
    other = tmp_path / "log" / "other.log"
    other.touch()
    (confd / "60-paths.toml").write_text(f'[sources.logs]\npaths = ["{other}"]\n')
    assert daemon.request("reload")["reloaded"] is True
    wait_for(lambda: daemon.request("status")["sources"]["logs"].get("running"))
    time.sleep(0.3)  # the new follower has opened the file (from its end)
    attack(tmp_path, "203.0.113.22", 2, file="other.log")
    wait_for(lambda: "203.0.113.22/32" in daemon.banned())


def test_restart_keeps_bans_and_offsets(daemon, tmp_path):
    attack(tmp_path, "203.0.113.30", 5)
    wait_for(lambda: daemon.banned() == {"203.0.113.30/32"})
    assert daemon.stop() == 0
    assert not (tmp_path / "ctl.sock").exists()
    # written while the daemon is down: counted once after the restart, not missed
    attack(tmp_path, "203.0.113.31", 5)
    daemon.start()
    assert "203.0.113.30/32" in daemon.banned()
    wait_for(lambda: "203.0.113.31/32" in daemon.banned())
    events = daemon.request("status")["pipeline"].get("events", 0)
    assert events == 5  # the 5 new lines only: nothing read twice
    log = (tmp_path / "etc" / "daemon.log").read_text()
    assert "kernel set reconciled" in log and "sipguard stopped" in log


def test_starts_without_asterisk_logs_and_picks_them_up(tmp_path):
    cfg = make_config(tmp_path)
    d = DaemonProc(cfg, tmp_path / "ctl.sock", ["--dry-run"])
    d.start()
    try:
        assert d.request("status")["sources"]["logs"]["running"] is True
        (tmp_path / "log").mkdir()  # Asterisk installed later
        wait_for(lambda: (tmp_path / "log").is_dir())
        messages = tmp_path / "log" / "messages"
        messages.touch()
        wait_for(lambda: d.request("status")["sources"]["logs"]["running"], 5)
        for i in range(5):
            append(messages, pjsip_failure("203.0.113.40", i))
        wait_for(lambda: "203.0.113.40/32" in d.banned(), 10)
    finally:
        d.stop()


def test_simulate_reports_but_never_bans(tmp_path):
    (tmp_path / "log").mkdir()
    (tmp_path / "log" / "messages").touch()
    d = DaemonProc(make_config(tmp_path), tmp_path / "ctl.sock", ["--dry-run", "--simulate"])
    d.start()
    try:
        assert d.request("status")["simulate"] is True
        attack(tmp_path, "203.0.113.50", 6)
        wait_for(lambda: d.request("status")["pipeline"].get("decisions_simulate", 0) >= 1)
        assert d.banned() == set()
        alerts = d.request("status")["recent_alerts"]
        assert any(a["key"] == "203.0.113.50" and a["action"] == "simulate" for a in alerts)
    finally:
        d.stop()


def test_second_daemon_refuses_to_start(daemon, tmp_path):
    import subprocess
    import sys

    from sipguard.daemon.harness import SRC

    argv = [sys.executable, "-m", "sipguard", "run", "--dry-run", "--config", str(daemon.config)]
    env = {"PYTHONPATH": SRC, "PATH": "/usr/bin"}
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)
    assert out.returncode == 2
    assert out.stderr.strip().endswith("another sipguard daemon is answering there")
    assert len(out.stderr.strip().splitlines()) == 1
    assert daemon.request("status")["pid"]  # the first one is unharmed
