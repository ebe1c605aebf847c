"""The README's install, then every command the README names, as a new admin runs them.

A copy of the checkout gets `./install.sh --service` with a PATH of system directories only (so
nothing installed by hand elsewhere can hide a missing step), its configuration and units in
temporary directories. Then each command of the README runs from that install's .venv: the
daemon (dry-run firewall) and its control commands, scan, rules, audit/harden, fraud scan, and
what touches the kernel (the daemon with nftables, firewall list/remove, the sensor) in a network
namespace of its own. A command of the README that this test does not run fails the test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LOG = ROOT / "src/sipguard/rules/password-guessing/samples/input.log"
AUDIT_DIR = ROOT / "tests/audit/fixtures/chansip"
CDR = (
    '"","1001","004930123456","from-internal","""Alice"" <1001>","PJSIP/1001-0000001a",'
    '"PJSIP/trunk-0000001b","Dial","PJSIP/004930123456@trunk,60","2026-11-22 10:00:00",'
    '"2026-11-22 10:00:07","2026-11-22 10:02:07",127,120,"ANSWERED","DOCUMENTATION",'
    '"1763805600.26",""\n'
)

pytestmark = pytest.mark.slow

# every `sipguard WORD` of the README -> covered below (the test fails on a new one)
COVERED = {
    "scan", "rules", "run", "status", "bans", "ban", "unban", "allow", "explain", "reload",
    "config", "firewall", "sensor", "audit", "harden", "fraud",
}  # fmt: skip


def readme_commands() -> set[str]:
    """The commands the README shows in code: `sipguard WORD ...` or `.venv/bin/sipguard WORD`."""
    text = (ROOT / "README.md").read_text()
    return set(re.findall(r"`(?:[\w./-]*/)?sipguard ([a-z][a-z-]*)", text))


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.geteuid() != 0:
        pytest.skip("install.sh runs as root")
    base = tmp_path_factory.mktemp("install")
    checkout = base / "sipguard"
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        src = ROOT / name.decode()
        if src.is_file():
            dst = checkout / name.decode()
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    (base / "units").mkdir()
    env = {
        "PATH": SYSTEM_PATH,
        "HOME": os.environ.get("HOME", "/root"),
        "SIPGUARD_ETC": str(base / "etc"),
        "SIPGUARD_UNIT_DIR": str(base / "units"),
    }
    res = subprocess.run(
        ["./install.sh", "--service"],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"Start with: {checkout}/.venv/bin/sipguard run" in res.stdout
    return base


def sg(
    base: Path, *args: str, timeout: float = 60, netns: bool = False
) -> subprocess.CompletedProcess[str]:
    argv = [str(base / "sipguard/.venv/bin/sipguard"), *args]
    if netns:  # the kernel of a namespace of its own: nothing of the host's firewall is touched
        argv = ["unshare", "-n", "--", *argv]
    env = {"PATH": SYSTEM_PATH, "HOME": os.environ.get("HOME", "/root")}
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)


def test_the_readme_names_no_command_this_test_does_not_run() -> None:
    assert readme_commands() - COVERED == set()


