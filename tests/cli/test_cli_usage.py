"""The small things a new admin trips over: usage of the right subcommand, errors before output,
JSON where JSON was asked for, listings that fit 80 columns."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sipguard.cli.main import main


def test_unknown_option_prints_the_subcommands_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["scan", "--bogus", "x.log"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: sipguard scan ")
    assert err.rstrip().endswith("sipguard scan: error: unrecognized arguments: --bogus")
    with pytest.raises(SystemExit):
        main(["config", "check", "--bogus"])
    assert capsys.readouterr().err.startswith("usage: sipguard config check ")


def test_rules_test_on_a_missing_file_prints_only_the_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rules", "test", "password-guessing", "/nonexistent"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == "sipguard: error: /nonexistent: No such file or directory\n"


def test_status_json_without_a_daemon_is_json(tmp_path: Path) -> None:
    sock = tmp_path / "none.sock"
    cmd = [sys.executable, "-m", "sipguard", "status", "--json", "--socket", str(sock)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert res.returncode == 3
    doc = json.loads(res.stdout)
    assert doc["running"] is False and str(sock) in doc["error"]


def test_rules_list_fits_80_columns() -> None:
    # a terminal of 80 columns: `script` gives the command a pty, as over SSH
    env = {**os.environ, "COLUMNS": "80", "LINES": "24", "TERM": "xterm"}
    cmd = f"{sys.executable} -m sipguard rules list"
    res = subprocess.run(
        ["script", "-qec", cmd, "/dev/null"], capture_output=True, text=True, env=env, timeout=60
    )
    assert res.returncode == 0, res.stderr
    import re

    lines = re.sub(r"\x1b\[[0-9;]*m", "", res.stdout).replace("\r", "").splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "password-guessing  leaky, 5 in 10m" in lines
    assert "    grouping source (/32, /64); profile default; severity high" in lines


def test_enumeration_reason_reads_as_a_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    log = Path(__file__).parents[2] / "src/sipguard/rules/extension-enumeration/samples/input.log"
    assert main(["scan", "--year", "2026", "--format", "json", str(log)]) == 1
    reasons = [a["decision"]["reason"] for a in json.loads(capsys.readouterr().out)["attackers"]]
    # account-probing (3 unknown accounts) decides one source, extension-enumeration another
    sentence = re.compile(
        r"\d+ distinct accounts in \d+ attempts \(\d+ (unknown accounts|wrong "
        r"passwords)\) within \d+(\.\d+)?s "
    )
    assert sum(1 for r in reasons if sentence.match(r)) == 2, reasons
    assert not any(" in 5 unknown accounts in " in r for r in reasons)


def test_config_may_name_the_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "300")  # argparse's help on one line per option
    etc = tmp_path / "sipguard"
    (etc / "conf.d").mkdir(parents=True)
    (etc / "sipguard.toml").write_text('[daemon]\nlog_level = "warning"\n')
    (etc / "conf.d" / "10-local.toml").write_text('[daemon]\nlog_level = "debug"\n')
    assert main(["config", "check", "--config", str(etc), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["daemon"]["log_level"] == "debug"
    assert main(["config", "check", "--config", str(etc / "conf.d")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sipguard: error: {etc / 'conf.d'}: no sipguard.toml and no conf.d")
    for argv in (["run", "-h"], ["config", "check", "-h"], ["status", "-h"]):
        with pytest.raises(SystemExit):
            main(argv)
        assert "or a directory holding sipguard.toml" in capsys.readouterr().out


def test_sensor_without_netfilterqueue_says_what_to_install() -> None:
    # the module blocked as if not installed: `sipguard sensor` must say so in one line
    code = (
        "import sys; sys.modules['netfilterqueue'] = None\n"
        "from sipguard.cli.main import main\n"
        "sys.exit(main(['sensor', '--domain', 'pbx.example.net', '--queue', '4711']))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert res.stderr.startswith("sipguard: error: netfilterqueue is not usable (")
    assert "./install.sh installs it" in res.stderr and "libnetfilter-queue1" in res.stderr
