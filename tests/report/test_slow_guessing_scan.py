"""Generated logs with low-and-slow attackers and benign mistyping phones (bench/genlog.py
`slow`): `sipguard scan` reports every slow attacker with a decision and decides no phone, with
all shipped rules and with the long-window rules alone (the burst rules never see them)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from sipguard.cli.main import main
from sipguard.config.rules import load_rules
from sipguard.policy import Policy
from sipguard.report.scan import Scanner

pytest.importorskip("sipguard.core.asterisk", reason="log normalizer not installed yet")

SLOW = 25


def addresses(data: bytes, net: str) -> set[str]:
    return {m.decode() for m in re.findall(rb"\b" + re.escape(net.encode()) + rb"\d+\.\d+", data)}


@pytest.fixture(scope="module")
def slow_log(genlog: Callable[..., bytes]) -> bytes:
    return genlog(20_000, 3, slow=SLOW)


def test_scan_decides_every_slow_attacker_and_no_phone(
    slow_log: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "messages"
    log.write_bytes(slow_log)
    capsys.readouterr()
    assert main(["scan", "--format", "json", "--year", "2026", str(log)]) == 1
    report = json.loads(capsys.readouterr().out)
    decided = {a["ip"]: a for a in report["attackers"]}
    attackers = addresses(slow_log, "198.18.")
    phones = addresses(slow_log, "198.19.")
    assert len(attackers) == len(phones) == SLOW
    for ip in attackers:
        assert ip in decided, f"slow attacker {ip} has no decision"
        assert decided[ip]["events"] >= 20 and decided[ip]["auth_successes"] == 0
        decision = decided[ip]["decision"]
        assert decision["action"] == "ban" and decision["simulated"] is True
    assert not phones & set(decided), "a phone that mistyped was decided"


def test_long_window_rules_alone_catch_them(slow_log: bytes) -> None:
    rules = load_rules(only=["slow-password-guessing", "slow-guessing-day"])
    scanner = Scanner(rules, 2026, Policy(simulate=True))
    scanner.feed_file_chunks("messages", [slow_log])
    report = scanner.finish()
    decided = {a.ip for a in report.attackers()}
    assert addresses(slow_log, "198.18.") <= decided
    phones = [a for a in report.sources.values() if a.ip.startswith("198.19.")]
    assert len(phones) == SLOW, "every phone mistyped at least once (counted, not decided)"
    assert all(a.successes >= 1 and 1 <= a.events <= 3 for a in phones)
    assert not {a.ip for a in phones} & decided