def test_install_writes_config_and_units_for_this_checkout(installed: Path) -> None:
    cfg = installed / "etc/sipguard.toml"
    assert cfg.is_file() and (cfg.stat().st_mode & 0o777) == 0o640
    for unit in ("sipguard.service", "sipguard-sensor.service"):
        text = (installed / "units" / unit).read_text()
        assert f"ExecStart={installed}/sipguard/.venv/bin/sipguard " in text
        if shutil.which("systemd-analyze"):
            res = subprocess.run(
                ["systemd-analyze", "verify", str(installed / "units" / unit)],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert res.returncode == 0, res.stderr
    # the optional parts are there: the sensor's NFQUEUE binding and notifications
    py = installed / "sipguard/.venv/bin/python"
    subprocess.run([str(py), "-c", "import netfilterqueue, apprise"], check=True, timeout=60)


def test_offline_commands(installed: Path, tmp_path: Path) -> None:
    assert sg(installed, "--version").stdout.startswith("sipguard ")
    assert sg(installed, "config", "check", "--config", str(installed / "etc")).returncode == 0
    res = sg(installed, "scan", "--year", "2026", str(LOG))
    assert res.returncode == 1 and "ban 10m (simulated)" in res.stdout, res.stderr
    assert "password-guessing" in sg(installed, "rules", "list").stdout
    res = sg(installed, "rules", "test", "password-guessing", str(LOG), "--year", "2026")
    assert res.returncode == 0 and "ALERT" in res.stdout
    res = sg(installed, "audit", str(AUDIT_DIR))
    assert res.returncode == 0 and "score" in res.stdout, res.stderr
    res = sg(installed, "harden", str(AUDIT_DIR), "--out", str(tmp_path / "hardened"))
    assert res.returncode == 0 and "audit after hardening" in res.stdout, res.stderr
    cdr = tmp_path / "Master.csv"
    cdr.write_text(CDR)
    res = sg(installed, "fraud", "scan", str(cdr))
    assert res.returncode in (0, 1) and "Traceback" not in res.stderr, res.stderr
    assert sg(installed, "fraud", "watch", "--help").returncode == 0


def test_kernel_commands_in_a_namespace(installed: Path) -> None:
    if shutil.which("unshare") is None or shutil.which("nft") is None:
        pytest.skip("unshare or nft missing")
    # a kernel without sipguard's table: one line saying so, nothing removed that is not ours
    res = sg(installed, "firewall", "list", netns=True)
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert "the daemon creates it at start" in res.stderr
    res = sg(installed, "firewall", "remove", netns=True)
    assert res.returncode == 0, res.stderr
    res = sg(installed, "firewall", "render", "--domain", "pbx.example.net")
    assert res.returncode == 0 and "pbx.example.net" in res.stdout, res.stderr
    # the sensor binds its queue and says so, then stops on SIGTERM
    argv = ["unshare", "-n", "--", str(installed / "sipguard/.venv/bin/sipguard"), "sensor"]
    argv += ["--domain", "pbx.example.net", "--queue", "7"]
    with subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": SYSTEM_PATH},
    ) as proc:
        try:
            deadline = time.monotonic() + 20
            line = ""
            assert proc.stderr is not None
            while time.monotonic() < deadline and "running on queue" not in line:
                line = proc.stderr.readline()
                if not line and proc.poll() is not None:
                    break
            assert "sipguard sensor: running on queue 7" in line, line
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)


def test_daemon_and_control_commands(installed: Path, tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    sock = tmp_path / "ctl.sock"
    (conf / "sipguard.toml").write_text(
        f'[daemon]\nstate_dir = "{tmp_path}/state"\ncontrol_socket = "{sock}"\n'
        f'[sources.logs]\npaths = ["{tmp_path}/messages"]\n'
    )
    # the real nftables backend, in a network namespace of its own
    argv = ["unshare", "-n", "--", str(installed / "sipguard/.venv/bin/sipguard"), "run"]
    log = tmp_path / "daemon.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [*argv, "--config", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={"PATH": SYSTEM_PATH},
        )
    ctl = ("--socket", str(sock))
    try:
        deadline = time.monotonic() + 20
        while sg(installed, "status", *ctl).returncode != 0:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        status = json.loads(sg(installed, "status", "--json", *ctl).stdout)
        assert status["running"] is True and status["backend"] == "nftables", status
        assert sg(installed, "ban", "203.0.113.9", "--for", "1h", *ctl).returncode == 0
        assert "203.0.113.9" in sg(installed, "bans", *ctl).stdout
        assert "manual ban" in sg(installed, "explain", "203.0.113.9", *ctl).stdout
        assert sg(installed, "unban", "203.0.113.9", *ctl).returncode == 0
        assert sg(installed, "allow", "192.0.2.0/24", *ctl).returncode == 0
        assert sg(installed, "reload", *ctl).stdout.startswith("reloaded")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    assert (tmp_path / "state").stat().st_mode & 0o777 == 0o750
