"""Inbound volume where calls are read from CDRs: `fraud scan` (one process and `--jobs`) and
the daemon's CDR follower. The one CDR row loop marks an inbound call (from a `trunks`
endpoint, or in an `inbound_contexts` dcontext, whatever it dialled) and counts it on its
trunk, as the live tracker counts an inbound call event; no account rule ever sees it."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import sipguard
from sipguard.core.calls import record_event
from sipguard.fraud.config import MASTER_CSV_COLUMNS, build_config, load_config
from sipguard.fraud.engine import FraudEngine
from sipguard.fraud.live import LiveTracker
from sipguard.fraud.parallel import scan_parallel
from sipguard.fraud.report import ScanResult
from sipguard.fraud.scan import build_engine, scan
from sipguard.fraud.stage import FraudStage

SAMPLES = Path(sipguard.__file__).parent / "rules/fraud/fraud-inbound-volume/samples"
T0 = 9 * 3600  # 09:00 of the day below


def row(n: int, t: int, channel: str, dst: str, context: str, day: int = 0) -> str:
    start = f"2026-11-{18 + day:02d} {t // 3600:02d}:{t // 60 % 60:02d}:{t % 60:02d}"
    cells = dict.fromkeys(MASTER_CSV_COLUMNS, "")
    cells.update(
        dst=dst, dcontext=context, channel=channel, lastapp="Dial", start=start,
        answer=start, end=start, duration="70", billsec="60", disposition="ANSWERED",
        amaflags="DOCUMENTATION", uniqueid=f"1794992400.{day * 1000 + n}",
    )  # fmt: skip
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow([cells[c] for c in MASTER_CSV_COLUMNS])
    return out.getvalue()


def office_day(day: int = 0) -> str:
    """Outbound calls all morning; three inbound floods (12-14 calls in 4 minutes) that the
    three ways of naming a trunk name; a quiet trunk; one account's outbound burst."""
    rows: list[tuple[int, str, str, str]] = []
    for i in range(60):  # 1001-1003 call national numbers every few minutes
        rows.append((T0 + i * 180, f"PJSIP/100{i % 3 + 1}-{i:08x}", "0301234567", "from-internal"))
    for i in range(14):  # the carrier endpoint, to an extension, in an internal context
        rows.append((T0 + 600 + i * 15, f"PJSIP/carrier-{i:08x}", "200", "from-internal"))
    for i in range(12):  # an inbound context, named by the provider's endpoint
        rows.append((T0 + 1800 + i * 20, f"PJSIP/provider-{i:08x}", "0301234000", "from-pstn"))
    for i in range(12):  # an inbound context and no channel account: the context names it
        rows.append((T0 + 3600 + i * 20, "", "0301234001", "from-did"))
    for i in range(5):  # a quiet trunk
        rows.append((T0 + 5400 + i * 60, f"PJSIP/carrier2-{i:08x}", "201", "from-internal"))
    for i in range(7):  # an account's own burst: velocity (max 5) still sees outbound calls
        rows.append((T0 + 7200 + i * 10, f"PJSIP/1002-b{i:07x}", "0301234999", "from-internal"))
    rows.sort()
    return "".join(row(n, t, ch, dst, ctx, day) for n, (t, ch, dst, ctx) in enumerate(rows))


CONFIG = {
    "home_country": "DE",
    "national_prefix": "0",
    "international_prefixes": ["00"],
    "timezone": "UTC",
    "trunks": ["carrier", "carrier2"],
    "rules": {"velocity": {"max_calls": 5, "window": 600}},
}


def engine() -> FraudEngine:
    e = build_engine(build_config(CONFIG))
    e.load_baseline({})
    return e


