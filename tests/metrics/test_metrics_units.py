"""The collector on a hand-made status, the /metrics server against hostile clients, the
latency histogram."""

from __future__ import annotations

import asyncio
from ipaddress import ip_network

from prometheus_client.parser import text_string_to_metric_families

from sipguard.core import Action, Decision
from sipguard.metrics import DaemonCollector, Latency, MetricsServer, MetricsView, Tally, render
from sipguard.metrics.server import MAX_REQUEST

STATUS = {
    "normalizer": {"lines": 12, "malformed": 2},
    "engine": {"evicted": 1},
    "engine_keys": 4,
    "queue": {"events_waiting": 0, "dropped": 3},
    "firewall": {"errors": 1, "add": {"count": 2}, "remove": {"count": 0}},
    "sources": {
        "logs": {"state": "running", "restarts": 0, "stats": {"lines": 12}},
        "sensor": {
            "state": "down",
            "restarts": 2,
            "stats": {"accepted": 7, "bypassed_fail_open": 5},
        },
    },
    "fraud": {"hits": {"spend": 1}, "actions": {"hangup_ok": 1}, "incidents": 1},
    "feeds": [
        {"name": "apiban", "in_kernel": 812, "last_ok": 1700000000.0,
         "counts": {"refreshes": 4, "failures": 1}},
        {"name": "voipbl", "in_kernel": 0, "last_ok": None, "counts": {"failures": 3}},
    ],
    "fleet": {"enabled": True, "connected": False, "lag_seconds": 1.5, "outbox": 7,
              "counts": {"bans_applied": 3, "forged": 2}},
}  # fmt: skip


def bans() -> list[Decision]:
    return [
        Decision(ip_network("203.0.113.7/32"), Action.BAN, "r", "x", 0, None),
        Decision(ip_network("2001:db8::/64"), Action.BAN, "r", "x", 0, None, origin="fleet:n2"),
        Decision(ip_network("198.51.100.0/24"), Action.BAN, "r", "x", 0, None, origin="manual"),
    ]


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def test_collector_reads_the_status_and_bans():
    latency = Latency()
    latency.observe(0.004, 3)
    view = MetricsView(lambda: STATUS, bans, Tally(), latency, notify=lambda: {"dropped": 2})
    got = samples(render(DaemonCollector(view)).decode())
    assert got[("sipguard_active_bans", frozenset({("origin", "local"), ("family", "ipv4")}))] == 1
    assert got[("sipguard_active_bans", frozenset({("origin", "fleet"), ("family", "ipv6")}))] == 1
    assert got[("sipguard_active_bans", frozenset({("origin", "manual"), ("family", "ipv4")}))] == 1
    assert got[("sipguard_lines_rejected_total", frozenset({("reason", "malformed")}))] == 2
    assert got[("sipguard_queue_dropped_total", frozenset())] == 3
    assert got[("sipguard_kernel_errors_total", frozenset())] == 1
    assert got[("sipguard_source_up", frozenset({("source", "sensor")}))] == 0
    assert got[("sipguard_feed_entries", frozenset({("feed", "apiban")}))] == 812
    ok, error = ("outcome", "ok"), ("outcome", "error")
    assert got[("sipguard_feed_refreshes_total", frozenset({("feed", "apiban"), ok}))] == 4
    assert got[("sipguard_feed_refreshes_total", frozenset({("feed", "voipbl"), error}))] == 3
    never = ("sipguard_feed_last_success_timestamp_seconds", frozenset({("feed", "voipbl")}))
    assert got[never] == 0
    assert got[("sipguard_fleet_connected", frozenset())] == 0
    assert got[("sipguard_fleet_lag_seconds", frozenset())] == 1.5
    assert got[("sipguard_fleet_outbox", frozenset())] == 7
    assert got[("sipguard_fleet_messages_total", frozenset({("outcome", "forged")}))] == 2
    assert got[("sipguard_source_restarts_total", frozenset({("source", "sensor")}))] == 2
    assert got[("sipguard_sensor_verdicts_total", frozenset({("verdict", "accepted")}))] == 7
    assert got[("sipguard_sensor_fail_open_bypassed_total", frozenset())] == 5
    assert got[("sipguard_fraud_alerts_total", frozenset({("rule", "spend")}))] == 1
    assert got[("sipguard_notifications_total", frozenset({("outcome", "dropped")}))] == 2
    le = ("le", "0.005")
    assert got[("sipguard_ban_latency_seconds_bucket", frozenset({le}))] == 3
    assert got[("sipguard_ban_latency_seconds_bucket", frozenset({("le", "0.0025")}))] == 0
    assert got[("sipguard_ban_latency_seconds_count", frozenset())] == 3


def test_latency_quantile_is_the_bucket_bound():
    lat = Latency()
    assert lat.quantile(0.99) == 0.0
    lat.observe(0.002, 99)
    lat.observe(3.0)
    assert lat.quantile(0.5) == 0.0025 and lat.quantile(1.0) == 5.0
    assert lat.cumulative()[-1] == ("+Inf", 100)


def test_server_answers_metrics_and_survives_garbage():
    async def go() -> tuple[list[bytes], MetricsServer]:
        server = MetricsServer("127.0.0.1", 0, lambda: b"sipguard_up 1\n")
        await server.start()
        answers = []
        for request in (
            b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /other HTTP/1.1\r\n\r\n",
            b"POST /metrics HTTP/1.1\r\n\r\n",
            b"\x00\xff" * (MAX_REQUEST + 10),  # binary, larger than any request may be
            b"GET /metrics",  # then the client goes away
            b"GET /metrics HTTP/1.0\r\n\r\n",
        ):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(request)
            if not request.endswith(b"\r\n\r\n") and len(request) < MAX_REQUEST:
                writer.write_eof()
            answers.append(await reader.read())
            writer.close()
        await server.close()
        return answers, server

    answers, server = asyncio.run(go())
    assert answers[0].startswith(b"HTTP/1.1 200 OK") and answers[0].endswith(b"sipguard_up 1\n")
    assert answers[1].startswith(b"HTTP/1.1 404") and answers[2].startswith(b"HTTP/1.1 405")
    assert answers[3] == b"" and answers[4] == b""  # closed, counted
    assert answers[5].startswith(b"HTTP/1.1 200 OK")  # still serving
    assert server.scrapes == 2 and server.bad_requests == 2


def test_the_grafana_dashboard_queries_only_exported_metrics():
    import json
    import re
    from pathlib import Path

    dashboard = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"
    exprs = [t["expr"] for p in json.loads(dashboard.read_text())["panels"] for t in p["targets"]]
    used = {name for e in exprs for name in re.findall(r"sipguard_\w+", e)}
    from sipguard.core import Alert, Event, Kind, Service

    latency, tally = Latency(), Tally()
    latency.observe(0.01)
    tally.event(Event(0.0, Kind.WRONG_PASSWORD, Service.PJSIP))
    d = bans()[0]
    tally.alert(Alert("r", 0.0, "k", d.network, "default", "x"), d)
    view = MetricsView(lambda: STATUS, bans, tally, latency)
    exported = set(samples(render(DaemonCollector(view)).decode()))
    names = {name for name, _ in exported}
    assert used and used <= names, used - names
