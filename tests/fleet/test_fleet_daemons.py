"""Two real `sipguard run` processes (dry-run firewall) sharing decisions through a real
redis-server on a unix socket: fast checks of the daemon wiring. The kernel-level proof with
three PBX namespaces is tests/e2e/test_fleet_netns.py."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sipguard.daemon.harness import SRC, append, pjsip_failure, wait_for
from sipguard.testing.fleetlab import fleet_status, node, origins
from sipguard.testing.redis_server import RedisServer, redis_available

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not redis_available(), reason="redis-server not installed (install-deps --dev)"
    ),
]


@pytest.fixture
def redis(tmp_path):
    r = RedisServer(tmp_path / "redis").start()
    yield r
    r.stop()


def test_ban_unban_and_no_echo_between_two_daemons(tmp_path, redis):
    a = node(tmp_path, "a", redis.url, ["--dry-run"]).start()
    b = node(tmp_path, "b", redis.url, ["--dry-run"]).start()
    try:
        wait_for(lambda: fleet_status(a)["connected"] and fleet_status(b)["connected"])
        out = subprocess.run(
            [sys.executable, "-m", "sipguard", "status", "--socket", str(b.socket)],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "PYTHONPATH": SRC},
        ).stdout
        assert "fleet:    node b, connected, lag 0.0s, outbox 0" in out, out
        append(
            tmp_path / "a" / "log" / "messages",
            "".join(pjsip_failure("203.0.113.50", i) for i in range(6)),
        )
        wait_for(lambda: origins(b).get("203.0.113.50/32") == "fleet:a")
        wait_for(lambda: origins(a).get("203.0.113.50/32") == "local")
        ban_a = {x["network"]: x for x in a.request("bans")}["203.0.113.50/32"]
        ban_b = {x["network"]: x for x in b.request("bans")}["203.0.113.50/32"]
        assert ban_b["expires"] == ban_a["expires"]  # the remaining time, not a fresh ban
        assert "from a" in b.request("explain", {"addr": "203.0.113.50"})["active"]["reason"]
        # b never sends it back: one stream entry (a's ban), and a reads its own once
        assert redis.cli("XLEN", "sipguard:stream") == "1"
        wait_for(lambda: fleet_status(a)["counts"].get("own", 0) == 1)
        a.request("unban", {"addr": "203.0.113.50"})
        wait_for(lambda: "203.0.113.50/32" not in origins(b))
        assert redis.cli("HLEN", "sipguard:active") == "0"
    finally:
        a.stop()
        b.stop()


FRAUD = """
[daemon.fraud]
enabled = true
cdr = ["{d}/Master.csv"]
[fraud]
home_country = "DE"
national_prefix = "0"
international_prefixes = ["00"]
[fraud.rules.risky_destination]
types = [{types}]
"""


def cdr_row(account: str, dialled: str, uid: str) -> str:
    """One cdr_csv Master.csv row (with loguniqueid): an answered call by `account`."""
    return (
        f'"","{account}","{dialled}","from-internal","""D"" <{account}>",'
        f'"PJSIP/{account}-00000001","PJSIP/trunk-00000002","Dial","PJSIP/{dialled}@trunk",'
        '"2026-11-11 10:00:00","2026-11-11 10:00:05","2026-11-11 10:01:05",65,60,'
        f'"ANSWERED","DOCUMENTATION","{uid}",""\n'
    )


def fraud_alerts(d, account: str) -> list[dict[str, object]]:
    return [r for r in d.request("status")["recent_alerts"] if r["key"] == f"account:{account}"]


def test_fraud_range_from_one_node_is_a_hotlist_hit_on_another(tmp_path, redis):
    """a flags a premium-rate number and shares its range; b does not flag premium numbers
    itself (its rule looks at satellite numbers and the hotlist), so b's alert on a neighbour
    number proves the shared range became b's hotlist entry."""
    nodes = {}
    for name, types in (("a", '"premium_rate"'), ("b", '"satellite"')):
        d = tmp_path / name
        d.mkdir()
        (d / "Master.csv").write_text("")
        extra = FRAUD.format(d=d, types=types)
        nodes[name] = node(tmp_path, name, redis.url, ["--dry-run"], extra=extra).start()
    a, b = nodes["a"], nodes["b"]
    try:
        wait_for(lambda: fleet_status(a)["connected"] and fleet_status(b)["connected"])
        # control: before any range is shared, b lets a premium call in that range through
        append(tmp_path / "b" / "Master.csv", cdr_row("2001", "09001230000", "1762855200.9"))
        # (the first call read starts the learning period: the row was checked)
        wait_for(lambda: b.request("status")["fraud"]["learning_until"] is not None)
        append(tmp_path / "a" / "Master.csv", cdr_row("1004", "09001234567", "1762855200.1"))
        wait_for(lambda: fraud_alerts(a, "1004"))
        wait_for(lambda: fleet_status(b)["counts"].get("ranges_applied", 0) == 1)
        assert fleet_status(b)["fraud_ranges"] == 1
        assert fraud_alerts(b, "2001") == []  # the control call raised nothing on b
        # another number in a's range (+49900123...), dialled on b: a hotlist hit naming a
        append(tmp_path / "b" / "Master.csv", cdr_row("2002", "09001239999", "1762855200.2"))
        hits = wait_for(lambda: fraud_alerts(b, "2002"))
        assert hits[0]["rule"] == "fraud.risky_destination"
        assert "fleet:a" in str(hits[0]["reason"]), hits
        # b's hit is on the fleet's own range: not published back (a's one entry on the stream)
        assert redis.cli("XLEN", "sipguard:stream") == "1"
    finally:
        a.stop()
        b.stop()
