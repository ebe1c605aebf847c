"""Runs a rule's samples: its log lines through the normalizer and that one rule, checked
against `samples/expected.toml`.

expected.toml:
    year = 2026            # optional: for dates without a year (default 2026)
    alerts = ["127.0.0.1", "2001:db8::/64", "account:1001"]   # exactly the keys that alert
    quiet = ["10.99.0.3"]  # keys that must not alert (documents the near misses)
    never = ["1.1.1.1"]    # addresses that must never be the source of any event (From hosts)
Every other file in samples/ is input, read in name order through one normalizer; a `.jsonl`
file holds events that do not come from a log (the SIP sensor, AMI), one `Event.to_dict()` a line.
A fraud rule's (rules/fraud/<id>/) inputs are CDR files, run by `sipguard.fraud.samples`; its
alerts are keyed `account:<id>` and checked against expected.toml the same way.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field, replace
from importlib.abc import Traversable
from pathlib import Path

from sipguard.config.rules import (
    fraud_rule_dirs,
    load_fraud_rule_file,
    load_rule_file,
    load_rules,
    rule_dirs,
)
from sipguard.core.alerts import Alert
from sipguard.core.events import Event, Origin
from sipguard.detect import Engine, RuleSpec
from sipguard.detect.fraudrules import FraudRuleSpec
from sipguard.pipeline import Pipeline, Unjudged

EXPECTED = "expected.toml"
DEFAULT_YEAR = 2026


@dataclass
class SampleResult:
    rule: str
    inputs: list[str]
    events: list[Event] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    expected: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def explain(self) -> str:
        lines = [f"rule {self.rule}: {len(self.events)} events, alerts {self.alert_keys()}"]
        lines += [f"  problem: {p}" for p in self.problems]
        lines += [
            f"  event: {e.kind.value} ip={e.ip} account={e.account}" for e in self.events[:40]
        ]
        return "\n".join(lines)

    def alert_keys(self) -> list[str]:
        return sorted({a.key for a in self.alerts})


def _expected(samples: Traversable) -> dict[str, object]:
    try:
        return tomllib.loads(samples.joinpath(EXPECTED).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}


def _str_list(data: dict[str, object], key: str) -> list[str]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise ValueError(f"{EXPECTED}: {key}: needs a list")
    return [str(v) for v in value]


def run_samples(rule: RuleSpec | FraudRuleSpec, samples: Traversable | Path) -> SampleResult:
    """Feed every input file under `samples` through one normalizer and an engine holding
    only `rule`, and compare with expected.toml."""
    if isinstance(rule, FraudRuleSpec):
        return _run_fraud_samples(rule, Path(str(samples)))
    from sipguard.core.asterisk import LogNormalizer  # the normalizer is another package's part

    expected = _expected(samples)
    year = expected.get("year", DEFAULT_YEAR)
    inputs = sorted(
        (f for f in samples.iterdir() if f.is_file() and f.name != EXPECTED), key=lambda f: f.name
    )
    result = SampleResult(rule.id, [f.name for f in inputs])
    if not inputs:
        result.problems.append("no sample input files")
    normalizer = LogNormalizer(default_year=int(year) if isinstance(year, int) else DEFAULT_YEAR)
    # one normalizer for all inputs (a log line and its AMI twin count once), one rule, no
    # policy: replay time (None) judges each event at its own time
    # a response rule (filter.account_alerted_by) runs beside the rule it waits for; only the
    # rule under test's own alerts are compared
    needed = [] if rule.account_alerted_by is None else load_rules(only=[rule.account_alerted_by])

    def on_alert(alert: Alert, _decision: object) -> None:
        if alert.rule == rule.id:
            result.alerts.append(alert)

    pipeline = Pipeline(
        normalizer,
        Engine([rule, *needed]),
        Unjudged(),
        on_event=result.events.append,
        on_alert=on_alert,
    )
    for f in inputs:
        if f.name.endswith(".jsonl"):
            for no, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
                if line.strip():
                    event = Event.from_dict(json.loads(line))
                    # evidence points at the sample line the event came from
                    event = replace(event, origin=Origin(f.name, no, line[:512]))
                    pipeline.event(event, None)
            continue
        pipeline.lines(f.read_bytes(), f.name, 1, None)
    pipeline.flush(None)
    return _compare(result, expected)


def _run_fraud_samples(rule: FraudRuleSpec, samples: Path) -> SampleResult:
    from sipguard.fraud.samples import run_fraud_rule, sample_inputs  # fraud's own part

    result = SampleResult(rule.id, [f.name for f in sample_inputs(samples)])
    if not result.inputs:
        result.problems.append("no sample input files")
    result.events, result.alerts = run_fraud_rule(rule, samples)
    return _compare(result, _expected(samples))


def _compare(result: SampleResult, expected: dict[str, object]) -> SampleResult:
    got = set(result.alert_keys())
    result.expected = set(_str_list(expected, "alerts"))
    if got != result.expected:
        missing, extra = sorted(result.expected - got), sorted(got - result.expected)
        result.problems.append(f"alerted {sorted(got)}: missing {missing}, unexpected {extra}")
    for key in _str_list(expected, "quiet"):
        if key in got:
            result.problems.append(f"{key} must stay quiet but alerted")
    for addr in _str_list(expected, "never"):
        bad = [e for e in result.events if e.ip is not None and str(e.ip) == addr]
        if bad:
            result.problems.append(f"{addr} became an event source: {bad[0].origin.text[:120]!r}")
    if expected.get("alerts") is None:
        result.problems.append(f"{EXPECTED} missing or has no 'alerts' list")
    return result


def rule_samples(
    paths: list[str | Path] | None = None,
) -> list[tuple[RuleSpec | FraudRuleSpec, Path]]:
    """(rule, samples dir) for every rule directory, the fraud rules' too when no paths are
    given; a rule without samples gets its own dir (and so fails with 'no sample input
    files')."""
    from sipguard.config.rules import data_lists

    lists = data_lists()
    out: list[tuple[RuleSpec | FraudRuleSpec, Path]] = []
    for label, directory in rule_dirs(paths):
        rule = load_rule_file(label, directory, lists)
        out.append((rule, directory.joinpath("samples")))
    if paths is None:
        for label, directory in fraud_rule_dirs():
            out.append((load_fraud_rule_file(label, directory), directory.joinpath("samples")))
    return out


def run_all(paths: list[str | Path] | None = None) -> list[SampleResult]:
    return [run_samples(rule, samples) for rule, samples in rule_samples(paths)]


__all__ = ["SampleResult", "rule_samples", "run_all", "run_samples"]
