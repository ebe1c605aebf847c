"""The Prometheus collector: reads the daemon's own counters when Prometheus scrapes.

Nothing here runs on the detection path. `collect()` reads the status mapping the control
socket already serves (one source of truth for `sipguard status` and `/metrics`), walks the
active bans once for the by-origin/family gauge, and turns the `Tally` and `Latency` the
daemon feeds into labelled families. Names follow Prometheus conventions: `sipguard_` prefix,
`_total` for counters, seconds for time; labels are rules, kinds, origins, sources: never an
address or an account.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from sipguard.core import Decision
from sipguard.metrics.latency import Latency
from sipguard.metrics.tally import Tally, origin_class

# sensor counters that are verdicts on packets (the rest are its state and bookkeeping)
SENSOR_VERDICTS = ("accepted", "dropped", "trusted", "in_dialog", "response", "tls_accepted")
# normalizer counters of input it could not use: hostile or broken lines, counted not fatal
NORMALIZER_REJECTS = ("malformed", "too_long", "binary", "tampering", "unlinked", "evicted")


@dataclass(frozen=True)
class MetricsView:
    """What the collector reads, handed over by the daemon (never the daemon itself)."""

    status: Callable[[], Mapping[str, Any]]  # the control socket's `status` answer
    active: Callable[[], Iterable[Decision]]  # the bans in the kernel set
    tally: Tally
    latency: Latency
    notify: Callable[[], Mapping[str, int]] = dict  # the notifier's counters (none: empty)


def _counter(name: str, doc: str, labels: list[str] | None = None) -> CounterMetricFamily:
    # prometheus_client adds `_total` to a counter's samples itself
    return CounterMetricFamily(f"sipguard_{name}", doc, labels=labels)


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


class DaemonCollector(Collector):
    def __init__(self, view: MetricsView) -> None:
        self.view = view
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def collect(self) -> Iterator[Metric]:
        status = self.view.status()
        yield from self._pipeline(status)
        yield from self._bans(status)
        yield from self._sources(status.get("sources") or {})
        yield from self._fraud(status.get("fraud") or {})
        yield from self._notify(self.view.notify())

    # ---- detection -----------------------------------------------------------------------
    def _pipeline(self, status: Mapping[str, Any]) -> Iterator[Metric]:
        tally = self.view.tally
        events = _counter("events", "Events normalized, by kind and service", ["kind", "service"])
        for (kind, service), n in sorted(tally.events.items()):
            events.add_metric([str(kind), str(service)], n)
        yield events
        rejects = _counter(
            "lines_rejected", "Input lines the normalizer could not use, by reason", ["reason"]
        )
        normalizer = status.get("normalizer") or {}
        for reason in NORMALIZER_REJECTS:
            rejects.add_metric([reason], _num(normalizer.get(reason)))
        yield rejects
        lines = _counter("lines", "Log lines read by the normalizer")
        lines.add_metric([], _num(normalizer.get("lines")))
        yield lines
        alerts = _counter("alerts", "Alerts raised, by rule", ["rule"])
        for rule, n in sorted(tally.alerts.items()):
            alerts.add_metric([rule], n)
        yield alerts
        decisions = _counter(
            "decisions", "Decisions made on alerts, by origin and action", ["origin", "action"]
        )
        for (origin, action), n in sorted(tally.decisions.items()):
            decisions.add_metric([origin, action], n)
        yield decisions
        engine = status.get("engine") or {}
        keys = GaugeMetricFamily("sipguard_engine_keys", "Grouping keys the rules track now")
        keys.add_metric([], _num(status.get("engine_keys")))
        yield keys
        evicted = _counter("engine_evicted_keys", "Tracked keys dropped by the size cap")
        evicted.add_metric([], _num(engine.get("evicted")))
        yield evicted
        queue = status.get("queue") or {}
        drops = _counter("queue_dropped", "Events dropped because the event queue was full")
        drops.add_metric([], _num(queue.get("dropped")))
        yield drops
        waiting = GaugeMetricFamily("sipguard_queue_events", "Events waiting in the event queue")
        waiting.add_metric([], _num(queue.get("events_waiting")))
        yield waiting

    # ---- enforcement ---------------------------------------------------------------------
    def _bans(self, status: Mapping[str, Any]) -> Iterator[Metric]:
        by: Counter[tuple[str, str]] = Counter()
        for d in self.view.active():
            by[(origin_class(d.origin), f"ipv{d.network.version}")] += 1
        active = GaugeMetricFamily(
            "sipguard_active_bans",
            "Bans in the kernel set, by origin and family",
            labels=["origin", "family"],
        )
        for origin in ("local", "manual", "fleet", "feed"):
            for family in ("ipv4", "ipv6"):
                active.add_metric([origin, family], by[(origin, family)])
        yield active
        latency = self.view.latency
        hist = HistogramMetricFamily(
            "sipguard_ban_latency_seconds",
            "From the log line being read to the address being in the kernel set",
        )
        hist.add_metric([], latency.cumulative(), sum_value=latency.sum)
        yield hist
        fw = status.get("firewall") or {}
        errors = _counter("kernel_errors", "Firewall changes the kernel (or the store) refused")
        errors.add_metric([], _num(fw.get("errors")))
        yield errors
        refused = _counter("bans_refused_allow_listed", "Bans refused by the allow-list")
        refused.add_metric([], _num(fw.get("refused_allow_listed")))
        yield refused
        calls = _counter("firewall_calls", "Kernel set changes made, by operation", ["op"])
        for op in ("add", "remove"):
            calls.add_metric([op], _num((fw.get(op) or {}).get("count")))
        yield calls

    # ---- sources -------------------------------------------------------------------------
    def _sources(self, sources: Mapping[str, Any]) -> Iterator[Metric]:
        up = GaugeMetricFamily("sipguard_source_up", "1 when the source reads", labels=["source"])
        restarts = _counter(
            "source_restarts", "Times a source crashed and was restarted", ["source"]
        )
        stats = GaugeMetricFamily(
            "sipguard_source_stat",
            "What each source counts (lines, reconnects, ...)",
            labels=["source", "stat"],
        )
        verdicts = _counter("sensor_verdicts", "Packets the sensor judged, by verdict", ["verdict"])
        bypass = _counter(
            "sensor_fail_open_bypassed",
            "Packets that passed unjudged because the sensor's queue was full",
        )
        for name, entry in sorted(sources.items()):
            up.add_metric([name], 1.0 if entry.get("state") == "running" else 0.0)
            restarts.add_metric([name], _num(entry.get("restarts")))
            st = entry.get("stats") or {}
            for key, value in sorted(st.items()):
                stats.add_metric([name, str(key)], _num(value))
            if name == "sensor":
                for verdict in SENSOR_VERDICTS:
                    verdicts.add_metric([verdict], _num(st.get(verdict)))
                bypass.add_metric([], _num(st.get("bypassed_fail_open")))
        yield from (up, restarts, stats, verdicts, bypass)

    # ---- fraud and notifications ---------------------------------------------------------
    def _fraud(self, fraud: Mapping[str, Any]) -> Iterator[Metric]:
        hits = _counter("fraud_alerts", "Toll-fraud rule hits, by rule", ["rule"])
        for rule, n in sorted((fraud.get("hits") or {}).items()):
            hits.add_metric([str(rule)], _num(n))
        yield hits
        actions = _counter(
            "fraud_actions", "Fraud actions taken (hangup, lock), by result", ["action"]
        )
        for action, n in sorted((fraud.get("actions") or {}).items()):
            actions.add_metric([str(action)], _num(n))
        yield actions
        incidents = _counter("fraud_incidents", "Fraud incidents reported")
        incidents.add_metric([], _num(fraud.get("incidents")))
        yield incidents

    def _notify(self, counts: Mapping[str, int]) -> Iterator[Metric]:
        family = _counter("notifications", "Notifications, by outcome", ["outcome"])
        for outcome in ("queued", "sent", "failed", "retried", "dropped"):
            family.add_metric([outcome], counts.get(outcome, 0))
        yield family


def render(collector: DaemonCollector) -> bytes:
    """The text exposition format, for any server that mounts /metrics (ours, the dashboard)."""
    return generate_latest(collector.registry)