def live_hits(e: FraudEngine, path: Path) -> set[tuple[str, str, tuple[str, ...]]]:
    """The rows as CDR call events through the live tracker (the context handed over)."""
    tracker = LiveTracker(e)
    parser = e.cdr_parser(path.name)
    parser.outbound = None  # every row an event: the tracker decides the direction
    with path.open(newline="") as f:
        contexts = [r[3] for r in csv.reader(f)]
    got = set()
    for rec in parser.read_file(path):
        c = parser.call(rec)
        event = record_event(
            c.uid, c.account, c.dst, c.start, c.end, c.billsec, c.answered, c.channel, c.ip,
            c.line_no, path.name, contexts[c.line_no - 1],
        )  # fmt: skip
        got |= {(h.rule, h.account, h.calls) for h in tracker.on_event(event)}
    return got


def scan_hits(result: ScanResult) -> set[tuple[str, str]]:
    return {(i.rule, i.account) for i in result.incidents}


def test_scan_counts_inbound_calls_on_their_trunk_only(tmp_path: Path) -> None:
    path = tmp_path / "Master.csv"
    path.write_text(office_day())
    result = scan([path], engine())
    assert scan_hits(result) == {
        ("inbound_volume", "carrier"),  # a trunk endpoint, though it dialled an extension
        ("inbound_volume", "provider"),  # an inbound context, named by the endpoint
        ("inbound_volume", "from-did"),  # an inbound context without an endpoint name
        ("velocity", "1002"),  # outbound calls are still the accounts'
        ("concurrent", "1002"),  # (7 calls of 70 s, 10 s apart)
    }
    inbound = [i for i in result.incidents if i.rule == "inbound_volume"]
    assert {i.severity for i in inbound} == {"low"}
    carrier = next(i for i in inbound if i.account == "carrier")
    rows = list(csv.reader(io.StringIO(path.read_text())))
    uids = [r[16] for r in rows if r[5].startswith("PJSIP/carrier-")]
    assert carrier.calls[:11] == uids[:11]  # the 11th call crossed max_calls 10
    assert result.calls == 60 + 7  # inbound calls are no account's calls
    assert result.rows == 60 + 14 + 12 + 12 + 5 + 7


def test_scan_and_the_live_tracker_find_the_same(tmp_path: Path) -> None:
    path = tmp_path / "Master.csv"
    path.write_text(office_day())
    result = scan([path], engine())
    live = live_hits(engine(), path)
    assert {(rule, account) for rule, account, _ in live} == scan_hits(result)
    for inc in result.incidents:  # every hit's calls are among the incident's
        hits = [
            calls for rule, account, calls in live if (rule, account) == (inc.rule, inc.account)
        ]
        assert hits and all(set(calls) <= set(inc.calls) for calls in hits)


def test_parallel_scan_and_the_cdr_follower_agree(tmp_path: Path) -> None:
    path = tmp_path / "Master.csv"
    text = "".join(office_day(day) for day in range(3))  # more rows than one range
    path.write_text(text)
    one = scan([path], engine())
    assert ("inbound_volume", "from-did") in scan_hits(one)
    many = scan_parallel([path], engine(), 86400.0, 2)
    assert many is not None and many.to_dict() == one.to_dict()
    stage = FraudStage(engine(), gap=86400.0)
    alerts = stage.cdr(text.encode(), str(path), 1)
    assert {(a.detector, a.alert.key) for a in alerts if a.opens} >= {
        ("inbound_volume", "account:carrier"),
        ("inbound_volume", "account:provider"),
        ("inbound_volume", "account:from-did"),
    }


def test_the_rule_samples_alert_the_same_in_a_scan() -> None:
    """The shipped sample of the rule (read by the sample runner as call events) gives the
    same alert through `fraud scan`: the busy trunk, not the quiet one or the account."""
    config = load_config(SAMPLES / "fraud.toml")
    e = build_engine(config)
    result = scan([SAMPLES / "Master.csv"], e)
    inbound = {i.account for i in result.incidents if i.rule == "inbound_volume"}
    assert inbound == {"trunk"}
