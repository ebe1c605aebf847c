from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from sipguard.fraud.cdr import CdrParser
from sipguard.fraud.config import MASTER_CSV_COLUMNS, CdrLayout
from sipguard.fraud.model import account_of

# cdr_csv with loguniqueid/loguserfield on: strings quoted (quotes doubled), dates quoted,
# an unanswered call's answer date empty and unquoted, integers bare (cdr/cdr_csv.c).
ROW = (
    '"","1001","004930123456","from-internal","""Alice"" <1001>","PJSIP/1001-0000001a",'
    '"PJSIP/trunk-0000001b","Dial","PJSIP/004930123456@trunk,60","2026-11-22 10:00:00",'
    '"2026-11-22 10:00:07","2026-11-22 10:02:07",127,120,"ANSWERED","DOCUMENTATION",'
    '"1763805600.26","my field"\n'
)
UNANSWERED = (
    '"acct7","1002","0030555","from-internal","""Bob"" <1002>","SIP/1002-00000003",'
    '"SIP/trunk-00000004","Dial","SIP/0030555@trunk",'
    '"2026-11-22 10:05:00",,"2026-11-22 10:05:25",25,0,"NO ANSWER","DOCUMENTATION"\n'
)


def parse(lines: list[str], layout: CdrLayout | None = None, tz: str = "UTC") -> tuple:  # type: ignore[type-arg]
    p = CdrParser(layout or CdrLayout(), tz, "Master.csv")
    return p.calls(lines), p


def test_master_csv_rows() -> None:
    calls, p = parse([ROW, UNANSWERED])
    a, b = calls
    assert (a.uid, a.account, a.dst, a.billsec, a.answered) == (
        "1763805600.26",
        "1001",
        "004930123456",
        120,
        True,
    )
    assert a.start == datetime(2026, 11, 22, 10, tzinfo=ZoneInfo("UTC")).timestamp()
    assert a.end == a.start + 127
    # 16 columns (no uniqueid/userfield: cdr_csv's defaults): uid falls back to file:line
    assert (b.uid, b.account, b.answered, b.billsec) == ("Master.csv:2", "1002", False, 0)
    assert p.rows == 2 and not p.errors


def test_local_time_zone() -> None:
    calls, _ = parse([ROW], tz="Europe/Berlin")
    assert (
        calls[0].start == datetime(2026, 11, 22, 10, tzinfo=ZoneInfo("Europe/Berlin")).timestamp()
    )


def test_custom_layout_with_header_and_address(tmp_path: Path) -> None:
    layout = CdrLayout(("start", "channel", "dst", "billsec", "duration", "ip", "uniqueid"), True)
    lines = [
        "when,chan,number,bill,dur,addr,id\n",
        "2026-11-22 10:00:00,PJSIP/2001-00000001,0044123456789,60,65,203.0.113.9,x1\n",
    ]
    calls, p = parse(lines, layout)
    assert len(calls) == 1 and not p.errors
    c = calls[0]
    assert (c.account, c.dst, c.billsec, c.ip, c.uid, c.end - c.start) == (
        "2001",
        "0044123456789",
        60,
        "203.0.113.9",
        "x1",
        65,
    )


def test_malformed_rows_are_counted_not_fatal(tmp_path: Path) -> None:
    bad_time = ROW.replace('"2026-11-22 10:00:00"', '"yesterday"')
    bad_int = ROW.replace(",127,120,", ",12x,120,")
    short = '"a","b","c"\n'
    huge = '"' + "x" * (csv.field_size_limit() + 10) + '"\n'
    path = tmp_path / "Master.csv"
    path.write_text("".join([bad_time, bad_int, short, huge, ROW, "\n"]))
    p = CdrParser(CdrLayout(), "UTC", str(path))
    got = list(p.read_file(path))
    assert len(got) == 1 and got[0][8] == "1763805600.26" and got[0][0] == 5
    assert p.errors["bad_time"] == 1 and p.errors["bad_number"] == 1
    assert p.errors["field_count"] == 2  # the short row and the empty line
    assert p.errors["csv_error"] == 1


@settings(max_examples=200)
@given(st.lists(st.text(max_size=80), max_size=25))
def test_garbage_rows_never_crash(cells: list[str]) -> None:
    p = CdrParser(CdrLayout(), "UTC")
    list(p.records([cells]))
    assert p.rows == 1


def test_account_of() -> None:
    assert account_of("SIP/1001-0000001a") == "1001"
    assert account_of("PJSIP/office-phone-7-00000012") == "office-phone-7"
    assert account_of("IAX2/peer-1234") == "peer"
    assert account_of("Local/100@ctx-00000001;1", "acct", "100") == "acct"
    assert account_of("", "", "1005") == "1005"


def test_default_layout_matches_cdr_csv_order() -> None:
    # build_csv_record: accountcode, src, dst, dcontext, clid, channel, dstchannel, lastapp,
    # lastdata, start, answer, end, duration, billsec, disposition, amaflags, uniqueid, userfield
    assert MASTER_CSV_COLUMNS[:18] == (
        "accountcode",
        "src",
        "dst",
        "dcontext",
        "clid",
        "channel",
        "dstchannel",
        "lastapp",
        "lastdata",
        "start",
        "answer",
        "end",
        "duration",
        "billsec",
        "disposition",
        "amaflags",
        "uniqueid",
        "userfield",
    )
