"""Prometheus metrics: what the daemon's components already count, exported at scrape time.

`Tally` and `Latency` are the only things the daemon updates for metrics (an event/alert
observer and the ban latency histogram); everything else is read from the components when
Prometheus scrapes (`DaemonCollector`), so the hot paths stay as they are. An adapter: only
`sipguard.daemon` wires it.
"""

from sipguard.metrics.collector import DaemonCollector, MetricsView, render
from sipguard.metrics.latency import Latency
from sipguard.metrics.server import MetricsServer, parse_listen
from sipguard.metrics.tally import Tally, origin_class

__all__ = [
    "DaemonCollector",
    "Latency",
    "MetricsServer",
    "MetricsView",
    "Tally",
    "origin_class",
    "parse_listen",
    "render",
]
