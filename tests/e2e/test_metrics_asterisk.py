"""`/metrics` during a real attack: a real Asterisk 20 in a namespace, `sipguard run` with
nftables beside it, a phone with a wrong password REGISTERing from another namespace. The
scrape (from inside the PBX's namespace, where the metrics port listens on loopback) must move
by exactly the attempts Asterisk reported, once each though every attempt is written to two
logs and sent on AMI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sipguard.daemon.harness import DaemonProc, wait_for
from sipguard.testing.asterisk import Pbx, PbxConfig
from sipguard.testing.netns import NetLab

sys.path.insert(0, str(Path(__file__).parent))
from test_daemon_netns import kernel_set

pytestmark = [pytest.mark.netns, pytest.mark.slow]

SENDERS = str(Path(__file__).with_name("asterisk_senders.py"))
FETCH = (
    "import sys, urllib.request; "
    "sys.stdout.write(urllib.request.urlopen(sys.argv[1]).read().decode())"
)


def test_metrics_during_a_real_attack(netlab: NetLab, asterisk_prefix: Path, tmp_path: Path):
    pbx_host = netlab.add_host("pbx")
    atk = netlab.add_host("atk", hub=pbx_host)
    config = PbxConfig(endpoints={"1001": "pj-1001-secret"})
    pbx = Pbx(netlab, pbx_host, tmp_path / "asterisk", asterisk_prefix, config).start()
    cfg = tmp_path / "sipguard.toml"
    metrics = '[metrics]\nenabled = true\nlisten = "127.0.0.1:9877"\n'
    cfg.write_text(pbx.sipguard_config(tmp_path, metrics))
    daemon = DaemonProc(cfg, tmp_path / "ctl.sock", [], prefix=netlab.cmd(pbx_host, []))

    def scrape() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        out = netlab.run(pbx_host, [sys.executable, "-c", FETCH, "http://127.0.0.1:9877/metrics"])
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(out.stdout)
            for s in family.samples
        }

    def value(samples: dict, name: str, **labels: str) -> float:
        return sum(v for (n, lab), v in samples.items() if n == name and set(labels.items()) <= lab)

    daemon.start()
    try:
        wait_for(lambda: daemon.request("status")["sources"]["ami"].get("connected"), 15)
        before = scrape()
        # five REGISTERs with a wrong password: Asterisk answers each, logs each twice
        # (messages, security) and sends it on AMI; the fifth crosses password-guessing's 5
        res = netlab.run(
            atk,
            [
                sys.executable,
                SENDERS,
                "phone",
                atk.hub_ip,
                "5060",
                "1001",
                "pj-1001-secret",
                "5",
                "0.05",
                "0,1,2,3,4",
            ],
            timeout=60,
        )
        assert json.loads(res.stdout)["results"] == [401] * 5
        wait_for(lambda: kernel_set(netlab, pbx_host) == {f"{atk.ip}/32"}, 10, 0.01)
        wait_for(lambda: value(scrape(), "sipguard_ban_latency_seconds_count") == 1, 5)
        after = scrape()
        status = daemon.request("status")
    finally:
        daemon.stop()
        pbx.stop()

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("sipguard_events_total", kind="wrong_password") == 5
    assert delta("sipguard_alerts_total", rule="password-guessing") == 1
    assert delta("sipguard_decisions_total", origin="local", action="ban") == 1
    assert value(after, "sipguard_active_bans", origin="local", family="ipv4") == 1
    assert value(after, "sipguard_kernel_errors_total") == 0
    assert value(after, "sipguard_source_up", source="ami") == 1
    assert value(after, "sipguard_source_up", source="logs") == 1
    # the same figures `sipguard status` shows: one source of truth
    assert value(after, "sipguard_lines_total") == status["normalizer"]["lines"]
    p99 = status["ban_latency_p99"]
    print(f"real Asterisk, nftables: ban latency (line read -> kernel set) bucket <= {p99}s")
    assert p99 <= 1.0
