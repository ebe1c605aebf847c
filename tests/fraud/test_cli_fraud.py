"""`sipguard fraud scan` as a new admin meets it (issue 13): the installed example config, a
directory where a file belongs, input that is not CDRs, and a report that fits the terminal."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from sipguard.cli.main import main

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from fraudgen import Generated, generate

REPO = Path(__file__).resolve().parents[2]
ASTERISK_LOG = REPO / "tests" / "samples" / "asterisk_lines.txt"


@pytest.fixture(scope="module")
def fraud_set(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    return generate(tmp_path_factory.mktemp("fraud"), seed=7)


def test_the_example_sipguard_toml_is_a_valid_config(
    fraud_set: Generated, capsys: pytest.CaptureFixture[str]
) -> None:
    """etc/sipguard.toml (installed as /etc/sipguard/sipguard.toml) has no [fraud] table: the
    packaged defaults apply, its other tables are not fraud keys."""
    example = str(REPO / "etc" / "sipguard.toml")
    code = main(["fraud", "scan", str(fraud_set.cdr), "--config", example, "--format", "json"])
    captured = capsys.readouterr()
    assert code == 1, captured.err  # the generated fraud is found with the defaults too
    assert "unknown key" not in captured.err
    assert json.loads(captured.out)["alerts"]


def test_a_sipguard_toml_with_a_fraud_table_uses_it(
    fraud_set: Generated, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "sipguard.toml"
    conf.write_text('[daemon]\nlog_level = "info"\n[fraud]\nhome_country = "XXX"\n')
    assert main(["fraud", "scan", str(fraud_set.cdr), "--config", str(conf)]) == 2
    assert "fraud.home_country" in capsys.readouterr().err


def test_a_directory_is_named_as_one(
    fraud_set: Generated, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["fraud", "scan", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is a directory" in err and "no such file" not in err and err.count("\n") == 1
    assert main(["fraud", "scan", str(fraud_set.cdr), "--config", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "is a directory" in err and err.count("\n") == 1


@pytest.mark.parametrize("kind", ["junk", "asterisk-log"])
def test_input_that_is_not_cdr_says_so_and_exits_2(
    tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "input"
    if kind == "junk":
        path.write_bytes(bytes(range(256)) * 20 + b"\n" + b"\x00garbage,\xff\n" * 50)
    else:
        path.write_bytes(ASTERISK_LOG.read_bytes())
    assert main(["fraud", "scan", str(path)]) == 2
    err = capsys.readouterr().err
    assert "nothing readable as CDR" in err and str(path) in err and err.count("\n") == 1


def test_an_empty_cdr_file_is_clean_not_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "Master.csv"
    path.write_text("")
    assert main(["fraud", "scan", str(path)]) == 0
    assert "0 alerts" in capsys.readouterr().out


@pytest.mark.parametrize("columns", [60, 80, 132])
def test_text_report_wraps_to_the_terminal_and_cuts_nothing(
    fraud_set: Generated,
    columns: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    g = fraud_set
    args = ["fraud", "scan", str(g.cdr), "--config", str(g.config), "--rates", str(g.rates)]
    args += ["--hotlist", str(g.hotlist)]
    assert main([*args, "--format", "json"]) == 1
    alerts = json.loads(capsys.readouterr().out)["alerts"]
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.setenv("COLUMNS", str(columns))
    assert main(args) == 1
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= columns
    words = set(out.split())
    for alert in alerts:  # every call of every alert, and every word of its reason
        assert set(alert["calls"]) <= words
        assert set(alert["reason"].split()) <= words


def test_actions_come_from_the_rules_policy_profile(tmp_path: Path) -> None:
    """A fraud rule names a profile; the profile's actions are what its hits lead to."""
    from sipguard.config.errors import ConfigError
    from sipguard.fraud.config import load_config

    shipped = load_config(None).rules
    assert shipped["risky_destination"].actions == ("alert", "hangup", "lock")  # fraud-stop
    assert shipped["address_country"].actions == ("alert", "ban", "lock")  # fraud-ban
    assert shipped["velocity"].actions == ("alert",)
    conf = tmp_path / "sipguard.toml"
    conf.write_text(
        '[profiles.cut]\naction = "alert"\nactions = ["hangup"]\n'
        '[fraud.rules.velocity]\nprofile = "cut"\n'
        '[fraud.rules.spend]\nactions = ["alert"]\n'  # older configs: actions in place
    )
    rules = load_config(conf).rules
    assert rules["velocity"].actions == ("hangup",) and rules["spend"].actions == ("alert",)
    conf.write_text('[daemon]\n[fraud.rules.velocity]\nprofile = "nope"\n')
    with pytest.raises(ConfigError, match=r"fraud.rules.velocity.profile.*unknown profile"):
        load_config(conf)
    conf.write_text('[profiles.bad]\nactions = ["explode"]\n[fraud]\n')
    with pytest.raises(ConfigError, match=r"profiles.bad.actions"):
        load_config(conf)
