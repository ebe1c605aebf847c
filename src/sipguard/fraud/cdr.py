"""CDR readers: cdr_csv's Master.csv and custom CSV layouts, to `Call`s.

cdr_csv quotes strings, leaves integers bare and writes dates as `%Y-%m-%d %H:%M:%S` in local
time (GMT with `usegmtime=yes`); an unanswered call has an empty answer date. Rows are written
when a call ends, so a file is in hangup order. Bad rows never stop a scan: each is counted by
reason in `CdrParser.errors`.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sipguard.fraud.config import CdrLayout
from sipguard.fraud.model import Call, account_of

MAX_FIELD = 4096  # no CDR field is longer; longer ones are cut (and the row counted)
MAX_FIELDS = 64
# (uid, account, dst, start, end, billsec, answered, channel, ip, line_no): Call's fields.
RecordSink = Callable[[str, str, str, float, float | None, int, bool, str, str, int], object]
_TECHS = frozenset({"SIP", "PJSIP", "IAX2", "DAHDI", "WebRTC"})


class CdrParser:
    """Turns CSV rows into Calls for one layout and time zone."""

    def __init__(self, layout: CdrLayout, timezone: str = "UTC", source: str = "-") -> None:
        self.layout = layout
        self.source = source
        self.tz = ZoneInfo(timezone)
        self.errors: Counter[str] = Counter()
        self.first_error: dict[str, int] = {}  # kind -> line first seen (fastscan fills it)
        self.rows = 0
        cols = {name: i for i, name in reversed(list(enumerate(layout.columns)))}
        self._i = cols
        self._need = max(cols["dst"], cols["start"]) + 1
        self._hours: dict[str, float] = {}
        # `YYYY-MM-DD HH:MM` -> its first second, taken from the hour cache (fastscan's)
        self._minutes: dict[str, float] = {}

    def epoch(self, text: str) -> float | None:
        """`2026-11-22 01:02:03` (local) to POSIX seconds; None when malformed.

        Cached by the hour: there are few distinct hours in a file and many rows per hour.
        """
        if len(text) != 19 or text[13] != ":" or text[16] != ":":
            return None
        hour = self._hours.get(text[:13])
        if hour is None:
            try:
                dt = datetime.strptime(text[:13], "%Y-%m-%d %H").replace(tzinfo=self.tz)
            except ValueError:
                return None
            hour = dt.timestamp()
            if len(self._hours) > 100_000:
                self._hours.clear()
                self._minutes.clear()  # derived from the hours: they start over together
            self._hours[text[:13]] = hour
        mm, ss = text[14:16], text[17:19]
        if not (mm.isdecimal() and ss.isdecimal()):  # isdigit() lets "²" through to int()
            return None
        return hour + int(mm) * 60 + int(ss)

    def run(self, rows: Iterable[list[str]], sink: RecordSink, first_line_no: int = 1) -> None:
        """Parse rows and hand each call to `sink` as plain arguments.

        This loop is the offline scan's hot path: no objects are built per row, the caller
        (the engine) builds a `Call` only when a rule may fire.
        """
        i = self._i
        i_dst, i_start = i["dst"], i["start"]
        i_chan, i_acc, i_src = i.get("channel", -1), i.get("accountcode", -1), i.get("src", -1)
        i_end, i_dur, i_bill = i.get("end", -1), i.get("duration", -1), i.get("billsec", -1)
        i_disp, i_uid, i_ip = i.get("disposition", -1), i.get("uniqueid", -1), i.get("ip", -1)
        need = self._need
        errors = self.errors
        hours = self._hours
        epoch = self.epoch
        source = self.source
        line_no = first_line_no - 1
        skip_header = self.layout.header and first_line_no == 1
        rows = iter(rows)
        while True:
            try:
                for row in rows:
                    line_no += 1
                    if skip_header:
                        skip_header = False
                        continue
                    n = len(row)
                    if n < need or n > MAX_FIELDS:
                        errors["field_count"] += 1
                        continue
                    text = row[i_start]
                    try:
                        if len(text) != 19:
                            raise ValueError(text)
                        start = hours[text[:13]] + int(text[14:16]) * 60 + int(text[17:19])
                    except (KeyError, ValueError):
                        parsed = epoch(text)  # strict, and fills the hour cache
                        if parsed is None:
                            errors["bad_time"] += 1
                            continue
                        start = parsed
                    try:
                        billsec = int(row[i_bill]) if 0 <= i_bill < n else 0
                        if 0 <= i_dur < n:
                            end: float | None = start + int(row[i_dur])
                        else:
                            end = epoch(row[i_end]) if 0 <= i_end < n else None
                    except ValueError:
                        errors["bad_number"] += 1
                        continue
                    channel = row[i_chan] if 0 <= i_chan < n else ""
                    slash, dash = channel.find("/"), channel.rfind("-")
                    if 0 < slash < dash - 1 and channel[:slash] in _TECHS:
                        account = channel[slash + 1 : dash][:80]
                    else:
                        account = account_of(
                            channel,
                            row[i_acc] if 0 <= i_acc < n else "",
                            row[i_src] if 0 <= i_src < n else "",
                        )
                    dst = row[i_dst]
                    if len(dst) > 64:
                        errors["long_field"] += 1
                        dst = dst[:64]
                    uid = row[i_uid] if 0 <= i_uid < n else ""
                    sink(
                        uid[:150] if uid else f"{source}:{line_no}",
                        account,
                        dst,
                        start,
                        end,
                        billsec,
                        row[i_disp] == "ANSWERED" if 0 <= i_disp < n else billsec > 0,
                        channel if len(channel) < 200 else channel[:200],
                        row[i_ip][:64] if 0 <= i_ip < n else "",
                        line_no,
                    )
                self.rows += line_no - first_line_no + 1
                return
            except csv.Error:
                # An oversized field: count it and go on with the next row.
                line_no += 1
                errors["csv_error"] += 1

    def read_file(self, path: str | Path, sink: RecordSink) -> None:
        """Every call in a CDR file (bad rows counted, never raised; OSError is the caller's)."""
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            self.run(csv.reader(f), sink)

    def read_lines(self, lines: Iterable[str], first_line_no: int, sink: RecordSink) -> None:
        """Rows from a follower's batch of whole lines."""
        self.run(csv.reader(lines), sink, first_line_no)

    def calls(self, lines: Iterable[str], first_line_no: int = 1) -> list[Call]:
        """The calls in some CSV lines, as objects (tests and small batches)."""
        out: list[Call] = []
        self.read_lines(lines, first_line_no, lambda *a: out.append(Call(*a)))
        return out
