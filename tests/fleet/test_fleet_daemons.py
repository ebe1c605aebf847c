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
