"""Shared lab for the sensor's namespace tests (the `lab` fixture is in conftest.py): `pbx`
(with a counting SIP responder), `attacker` and `trunk` namespaces, and helpers to run the
sensor and scripted clients."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from sipguard.testing.netns import Host, NetLab

HERE = Path(__file__).parent
DOMAIN = "secret.example.com"


@dataclass
class Lab:
    lab: NetLab
    pbx: Host
    atk: Host
    trunk: Host
    tmp: Path
    log: Path
    events: Path
    sensor: subprocess.Popen[bytes] | None = None
    files: list[IO[bytes]] = field(default_factory=list)

    @property
    def pbx_ip(self) -> str:
        return self.atk.hub_ip

    def received(self, host: Host) -> list[dict[str, str]]:
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        return [r for r in map(json.loads, lines) if r["src"] in (host.ip, host.ip6)]

    def sent_events(self) -> list[dict[str, object]]:
        text = self.events.read_text() if self.events.exists() else ""
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]

    def client(
        self,
        host: Host,
        count: int,
        method: str,
        req_host: str,
        ua: str,
        seconds: float = 0,
        target: str = "",
    ) -> dict[str, int]:
        target = target or host.hub_ip
        argv = [sys.executable, str(HERE / "sip_client.py"), target, str(count), method,
                req_host, ua, str(seconds)]  # fmt: skip
        out = self.lab.run(host, argv, timeout=30).stdout
        return dict(json.loads(out.strip().splitlines()[-1]))

    def start_sensor(self, *extra: str) -> None:
        argv = [sys.executable, "-m", "sipguard", "sensor", "--domain", DOMAIN,
                "--trusted", self.trunk.ip, *extra]  # fmt: skip
        out = self.events.open("ab")
        err = (self.tmp / "sensor.err").open("ab")
        self.files += [out, err]
        self.sensor = self.lab.popen(self.pbx, argv, stdout=out, stderr=err)
        deadline = time.monotonic() + 20
        starts = (self.tmp / "sensor.err").read_text().count("running on queue")
        while time.monotonic() < deadline:
            log = (self.tmp / "sensor.err").read_text()
            if log.count("running on queue") > starts:
                return
            assert self.sensor.poll() is None, log
            time.sleep(0.1)
        raise AssertionError("sensor did not install its queue rules")

    def stop_sensor(self, sig: int = signal.SIGTERM) -> None:
        assert self.sensor is not None
        self.sensor.send_signal(sig)
        self.sensor.wait(timeout=10)
