"""Call direction (issue 12.7): inbound calls from the carrier to the office's DID are never
charged to an account; an account's own outbound calls still are."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from sipguard.cli.main import main
from sipguard.fraud.config import build_config
from sipguard.fraud.live import LiveTracker
from sipguard.fraud.scan import build_engine

OFFICE = 'home_country = "DE"\nnational_prefix = "0"\ninternational_prefixes = ["00"]\n'


def row(chan: str, dst: str, context: str, start: str, end: str, uid: str) -> list[str]:
    return ["", "", dst, context, "", chan, "", "Dial", "", start, start, end, "300", "290",
            "ANSWERED", "DOCUMENTATION", uid, ""]  # fmt: skip


def cdr(path: Path, chan: str, context: str, dst: str = "030123456") -> Path:
    """Three calls at once (max 2), written at hangup."""
    out = io.StringIO()
    w = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    for i in range(3):
        start, end = f"2026-11-18 10:00:0{i}", f"2026-11-18 10:05:0{i}"
        w.writerow(row(f"PJSIP/{chan}-0000000{i}", dst, context, start, end, f"u{i}"))
    path.write_text(out.getvalue())
    return path


def scan(path: Path, conf: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    main(["fraud", "scan", str(path), "--config", str(conf), "--format", "json"])
    alerts: list[dict[str, object]] = json.loads(capsys.readouterr().out)["alerts"]
    return alerts


def test_inbound_did_calls_are_not_an_accounts_concurrency(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "fraud.toml"
    conf.write_text(OFFICE)
    # the carrier's endpoint, calls entering the dialplan in from-pstn: inbound
    assert scan(cdr(tmp_path / "in.csv", "carrier", "from-pstn"), conf, capsys) == []
    # the same shape dialled by an office phone: outbound, charged to 1001
    alerts = scan(cdr(tmp_path / "out.csv", "1001", "from-internal"), conf, capsys)
    assert [(a["rule"], a["account"]) for a in alerts] == [("concurrent", "1001")]
    # a dialplan with its own names: the trunk endpoint named in `trunks`
    odd = cdr(tmp_path / "odd.csv", "carrier", "incoming")
    assert [a["account"] for a in scan(odd, conf, capsys)] == ["carrier"]
    conf.write_text(OFFICE + 'trunks = ["carrier"]\n')
    assert scan(odd, conf, capsys) == []
    conf.write_text(OFFICE + 'inbound_contexts = ["incoming"]\n')
    assert scan(odd, conf, capsys) == []


def test_live_inbound_call_is_not_checked() -> None:
    engine = build_engine(build_config({"home_country": "DE", "national_prefix": "0"}))
    engine.load_baseline({})
    tracker = LiveTracker(engine)
    hits = []
    for i, context in enumerate(["from-trunk"] * 3 + ["from-internal"] * 3):
        chan = f"PJSIP/carrier-{i}" if context == "from-trunk" else f"PJSIP/1001-{i}"
        fields = {"channel": chan, "uniqueid": f"u{i}", "exten": "09001234567", "context": context}
        get = fields.get
        for name in ("Newchannel", "DialBegin"):
            hits += tracker.feed(name, lambda k, get=get: get(k.lower()), 1_763_780_000.0 + i)
    assert {h.account for h in hits} == {"1001"}  # premium + concurrency, outbound only
    assert {h.rule for h in hits} >= {"risky_destination", "concurrent"}
