"""Fraud rule specs: the closed set of fraud detectors and their parameters, from rule.toml.

A fraud rule is `rules/fraud/<id>/rule.toml` with a `[fraud]` table naming its `detector`
(one of FRAUD_DETECTORS) and that detector's parameters; `profile` names the policy profile
whose `actions` (alert, hangup, lock, ban) say what its alerts lead to. Validated once at
load: an unknown key, detector or a wrong type is a RuleError naming the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sipguard.detect.matchers import RuleError
from sipguard.detect.spec import _bool, _severity, _text, rule_id_of

#: detector -> parameter -> type (bool, int, float, str or list of str), the closed set.
FRAUD_DETECTORS: dict[str, dict[str, type]] = {
    "velocity": {"window": float, "max_calls": int},
    "concurrent": {"max_calls": int},
    "after_hours": {"days": list, "start": str, "end": str, "scopes": list},
    "new_country": {"learn_seconds": float},
    "spend": {"daily_limit": float},
    "short_burst": {"window": float, "min_calls": int, "max_seconds": float, "range_digits": int},
    "risky_destination": {"types": list, "high_risk_countries": bool, "hotlist": bool},
    "address_country": {"allowed": list},
    "distant_registrations": {"window": float, "min_km": float},
    "inbound_volume": {"window": float, "max_calls": int},
}

_TOP_KEYS = frozenset({"id", "description", "severity", "profile", "enabled", "fraud"})


@dataclass(frozen=True, slots=True)
class FraudRuleSpec:
    id: str
    description: str
    detector: str
    params: Mapping[str, object] = field(default_factory=dict)
    severity: str = "high"
    profile: str = "fraud-alert"
    enabled: bool = True


def typed(value: object, want: type) -> tuple[bool, object]:
    """(whether `value` is a `want`, the value): bool, int, float (an int becomes a float),
    str or list of str; the one type check of fraud parameters and their config overrides."""
    if want is bool:
        ok = isinstance(value, bool)
    elif want is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value  # type: ignore[arg-type]
    elif want is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif want is list:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    else:
        ok = isinstance(value, str)
    return ok, value


def check_param(detector: str, key: str, value: object, where: str) -> object:
    """The value when it has the parameter's type (ints pass as floats); else RuleError."""
    want = FRAUD_DETECTORS[detector].get(key)
    if want is None:
        raise RuleError(where, f"unknown parameter of {detector}")
    ok, value = typed(value, want)
    if not ok:
        raise RuleError(where, f"needs {want.__name__}, got {value!r}")
    return value


def fraud_rule_from_dict(data: Mapping[str, object]) -> FraudRuleSpec:
    """Build and validate a fraud rule from a parsed rule.toml. Raises RuleError(key, reason)."""
    rule_id = rule_id_of(data, _TOP_KEYS)
    table = data.get("fraud")
    if not isinstance(table, Mapping):
        raise RuleError("fraud", "needs a table")
    detector = table.get("detector")
    if not isinstance(detector, str) or detector not in FRAUD_DETECTORS:
        raise RuleError("fraud.detector", f"needs one of {', '.join(FRAUD_DETECTORS)}")
    params = {
        k: check_param(detector, k, v, f"fraud.{k}") for k, v in table.items() if k != "detector"
    }
    missing = sorted(set(FRAUD_DETECTORS[detector]) - set(params))
    if missing:
        raise RuleError(f"fraud.{missing[0]}", f"missing parameter of {detector}")
    return FraudRuleSpec(
        rule_id,
        _text("description", data.get("description")),
        detector,
        params,
        str(_severity("severity", data.get("severity", "high"))),
        _text("profile", data.get("profile", "fraud-alert")),
        bool(_bool("enabled", data.get("enabled", True))),
    )


__all__ = [
    "FRAUD_DETECTORS",
    "FraudRuleSpec",
    "check_param",
    "fraud_rule_from_dict",
    "typed",
]
