"""Every shipped rule's samples: real-format Asterisk lines -> normalizer -> that rule -> the
expected alerts (and no others), plus the rule files themselves."""

from __future__ import annotations

import pytest

from sipguard.config.rules import fraud_rule_dirs, load_fraud_rules, load_rules, rule_dirs
from sipguard.testing.samples import rule_samples, run_samples

SAMPLES = rule_samples()


def test_every_rule_has_samples_and_all_brief_rules_ship() -> None:
    ids = {rule.id for rule, _ in SAMPLES}
    assert len(ids) == len(rule_dirs()) + len(fraud_rule_dirs()) >= 11 + 9
    assert {
        "password-guessing",
        "extension-enumeration",
        "scanner-signature",
        "request-flood",
        "unanswered-challenges",
        "distributed-account-attack",
        "ami-login-failures",
        "external-call-probing",
        "malformed-requests",
        "acl-denials",
        "log-tampering",
    } <= ids
    assert {f"fraud-{r.detector.replace('_', '-')}" for r in load_fraud_rules()} <= ids
    for _, samples in SAMPLES:
        assert samples.joinpath("expected.toml").is_file()


@pytest.mark.parametrize(("rule", "samples"), SAMPLES, ids=[r.id for r, _ in SAMPLES])
def test_rule_samples(rule, samples) -> None:
    pytest.importorskip("sipguard.core.asterisk", reason="log normalizer not installed yet")
    result = run_samples(rule, samples)
    assert result.ok, result.explain()
    assert result.alerts, "every rule's samples show it firing"
    for alert in result.alerts:
        assert alert.rule == rule.id and alert.reason and alert.events
        assert all(e.origin.line_no > 0 for e in alert.events), "evidence points at its lines"


def test_shipped_rules_load_with_defaults() -> None:
    rules = {r.id: r for r in load_rules()}
    assert rules["distributed-account-attack"].profile == "alert"
    assert rules["password-guessing"].ipv6_prefix == 64
