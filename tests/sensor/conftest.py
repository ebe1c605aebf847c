"""The `lab` fixture: pbx (with a counting SIP responder), attacker and trunk namespaces."""

from __future__ import annotations

import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sensorlab import HERE, Lab

from sipguard.testing.netns import NetLab


@pytest.fixture
def lab(netlab: NetLab, tmp_path: Path) -> Iterator[Lab]:
    pbx = netlab.add_host("pbx")
    atk = netlab.add_host("attacker", hub=pbx)
    trunk = netlab.add_host("trunk", hub=pbx)
    log = tmp_path / "responder.jsonl"
    responder = netlab.popen(
        pbx, [sys.executable, str(HERE / "sip_responder.py"), "5060", str(log)],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert responder.stdout is not None
    ready, _, _ = select.select([responder.stdout], [], [], 10)
    assert ready and responder.stdout.readline().strip() == b"ready"
    env = Lab(netlab, pbx, atk, trunk, tmp_path, log, tmp_path / "events.jsonl")
    env.files.append(responder.stdout)
    yield env
    netlab.close()
    for fh in env.files:
        fh.close()
