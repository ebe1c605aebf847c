"""`sipguard rules list` and `rules test RULE FILE` show and run the fraud rules like the log
rules: listed with their detector, parameters and profile; tested on a CDR file row by row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sipguard.cli.main import main

FRAUD = Path(__file__).parents[2] / "src/sipguard/rules/fraud"


def test_rules_list_shows_the_fraud_rules(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "list", "--format", "json"]) == 0
    rules = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert "password-guessing" in rules  # the log rules are still there
    spend = rules["fraud-spend"]
    assert (spend["detector"], spend["params"], spend["profile"]) == (
        "spend",
        {"daily_limit": 50.0},
        "fraud-stop",
    )
    assert spend["group_by"] == "account" and "call_end" in spend["kinds"]
    assert len([r for r in rules if r.startswith("fraud-")]) == len(list(FRAUD.iterdir()))
    assert main(["rules", "list"]) == 0
    out = capsys.readouterr().out
    assert "fraud velocity" in out and "max_calls 25" in out and "fraud-stop" in out


def test_rules_test_runs_a_fraud_rule_on_a_cdr_file(capsys: pytest.CaptureFixture[str]) -> None:
    samples = FRAUD / "fraud-spend/samples"
    argv = ["rules", "test", "fraud-spend", str(samples / "Master.csv")]
    argv += ["--rates", str(samples / "rates.csv"), "--config", str(samples / "fraud.toml")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("rule fraud-spend: fraud detector spend (daily_limit 50.0)")
    assert "event call_end ip=none account='1001' target='00442079460123'" in out
    assert out.count("ALERT ") == 1
    assert "ALERT account:1001 -> profile fraud-stop: 60.00 spent today" in out
    assert out.rstrip().endswith("2 rows, 1 alerts")
    # without the rate table nothing is charged: the same rows, no alert
    assert main(["rules", "test", "fraud-spend", str(samples / "Master.csv")]) == 0
    assert capsys.readouterr().out.rstrip().endswith("2 rows, 0 alerts")


def test_fraud_rule_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "test", "fraud-spend", str(tmp_path / "missing.csv")]) == 2
    assert capsys.readouterr().err == (
        f"sipguard: error: {tmp_path}/missing.csv: No such file or directory\n"
    )
    assert main(["rules", "test", "fraud-nope", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "fraud-nope: no such rule" in err and "fraud-velocity" in err
    junk = tmp_path / "junk.csv"
    junk.write_bytes(b"\x00\xff garbage,,,\n" * 50)
    assert main(["rules", "test", "fraud-velocity", str(junk)]) == 0
    assert capsys.readouterr().out.rstrip().endswith("0 alerts")


def test_rules_test_tells_inbound_calls_by_their_dcontext(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Twelve calls into from-pstn from an endpoint not named in `trunks`: only the dcontext
    says they came in. `rules test` counts them on their trunk, as `fraud scan` does."""
    rows = "".join(
        f'"","sipp","0301234567","from-pstn","""sipp"" <sipp>","PJSIP/provider-{i:08x}","",'
        f'"Answer","","2026-12-06 10:00:{i * 4:02d}","2026-12-06 10:00:{i * 4:02d}",'
        f'"2026-12-06 10:00:{i * 4 + 1:02d}",1,1,"ANSWERED","DOCUMENTATION","1796.{i}",""\n'
        for i in range(12)
    )
    cdr = tmp_path / "Master.csv"
    cdr.write_text(rows)
    assert main(["rules", "test", "fraud-inbound-volume", str(cdr)]) == 0
    out = capsys.readouterr().out
    assert "ALERT account:provider -> profile fraud-alert: 11 inbound calls in 300s" in out
    assert out.rstrip().endswith("12 rows, 2 alerts")
    assert main(["fraud", "scan", str(cdr), "--format", "json"]) == 1
    alerts = json.loads(capsys.readouterr().out)["alerts"]
    assert [(a["rule"], a["account"]) for a in alerts] == [("inbound_volume", "provider")]
