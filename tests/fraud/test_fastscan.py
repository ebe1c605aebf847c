"""The offline hot loop (`FraudEngine.check` over outbound records) against the reference
path (every record of `CdrParser.records` through `cdr_call`).

Rows are drawn from a few realistic Master.csv calls and then damaged the ways real files
are (bad dates, odd characters in the minute, bad numbers, short rows, over-long numbers,
odd channels, missing uniqueids, huge fields): the report, the error counts, the row count
and the calls the rules looked at must be identical.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sipguard.fraud.cdr import CdrParser
from sipguard.fraud.config import build_config
from sipguard.fraud.report import AlertBook
from sipguard.fraud.scan import build_engine
from sipguard.fraud.tables import RateTable

DSTS = [
    "030123456",
    "030123457",
    "00441234567890",
    "0090012345",
    "00881612345",
    "1001",
    "015112345678",
]
CHANNELS = [
    "PJSIP/1001-0000001a",
    "SIP/1002-00000003",
    "PJSIP/1003-000000ff",
    "Local/1@x-1;1",
    "",
    "PJSIP/-1",
    "IAX2/1004",
]
TIMES = ["2026-11-11 10:00:05", "2026-11-11 10:00:40", "2026-11-11 23:59:59", "2026-11-14 03:10:00"]
DAMAGE = [
    None,
    ("start", "2026-11-11 10:0²:05"),
    ("start", "2026-11-11 10:00X05"),
    ("start", "2026-11-11 10:00:0"),
    ("start", "yesterday"),
    ("start", "2026-11-11 1x:00:05"),
    ("start", "2026-11-11 10: 1:05"),
    ("duration", "12x"),
    ("billsec", ""),
    ("dst", "0" * 70),
    ("uniqueid", ""),
    ("short", ""),
]
COLUMNS = ["accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp",
           "lastdata", "start", "answer", "end", "duration", "billsec", "disposition",
           "amaflags", "uniqueid", "userfield"]  # fmt: skip


def engine() -> Any:
    config = build_config(
        {
            "home_country": "DE",
            "national_prefix": "0",
            "international_prefixes": ["00"],
            "timezone": "Europe/Berlin",
            "rules": {
                "velocity": {"max_calls": 4, "window": 600},
                "short_burst": {"min_calls": 3},
                "spend": {"daily_limit": 1.0},
                "new_country": {"learn_seconds": 60},
            },
        }
    )
    rates = RateTable()
    rates.add("49", 0.02)
    rates.add("44", 0.5)
    return build_engine(config, rates)


def row(i: int, pick: tuple[int, int, int, int, int, int]) -> str:
    d, c, t, dur, bill, damage = pick
    cells = {
        "accountcode": "", "src": "100" + str(i % 3), "dst": DSTS[d], "dcontext": "from-internal",
        "clid": '"Ext" <1001>', "channel": CHANNELS[c], "dstchannel": "PJSIP/trunk-1",
        "lastapp": "Dial", "lastdata": "PJSIP/x@trunk,60", "start": TIMES[t], "answer": "",
        "end": TIMES[t], "duration": str(dur), "billsec": str(bill), "disposition": "ANSWERED",
        "amaflags": "DOCUMENTATION", "uniqueid": f"1763.{i}", "userfield": "",
    }  # fmt: skip
    hurt = DAMAGE[damage]
    if hurt is not None and hurt[0] != "short":
        cells[hurt[0]] = hurt[1]
    values = [cells[k] for k in COLUMNS]
    if hurt is not None and hurt[0] == "short":
        values = values[:5]
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_MINIMAL).writerow(values)
    return out.getvalue()


def both(lines: list[str]) -> tuple[Any, Any]:
    fast_engine, slow_engine = engine(), engine()
    results = []
    for eng, fast in ((fast_engine, True), (slow_engine, False)):
        cfg = eng.config
        book = AlertBook()
        if fast:
            parser = eng.cdr_parser("Master.csv")
            eng.check(parser.records(csv.reader(lines)), "Master.csv", on_hit=book.add)
        else:
            parser = CdrParser(cfg.cdr, cfg.timezone, "Master.csv")
            for rec in parser.records(csv.reader(lines)):
                for hit in eng.cdr_call(parser.call(rec)):
                    book.add(hit)
        results.append(
            ([i.to_dict() for i in book.sorted()], dict(parser.errors), parser.rows, eng.calls_seen)
        )
    return results[0], results[1]


PICK = st.tuples(
    st.integers(0, len(DSTS) - 1),
    st.integers(0, len(CHANNELS) - 1),
    st.integers(0, len(TIMES) - 1),
    st.integers(0, 300),
    st.sampled_from([0, 3, 60, 7200]),
    st.sampled_from([0] * 12 + list(range(len(DAMAGE)))),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(PICK, min_size=1, max_size=60))
def test_fast_loop_equals_reference_path(picks: list[tuple[int, int, int, int, int, int]]) -> None:
    lines = [row(i, p) for i, p in enumerate(picks)]
    fast, slow = both(lines)
    assert fast == slow


def test_damaged_rows_counted_alike_and_alerts_fire() -> None:
    good = [row(i, (2, 0, i % 2, 30, 60, 0)) for i in range(8)]  # UK calls, 0.50/min
    lines = [
        row(90, (0, 0, 0, 10, 5, 1)),  # "²" in the minute: a bad date, never a crash
        *good,
        row(91, (0, 0, 0, 10, 5, 2)),  # bad colon, hour already seen: taken as before
        row(92, (0, 0, 0, 10, 5, 7)),
        row(93, (0, 0, 0, 10, 5, 11)),
        '"' + "x" * (csv.field_size_limit() + 5) + '"\n',
    ]
    fast, slow = both(lines)
    assert fast == slow
    reports, errors, rows, calls = fast
    assert errors == {"bad_time": 1, "bad_number": 1, "field_count": 1, "csv_error": 1}
    assert rows == len(lines) and calls == 9
    assert {"velocity", "spend", "concurrent"} <= {r["rule"] for r in reports}
