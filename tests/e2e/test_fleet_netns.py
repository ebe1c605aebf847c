"""The fleet end to end in network namespaces: one real redis-server in a `core` namespace that
routes between three PBX namespaces (each a `sipguard run` with the nftables backend and a SIP
responder), an attacker and a misbehaving trunk.

One test walks the fleet's life, each phase starting from the state the last one left:
attack on pbx1 -> the attacker's packets dropped at pbx2 and pbx3 -> the trunk, allow-listed on
pbx3 only -> unban propagates -> pbx3 stopped during bans catches up -> redis-server killed and
restarted: the outbox drains, nothing lost -> forged/unsigned stream entries counted, ignored.
A second test runs the fleet with quorum 2.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sipguard.daemon.harness import DaemonProc, append, pjsip_failure, wait_for
from sipguard.testing.fleetlab import fleet_status, node, origins
from sipguard.testing.netns import NetLab, kernel_set
from sipguard.testing.redis_server import RedisServer, redis_available

pytestmark = [
    pytest.mark.netns,
    pytest.mark.slow,
    pytest.mark.skipif(not redis_available(), reason="no redis-server (install-deps --dev)"),
]

HELPERS = str(Path(__file__).with_name("nethelpers.py"))
PORT = 6379  # inside the core namespace: nothing else listens there


def replies(path: Path) -> int:
    try:
        return int(path.read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0


class Fleet:
    """The lab: core (redis, router), pbx1..3, attacker, trunk."""

    def __init__(self, lab: NetLab, tmp: Path, quorum: int = 1) -> None:
        self.lab, self.tmp = lab, tmp
        self.core = lab.add_host("core")
        self.pbx = [lab.add_host(f"pbx{i}", hub=self.core) for i in (1, 2, 3)]
        self.atk = lab.add_host("attacker", hub=self.core)
        self.trunk = lab.add_host("trunk", hub=self.core)
        lab.run(self.core, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        self.redis = RedisServer(
            tmp / "redis", port=PORT, bind="0.0.0.0", prefix=lab.cmd(self.core, [])
        ).start()
        allow = {3: f'"{self.trunk.ip}/32"'}
        self.nodes: list[DaemonProc] = []
        for i, host in enumerate(self.pbx, 1):
            url = f"redis://{host.hub_ip}:{PORT}/0"
            extra = f"quorum = {quorum}\nquorum_window = 300.0"
            d = node(
                tmp, f"pbx{i}", url, [], lab.cmd(host, []), allow=allow.get(i, ""), extra=extra
            )
            self.nodes.append(d)

    def start(self) -> None:
        for d in self.nodes:
            d.start()
        wait_for(lambda: all(fleet_status(d)["connected"] for d in self.nodes))

    def stop(self) -> None:
        for d in self.nodes:
            d.stop()
        self.redis.stop()

    def kset(self, i: int) -> set[str]:
        return kernel_set(self.lab, self.pbx[i - 1])

    def attack_pbx1(self, ip: str, n: int = 6) -> None:
        log = self.tmp / "pbx1" / "log" / "messages"
        append(log, "".join(pjsip_failure(ip, k) for k in range(n)))


@pytest.fixture
def fleet(netlab: NetLab, tmp_path: Path) -> Any:
    f = Fleet(netlab, tmp_path)
    yield f
    f.stop()


def test_fleet_bans_everywhere_in_the_kernel(fleet: Fleet, tmp_path: Path) -> None:
    lab, py = fleet.lab, sys.executable
    pbx1, pbx2, pbx3 = fleet.nodes
    fleet.start()
    atk = f"{fleet.atk.ip}/32"
    # the attacker talks to pbx2 and pbx3 (through the core router) before anything happens
    outs = {}
    for i in (2, 3):
        host = fleet.pbx[i - 1]
        lab.popen(host, [py, HELPERS, "responder", "5060", str(tmp_path / f"counts{i}.json")])
        outs[i] = tmp_path / f"atk{i}.txt"
        lab.popen(fleet.atk, [py, HELPERS, "sender", host.ip, "5060", "0.02", str(outs[i])])
    wait_for(lambda: all(replies(o) > 5 for o in outs.values()), 15)

    # --- an attack on pbx1: banned there by detection, dropped at pbx2 and pbx3 by the fleet
    t0 = time.monotonic()
    fleet.attack_pbx1(fleet.atk.ip)
    wait_for(lambda: atk in fleet.kset(2) and atk in fleet.kset(3), 10, 0.005)
    elapsed = time.monotonic() - t0
    assert atk in fleet.kset(1)
    # the fleet hears of a ban once it is in the kernel; the store follows by a disk sync
    wait_for(lambda: origins(pbx1).get(atk) == "local", 5)
    wait_for(lambda: origins(pbx2).get(atk) == origins(pbx3).get(atk) == "fleet:pbx1", 5)
    assert elapsed < 5, elapsed
    time.sleep(0.5)
    frozen = {i: replies(o) for i, o in outs.items()}
    time.sleep(1.0)
    assert {i: replies(o) for i, o in outs.items()} == frozen  # no answers: packets dropped
    assert fleet_status(pbx2)["counts"]["bans_applied"] >= 1

    # --- the trunk misbehaves on pbx1: pbx2 bans it, pbx3 (trunk allow-listed) does not
    trunk = f"{fleet.trunk.ip}/32"
    fleet.attack_pbx1(fleet.trunk.ip)
    wait_for(lambda: trunk in fleet.kset(2), 10)
    wait_for(lambda: fleet_status(pbx3)["counts"].get("allow_listed", 0) >= 1)
    assert trunk not in fleet.kset(3) and trunk not in origins(pbx3)

    # --- an unban on pbx1 propagates; the attacker gets answers again
    pbx1.request("unban", {"addr": fleet.atk.ip})
    wait_for(lambda: atk not in fleet.kset(2) and atk not in fleet.kset(3), 10)
    lab.run(fleet.pbx[1], ["conntrack", "-F"], check=False)
    base = replies(outs[2])
    wait_for(lambda: replies(outs[2]) > base + 3, 10)

    # --- pbx3 stopped while pbx1 bans 20 networks: on restart it catches up, once each
    pbx3.stop()
    batch = [f"198.18.0.{k}" for k in range(1, 21)]
    for ip in batch:
        pbx1.request("ban", {"addr": ip, "for": "1h", "reason": "test batch"})
    wait_for(lambda: all(f"{ip}/32" in origins(pbx2) for ip in batch), 10)
    pbx3.start()
    wait_for(lambda: {f"{ip}/32" for ip in batch} <= fleet.kset(3), 10)
    wait_for(lambda: fleet_status(pbx3)["counts"].get("bans_applied", 0) >= 20, 5)
    time.sleep(0.5)
    st3 = fleet_status(pbx3)
    assert st3["counts"]["bans_applied"] == 20, st3  # what it missed, nothing more or twice
    history = pbx3.request("explain", {"addr": batch[0]})["history"]
    assert len(history) == 1 and history[0]["origin"] == "fleet:pbx1"

    # --- redis-server killed: local protection goes on, decisions wait in the outbox
    fleet.redis.kill()
    late = [f"198.18.1.{k}" for k in range(1, 11)]
    for ip in late:
        pbx1.request("ban", {"addr": ip, "for": "1h"})
    assert {f"{ip}/32" for ip in late} <= fleet.kset(1)
    wait_for(lambda: fleet_status(pbx1)["outbox"] == 10, 10)
    st1 = fleet_status(pbx1)
    assert st1["connected"] is False and st1["last_error"], st1
    fleet.redis.start()
    wait_for(lambda: fleet_status(pbx1)["outbox"] == 0, 40)
    want = {f"{ip}/32" for ip in batch + late}
    wait_for(lambda: want <= fleet.kset(2) and want <= fleet.kset(3), 40)
    assert int(fleet.redis.cli("HLEN", "sipguard:active")) >= len(want) + 1  # AOF kept the rest
    wait_for(lambda: fleet_status(pbx3)["counts"].get("bans_applied", 0) >= 30, 5)
    time.sleep(0.5)
    assert fleet_status(pbx3)["counts"]["bans_applied"] == 30

    # --- stream entries without a valid signature: counted, never applied
    before = dict(fleet_status(pbx2)["counts"])
    now = time.time()
    body = json.dumps(
        {
            "v": 1,
            "k": "ban",
            "n": "pbx1",
            "q": 10**17,
            "t": now,
            "x": "198.18.9.9/32",
            "r": "x",
            "why": "x",
            "l": 0,
            "s": now,
            "e": None,
            "ev": "",
        }
    )
    fleet.redis.cli("XADD", "sipguard:stream", "*", "m", "0" * 64 + "." + body)
    fleet.redis.cli("XADD", "sipguard:stream", "*", "m", body)
    fleet.redis.cli("XADD", "sipguard:stream", "*", "junk", "x" * 100)

    def dropped() -> bool:
        c = fleet_status(pbx2)["counts"]
        return c.get("forged", 0) > before.get("forged", 0) and (
            c.get("unsigned", 0) >= before.get("unsigned", 0) + 2
        )

    try:
        wait_for(dropped, 10)
    except AssertionError:
        raise AssertionError(f"{before} -> {fleet_status(pbx2)}") from None
    assert "198.18.9.9/32" not in fleet.kset(2) and "198.18.9.9/32" not in fleet.kset(3)
    pbx2.send(signal.SIGHUP)  # still alive and answering after hostile entries
    assert pbx2.request("status")["fleet"]["connected"] is True


def test_quorum_two(netlab: NetLab, tmp_path: Path) -> None:
    fleet = Fleet(netlab, tmp_path, quorum=2)
    try:
        fleet.start()
        pbx1, pbx2, pbx3 = fleet.nodes
        ip = "198.18.5.5"
        pbx1.request("ban", {"addr": ip, "for": "1h"})
        wait_for(lambda: fleet_status(pbx3)["counts"].get("quorum_pending", 0) >= 1, 10)
        wait_for(lambda: fleet_status(pbx2)["counts"].get("quorum_pending", 0) >= 1, 10)
        time.sleep(0.5)
        assert f"{ip}/32" not in fleet.kset(2) and f"{ip}/32" not in fleet.kset(3)
        pbx2.request("ban", {"addr": ip, "for": "1h"})  # a second node reports it
        wait_for(lambda: f"{ip}/32" in fleet.kset(3), 10)
        wait_for(lambda: origins(pbx3).get(f"{ip}/32") == "fleet:pbx2", 5)
    finally:
        fleet.stop()
