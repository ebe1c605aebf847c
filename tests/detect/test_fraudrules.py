"""Fraud rule specs (detect.fraudrules): the closed set of detectors, validated at load."""

from __future__ import annotations

import pytest

from sipguard.config.rules import load_fraud_rules
from sipguard.detect.fraudrules import FRAUD_DETECTORS, fraud_rule_from_dict
from sipguard.detect.matchers import RuleError

GOOD = {
    "id": "fraud-velocity",
    "description": "Call velocity",
    "severity": "high",
    "profile": "fraud-alert",
    "fraud": {"detector": "velocity", "window": 600, "max_calls": 25},
}


def test_a_rule_and_its_parameters() -> None:
    rule = fraud_rule_from_dict(GOOD)
    assert (rule.detector, rule.profile, rule.enabled) == ("velocity", "fraud-alert", True)
    assert rule.params == {"window": 600.0, "max_calls": 25}
    assert isinstance(rule.params["window"], float)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"bogus": 1}, "bogus"),
        ({"fraud": {"detector": "nope"}}, "fraud.detector"),
        ({"fraud": {"detector": "velocity", "window": 600}}, "fraud.max_calls"),
        ({"fraud": {"detector": "velocity", "window": "10m", "max_calls": 2}}, "fraud.window"),
        ({"fraud": {"detector": "velocity", "window": 1, "max_calls": 2, "x": 1}}, "fraud.x"),
        ({"fraud": {"detector": "velocity", "window": 1, "max_calls": True}}, "fraud.max_calls"),
        ({"severity": "dire"}, "severity"),
        ({"profile": ""}, "profile"),
        ({"enabled": "yes"}, "enabled"),
        ({"id": "a b"}, "id"),
        ({"description": ""}, "description"),
    ],
)
def test_bad_rules_name_the_key(change: dict[str, object], key: str) -> None:
    with pytest.raises(RuleError) as err:
        fraud_rule_from_dict({**GOOD, **change})
    assert err.value.key == key


def test_every_detector_ships_one_rule_with_every_parameter() -> None:
    rules = load_fraud_rules()
    assert [r.detector for r in rules] == list(FRAUD_DETECTORS)
    for r in rules:
        assert set(r.params) == set(FRAUD_DETECTORS[r.detector]) and r.profile.startswith("fraud-")
