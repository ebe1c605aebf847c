"""A fraud rule's samples: CDR files as call events through the fraud rules, to Alerts.

The sample runner (`sipguard.testing.samples`) hands over a rule's samples directory: every
`*.csv` there but `rates.csv` and `hotlist.csv` is CDR input (Master.csv layout unless the
directory's `fraud.toml` sets `[fraud.cdr]`), read in name order by the one CDR row loop,
each row normalized into a CALL_END event (`core.calls.record_event`) and run through the
engine with only this rule enabled. Each hit becomes an Alert keyed `account:<id>` whose
evidence is the call events behind it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from sipguard.core.alerts import Alert
from sipguard.core.calls import record_event
from sipguard.core.events import Event
from sipguard.detect.fraudrules import FraudRuleSpec
from sipguard.fraud.config import load_config
from sipguard.fraud.live import LiveTracker
from sipguard.fraud.scan import build_engine
from sipguard.fraud.tables import load_hotlist, load_rates

TABLES = ("rates.csv", "hotlist.csv")


def sample_inputs(samples: Path) -> list[Path]:
    return sorted(f for f in samples.glob("*.csv") if f.is_file() and f.name not in TABLES)


def run_fraud_rule(rule: FraudRuleSpec, samples: Path) -> tuple[list[Event], list[Alert]]:
    """(the call events of the samples, the alerts of this one rule)."""
    conf = samples / "fraud.toml"
    config = load_config(conf if conf.is_file() else None)
    only = {
        n: replace(r, enabled=r.enabled and n == rule.detector) for n, r in config.rules.items()
    }
    config = replace(config, rules=only)
    rates, hot = samples / "rates.csv", samples / "hotlist.csv"
    engine = build_engine(
        config,
        load_rates(rates) if rates.is_file() else None,
        load_hotlist(hot) if hot.is_file() else None,
    )
    tracker = LiveTracker(engine)
    events: list[Event] = []
    alerts: list[Alert] = []
    for path in sample_inputs(samples):
        parser = engine.cdr_parser(path.name)
        parser.outbound = None  # every row is an event; the rules pick their calls
        for rec in parser.read_file(path):
            c = parser.call(rec)
            event = record_event(
                c.uid, c.account, c.dst, c.start, c.end, c.billsec, c.answered, c.channel, c.ip,
                c.line_no, path.name,
            )  # fmt: skip
            events.append(event)
            for hit in tracker.on_event(event):
                behind = set(hit.calls)
                evidence = tuple(e for e in events if e.call_id in behind)
                alerts.append(hit.to_alert(rule.id, evidence))
    return events, alerts


__all__ = ["run_fraud_rule", "sample_inputs"]
