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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
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
from sipguard.metrics.tally import ORIGIN_CLASSES, Tally, origin_class

# sensor counters that are verdicts on packets (the rest are its state and bookkeeping)
SENSOR_VERDICTS = ("accepted", "dropped", "trusted", "in_dialog", "response", "tls_accepted")
# normalizer counters of input it could not use: hostile or broken lines, counted not fatal
# the notifier's outcomes (its own tuple lives in sipguard.notify, which metrics must not import)
NOTIFY_OUTCOMES = ("queued", "sent", "failed", "retried", "dropped")
NORMALIZER_REJECTS = ("malformed", "too_long", "binary", "tampering", "unlinked", "evicted")


@dataclass(frozen=True)
class MetricsView:
    """What the collector reads, handed over by the daemon (never the daemon itself)."""

    status: Callable[[], Mapping[str, Any]]  # the control socket's `status` answer
    active: Callable[[], Iterable[Decision]]  # the bans in the kernel set
    tally: Tally
    latency: Latency
    notify: Callable[[], Mapping[str, int]] = dict  # the notifier's counters (none: empty)


Rows = Iterable[tuple[Sequence[str], Any]]  # (label values, number) per sample


def _family(
    cls: type[CounterMetricFamily] | type[GaugeMetricFamily],
    name: str,
    doc: str,
    labels: Sequence[str],
    rows: Rows,
) -> Metric:
    """One family from its samples (a counter's samples get `_total` from prometheus_client)."""
    family = cls(f"sipguard_{name}", doc, labels=list(labels))
    for values, n in rows:
        family.add_metric(list(values), _num(n))
    return family


def _counter(name: str, doc: str, labels: Sequence[str], rows: Rows) -> Metric:
    return _family(CounterMetricFamily, name, doc, labels, rows)


