"""`sipguard rules list` and `sipguard rules test RULE FILE`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sipguard.cli.main import main

SAMPLES = Path(__file__).parents[2] / "src/sipguard/rules"


def test_rules_list_json_and_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "list", "--format", "json"]) == 0
    rules = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    pg = rules["password-guessing"]
    assert (pg["bucket"], pg["threshold"], pg["window"], pg["group_by"], pg["profile"]) == (
        "leaky",
        5,
        600.0,
        "source",
        "default",
    )
    assert rules["scanner-signature"]["match"] == ["user_agent contains any of list 'scanners'"]
    assert main(["rules", "list"]) == 0
    out = capsys.readouterr().out
    assert "distributed-account-attack" in out and "2 distinct sources" in out


def test_rules_test_shows_events_and_alert(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("sipguard.core.asterisk")
    log = SAMPLES / "password-guessing/samples/input.log"
    assert main(["rules", "test", "password-guessing", str(log), "--year", "2026"]) == 0
    out = capsys.readouterr().out
    assert "event wrong_password ip=127.0.0.1 account='1001'" in out
    assert out.count("ALERT ") == 2
    assert "ALERT 2001:db8:0:1::/64 -> profile default: 5 wrong passwords" in out
    assert out.rstrip().endswith("2 alerts")
    # another rule on the same log: the events are shown, and why they do not count
    assert main(["rules", "test", "ami-login-failures", str(log), "--year", "2026"]) == 0
    out = capsys.readouterr().out
    assert "ignored: kind wrong_password not watched by this rule" in out and "ALERT" not in out


def test_rules_test_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "test", "no-such-rule", str(tmp_path)]) == 2
    assert "no-such-rule: no such rule" in capsys.readouterr().err
    assert main(["rules", "test", "log-tampering", str(tmp_path / "missing.log")]) == 2
    err = capsys.readouterr().err
    assert err == f"sipguard: error: {tmp_path}/missing.log: No such file or directory\n"
