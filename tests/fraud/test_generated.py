"""The proof on generated CDRs: every injected fraud is caught, a normal office raises nothing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from sipguard.cli.main import main
from sipguard.fraud.config import load_config
from sipguard.fraud.report import AlertBook, ScanResult
from sipguard.fraud.scan import build_engine, scan
from sipguard.fraud.tables import load_hotlist, load_rates

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from fraudgen import Generated, generate

ALL_RULES = {
    "velocity",
    "concurrent",
    "after_hours",
    "new_country",
    "spend",
    "short_burst",
    "risky_destination",
    "address_country",
    "distant_registrations",
}


def run_scan(g: Generated) -> ScanResult:
    engine = build_engine(load_config(g.config), load_rates(g.rates), load_hotlist(g.hotlist))
    return scan([g.cdr], engine)


@pytest.fixture(scope="module")
def fraud_set(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    return generate(tmp_path_factory.mktemp("fraud"), seed=7)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_normal_office_weeks_raise_no_alert(tmp_path: Path, seed: int) -> None:
    g = generate(tmp_path, seed=seed, accounts=25, weeks=3, fraud=False)
    result = run_scan(g)
    assert result.rows == g.rows and result.rows > 1500
    assert result.calls > 1000  # the rules really looked at the outbound calls
    assert not result.errors
    assert result.incidents == [], [i.to_dict() for i in result.incidents]


def test_every_injected_fraud_is_caught_by_its_rule_and_account(fraud_set: Generated) -> None:
    result = run_scan(fraud_set)
    assert {i.rule for i in fraud_set.injected} == ALL_RULES
    found = {(inc.rule, inc.account): inc for inc in result.incidents}
    for inj in fraud_set.injected:
        inc = found.get((inj.rule, inj.account))
        assert inc is not None, f"{inj.rule} on {inj.account} not caught"
        # the alert names calls that were part of the injected fraud
        assert set(inc.calls) & set(inj.uids), (inj.rule, inc.calls, inj.uids)
    # nothing fires on accounts that did nothing wrong
    fraud_accounts = {i.account for i in fraud_set.injected}
    assert {inc.account for inc in result.incidents} <= fraud_accounts


def test_fast_path_and_full_path_agree(fraud_set: Generated) -> None:
    """The offline hot path skips the rules when none can fire; it must not change a thing."""
    fast = run_scan(fraud_set)
    engine = build_engine(
        load_config(fraud_set.config), load_rates(fraud_set.rates), load_hotlist(fraud_set.hotlist)
    )
    book = AlertBook()
    from sipguard.fraud.cdr import CdrParser

    cfg = engine.config
    parser = CdrParser(cfg.cdr, cfg.cdr.timezone or cfg.timezone, str(fraud_set.cdr))
    for rec in parser.read_file(fraud_set.cdr):  # every row, each through every rule
        for hit in engine.cdr_call(parser.call(rec)):
            book.add(hit)
    slow = [i.to_dict() for i in book.sorted()]
    assert [i.to_dict() for i in fast.incidents] == slow
    assert fast.calls == engine.calls_seen
    assert fast.rows == parser.rows and fast.errors == parser.errors


def test_cli_json_report_and_exit_codes(
    fraud_set: Generated, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    g = fraud_set
    args = [
        "fraud",
        "scan",
        str(g.cdr),
        "--config",
        str(g.config),
        "--rates",
        str(g.rates),
        "--hotlist",
        str(g.hotlist),
        "--format",
        "json",
    ]
    assert main(args) == 1
    out = json.loads(capsys.readouterr().out)
    assert {a["rule"] for a in out["alerts"]} == ALL_RULES
    for alert in out["alerts"]:
        assert {"account", "rule", "severity", "calls", "reason"} <= set(alert)
        assert alert["calls"] and alert["severity"] in ("low", "medium", "high", "critical")

    normal = generate(tmp_path / "normal", seed=4, fraud=False)
    assert main(["fraud", "scan", str(normal.cdr), "--config", str(normal.config)]) == 0
    assert "0 alerts" in capsys.readouterr().out

    bad = tmp_path / "bad.toml"
    bad.write_text('[fraud.rules.spend]\ndaily_limit = "lots"\n')
    assert main(["fraud", "scan", str(g.cdr), "--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert str(bad) in err and "fraud.rules.spend.daily_limit" in err and "expected" in err

    assert main(["fraud", "scan", str(tmp_path / "missing.csv")]) == 2
    assert "missing.csv" in capsys.readouterr().err
