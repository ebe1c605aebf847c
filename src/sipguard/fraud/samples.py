"""A fraud rule's samples: CDR files as call events through the fraud rules, to Alerts.

The sample runner (`sipguard.testing.samples`) hands over a rule's samples directory: every
`*.csv` there but `rates.csv` and `hotlist.csv` is CDR input (Master.csv layout unless the
directory's `fraud.toml` sets `[fraud.cdr]`), read in name order by the one CDR row loop,
each row normalized into a CALL_END event (`core.calls.record_event`) and run through the
engine with only this rule enabled. Each hit becomes an Alert keyed `account:<id>` whose
evidence is the call events behind it. `sipguard rules test FRAUD-RULE CDR` replays the same
way (`replay_rule`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
    conf, rates, hot = samples / "fraud.toml", samples / "rates.csv", samples / "hotlist.csv"
    return replay_rule(
        rule,
        sample_inputs(samples),
        conf if conf.is_file() else None,
        rates if rates.is_file() else None,
        hot if hot.is_file() else None,
    )


def replay_rule(
    rule: FraudRuleSpec,
    inputs: Sequence[Path],
    config_file: Path | None = None,
    rates: Path | None = None,
    hotlist: Path | None = None,
    on_event: Callable[[Event], None] | None = None,
    on_alert: Callable[[Alert], None] | None = None,
) -> tuple[list[Event], list[Alert]]:
    """CDR files through this one rule (the sample runner, `sipguard rules test`): every row
    a call event (`on_event` sees each), every hit an Alert with the call events behind it."""
    config = load_config(config_file)
    only = {
        n: replace(r, enabled=r.enabled and n == rule.detector) for n, r in config.rules.items()
    }
    config = replace(config, rules=only)
    engine = build_engine(
        config,
        load_rates(rates) if rates is not None else None,
        load_hotlist(hotlist) if hotlist is not None else None,
    )
    tracker = LiveTracker(engine)
    events: list[Event] = []
    alerts: list[Alert] = []
    for path in inputs:
        parser = engine.cdr_parser(path.name)
        parser.outbound = None  # every row is an event; the tracker tells inbound (dcontext)
        for rec in parser.read_file(path):
            c = parser.call(rec)
            event = record_event(
                c.uid, c.account, c.dst, c.start, c.end, c.billsec, c.answered, c.channel, c.ip,
                c.line_no, path.name, parser.context,
            )  # fmt: skip
            events.append(event)
            if on_event is not None:
                on_event(event)
            for hit in tracker.on_event(event):
                behind = set(hit.calls)
                evidence = tuple(e for e in events if e.call_id in behind)
                alert = hit.to_alert(rule.id, evidence)
                alerts.append(alert)
                if on_alert is not None:
                    on_alert(alert)
    return events, alerts


__all__ = ["replay_rule", "run_fraud_rule", "sample_inputs"]