def _gauge(name: str, doc: str, labels: Sequence[str], rows: Rows) -> Metric:
    return _family(GaugeMetricFamily, name, doc, labels, rows)


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0  # True counts 1 (up)


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
        yield from self._feeds(status.get("feeds") or [])
        yield from self._fleet(status.get("fleet") or {})
        yield from self._notify(self.view.notify())

    # ---- detection -----------------------------------------------------------------------
    def _pipeline(self, status: Mapping[str, Any]) -> Iterator[Metric]:
        tally = self.view.tally
        normalizer = status.get("normalizer") or {}
        engine = status.get("engine") or {}
        queue = status.get("queue") or {}
        yield _counter(
            "events",
            "Events normalized, by kind and service",
            ["kind", "service"],
            (((str(k), str(s)), n) for (k, s), n in sorted(tally.events.items())),
        )
        yield _counter(
            "lines", "Log lines read by the normalizer", [], [((), normalizer.get("lines"))]
        )
        yield _counter(
            "lines_rejected",
            "Input lines the normalizer could not use, by reason",
            ["reason"],
            (((r,), normalizer.get(r)) for r in NORMALIZER_REJECTS),
        )
        yield _counter(
            "alerts",
            "Alerts raised, by rule",
            ["rule"],
            (((r,), n) for r, n in sorted(tally.alerts.items())),
        )
        yield _counter(
            "decisions",
            "Decisions made on alerts, by origin and action",
            ["origin", "action"],
            sorted(tally.decisions.items()),
        )
        yield _gauge(
            "engine_keys",
            "Grouping keys the rules track now",
            [],
            [((), status.get("engine_keys"))],
        )
        yield _counter(
            "engine_evicted_keys",
            "Tracked keys dropped by the size cap",
            [],
            [((), engine.get("evicted"))],
        )
        yield _counter(
            "queue_dropped",
            "Events dropped because the event queue was full",
            [],
            [((), queue.get("dropped"))],
        )
        yield _gauge(
            "queue_events",
            "Events waiting in the event queue",
            [],
            [((), queue.get("events_waiting"))],
        )

    # ---- enforcement ---------------------------------------------------------------------
    def _bans(self, status: Mapping[str, Any]) -> Iterator[Metric]:
        by: Counter[tuple[str, str]] = Counter()
        for d in self.view.active():
            by[(origin_class(d.origin), f"ipv{d.network.version}")] += 1
        every = [(o, f) for o in ORIGIN_CLASSES for f in ("ipv4", "ipv6")]
        yield _gauge(
            "active_bans",
            "Bans in the kernel set, by origin and family",
            ["origin", "family"],
            ((key, by[key]) for key in every),
        )
        latency = self.view.latency
        hist = HistogramMetricFamily(
            "sipguard_ban_latency_seconds",
            "From the line being read (the event received) to the address being in the kernel set",
        )
        hist.add_metric([], latency.cumulative(), sum_value=latency.sum)
        yield hist
        fw = status.get("firewall") or {}
        yield _counter(
            "kernel_errors",
            "Firewall changes the kernel (or the store) refused",
            [],
            [((), fw.get("errors"))],
        )
        yield _counter(
            "bans_refused_allow_listed",
            "Bans refused by the allow-list",
            [],
            [((), fw.get("refused_allow_listed"))],
        )
        yield _counter(
            "firewall_calls",
            "Kernel set changes made, by operation",
            ["op"],
            (((op,), (fw.get(op) or {}).get("count")) for op in ("add", "remove")),
        )

    # ---- sources -------------------------------------------------------------------------
    def _sources(self, sources: Mapping[str, Any]) -> Iterator[Metric]:
        entries = sorted(sources.items())
        yield _gauge(
            "source_up",
            "1 when the source reads",
            ["source"],
            (((name,), e.get("state") == "running") for name, e in entries),
        )
        yield _counter(
            "source_restarts",
            "Times a source crashed and was restarted",
            ["source"],
            (((name,), e.get("restarts")) for name, e in entries),
        )
        yield _gauge(
            "source_stat",
            "What each source counts (lines, reconnects, ...)",
            ["source", "stat"],
            (((name, str(k)), v) for name, e in entries for k, v in sorted(_stats(e).items())),
        )
        sensor = _stats(sources.get("sensor") or {})
        yield _counter(
            "sensor_verdicts",
            "Packets the sensor judged, by verdict",
            ["verdict"],
            (((v,), sensor.get(v)) for v in SENSOR_VERDICTS),
        )
        yield _counter(
            "sensor_fail_open_bypassed",
            "Packets that passed unjudged because the sensor's queue was full",
            [],
            [((), sensor.get("bypassed_fail_open"))],
        )

    # ---- fraud and notifications ---------------------------------------------------------
    def _fraud(self, fraud: Mapping[str, Any]) -> Iterator[Metric]:
        yield _counter(
            "fraud_alerts",
            "Toll-fraud rule hits, by rule",
            ["rule"],
            (((str(r),), n) for r, n in sorted((fraud.get("hits") or {}).items())),
        )
        yield _counter(
            "fraud_actions",
            "Fraud actions taken (hangup, lock), by result",
            ["action"],
            (((str(a),), n) for a, n in sorted((fraud.get("actions") or {}).items())),
        )
        yield _counter(
            "fraud_incidents", "Fraud incidents reported", [], [((), fraud.get("incidents"))]
        )

    # ---- blocklist feeds (labels: the configured feed names, a bounded set) ----------------
    def _feeds(self, feeds: Iterable[Mapping[str, Any]]) -> Iterator[Metric]:
        rows = [f for f in feeds if isinstance(f, Mapping) and f.get("name")]
        counts = [(f, f.get("counts") or {}) for f in rows]
        yield _gauge(
            "feed_entries",
            "Entries of each blocklist feed in its kernel set (allow-list cut out)",
            ["feed"],
            (((str(f["name"]),), f.get("in_kernel")) for f in rows),
        )
        yield _counter(
            "feed_refreshes",
            "Blocklist feed refreshes, by feed and outcome (a failure keeps the last list)",
            ["feed", "outcome"],
            (
                ((str(f["name"]), outcome), c.get(key, 0))
                for f, c in counts
                for outcome, key in (("ok", "refreshes"), ("error", "failures"))
            ),
        )
        yield _gauge(
            "feed_last_success_timestamp_seconds",
            "When each feed last refreshed successfully (0: never)",
            ["feed"],
            (((str(f["name"]),), f.get("last_ok") or 0) for f in rows),
        )

    # ---- the fleet (labels: the fleet component's own counter names, a fixed set) ---------
    def _fleet(self, fleet: Mapping[str, Any]) -> Iterator[Metric]:
        if not fleet.get("enabled"):
            return
        connected = fleet.get("connected")
        yield _gauge("fleet_connected", "1 while the fleet's Redis answers", [], [((), connected)])
        yield _gauge(
            "fleet_lag_seconds",
            "How far this node's reading of the fleet stream is behind its newest message",
            [],
            [((), fleet.get("lag_seconds"))],
        )
        yield _gauge(
            "fleet_outbox",
            "Local decisions waiting to be published (Redis unreachable)",
            [],
            [((), fleet.get("outbox"))],
        )
        yield _counter(
            "fleet_messages",
            "Fleet messages by what became of them (applied, published, dropped and why)",
            ["outcome"],
            (((str(k),), n) for k, n in sorted((fleet.get("counts") or {}).items())),
        )

    def _notify(self, counts: Mapping[str, int]) -> Iterator[Metric]:
        yield _counter(
            "notifications",
            "Notifications, by outcome",
            ["outcome"],
            (((o,), counts.get(o, 0)) for o in NOTIFY_OUTCOMES),
        )


def _stats(entry: Mapping[str, Any]) -> Mapping[str, Any]:
    stats = entry.get("stats")
    return stats if isinstance(stats, Mapping) else {}


def render(collector: DaemonCollector) -> bytes:
    """The text exposition format, for any server that mounts /metrics (ours, the dashboard)."""
    return generate_latest(collector.registry)
