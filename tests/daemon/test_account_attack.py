"""`sipguard run` (dry-run firewall, a real process) on an account guessed from two sources:
the alert in `status`, `explain ACCOUNT` and the log at warning level; the lowered threshold
bans the source that goes on; a second rule on that source joins its ban (both rules listed,
both log lines written, the first reason kept); after a restart the bans keep their evidence."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_daemon import make_config

from sipguard.cli.main import main
from sipguard.daemon.control import ControlError
from sipguard.daemon.harness import DaemonProc, append, pjsip_failure, wait_for

pytestmark = pytest.mark.slow

A, B = "203.0.113.31", "203.0.113.32"


def fail(tmp: Path, ip: str, n: int, account: str = "1001") -> None:
    append(tmp / "log" / "messages", pjsip_failure(ip, n, account))


def log_lines(d: DaemonProc, pattern: str) -> list[str]:
    return [ln for ln in d.log.read_text().splitlines() if re.search(pattern, ln)]


def test_account_under_attack_response_joined_rules_and_restart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "log").mkdir()
    (tmp_path / "log" / "messages").touch()
    cfg = make_config(tmp_path)
    d = DaemonProc(cfg, tmp_path / "ctl.sock", ["--dry-run"]).start()
    try:
        # two sources, one guess each at account 1001: no per-source rule fires
        fail(tmp_path, A, 0)
        fail(tmp_path, B, 0)
        st = wait_for(lambda: (s := d.request("status"))["accounts_under_attack"] and s)
        (attacked,) = st["accounts_under_attack"]
        assert (attacked["account"], attacked["sources"]) == ("1001", 2)
        assert attacked["rule"] == "distributed-account-attack" and attacked["until"] > 0
        assert d.banned() == set()
        ex = d.request("explain", {"addr": "1001"})
        assert ex["account"] == "1001" and ex["under_attack"]["sources"] == 2
        assert ex["alerts"][0]["rule"] == "distributed-account-attack"
        assert d.request("explain", {"addr": "account:1001"})["account"] == "1001"
        with pytest.raises(ControlError, match="nothing known about account '1002'"):
            d.request("explain", {"addr": "1002"})
        sock = str(tmp_path / "ctl.sock")
        capsys.readouterr()
        assert main(["status", "--socket", sock]) == 0
        out = capsys.readouterr().out
        assert "ATTACK on account '1001': 2 sources (distributed-account-attack, high)" in out
        assert main(["explain", "1001", "--socket", sock]) == 0
        out = capsys.readouterr().out
        assert "ATTACK on account '1001'" in out and "attacked from 2 sources" in out
        warned = log_lines(d, r"level=warning .*msg=alert .*rule=distributed-account-attack")
        assert warned and "key=account:1001" in warned[0]
        # A goes on: three more failures while the alert lasts -> banned (4 in all, under the
        # burst rule's 5); B stops
        for n in range(1, 4):
            fail(tmp_path, A, n)
        wait_for(lambda: d.banned() == {f"{A}/32"})
        # a fifth failure: password-guessing fires on the banned source and joins the ban
        fail(tmp_path, A, 4)
        wait_for(lambda: len(log_lines(d, rf"msg=banned addr={re.escape(A)}/32")) == 2)
        (ban,) = d.request("bans", {"evidence": True})
        assert ban["rule"] == "account-under-attack" and "already banned" not in ban["reason"]
        assert main(["explain", A, "--socket", sock]) == 0
        assert "rules:   account-under-attack, password-guessing fired" in capsys.readouterr().out
        ex = d.request("explain", {"addr": A})
        assert ex["rules"] == ["account-under-attack", "password-guessing"]
        assert ex["active"]["rule"] == "account-under-attack"
        lines = log_lines(d, rf"msg=banned addr={re.escape(A)}/32")
        assert "rule=account-under-attack" in lines[0] and "joined=False" in lines[0]
        assert "rule=password-guessing" in lines[1] and "joined=True" in lines[1]
        assert [b["network"] for b in d.request("explain", {"addr": "1001"})["bans"]] == [f"{A}/32"]
        evidence = len(ban["evidence"])
        assert evidence >= 3
    finally:
        d.stop()
    # a real restart: the restored ban keeps its evidence (count and lines) in `bans --json`
    d = DaemonProc(cfg, tmp_path / "ctl.sock", ["--dry-run"]).start()
    try:
        (restored,) = d.request("bans", {"evidence": True})
        assert restored["rule"] == "account-under-attack"
        assert len(restored["evidence"]) == evidence
        assert all(f"failed for '{A}:5301'" in e["origin"]["text"] for e in restored["evidence"])
        assert d.request("bans")[0]["events"] == evidence
    finally:
        d.stop()
