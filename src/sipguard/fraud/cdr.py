"""CDR readers: cdr_csv's Master.csv and custom CSV layouts, to `Call`s.

cdr_csv quotes strings, leaves integers bare and writes dates as `%Y-%m-%d %H:%M:%S` in local
time (GMT with `usegmtime=yes`); an unanswered call has an empty answer date. Rows are written
when a call ends, so a file is in hangup order. Bad rows never stop a scan: each is counted by
reason in `CdrParser.errors`.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sipguard.fraud.config import CdrLayout
from sipguard.fraud.model import Call, account_of

MAX_FIELD = 4096  # no CDR field is longer; longer ones are cut (and the row counted)
MAX_FIELDS = 64


class CdrParser:
    """Turns CSV rows into Calls for one layout and time zone."""

    def __init__(self, layout: CdrLayout, timezone: str = "UTC", source: str = "-") -> None:
        self.layout = layout
        self.source = source
        self.tz = ZoneInfo(timezone)
        self.errors: Counter[str] = Counter()
        self.rows = 0
        cols = {name: i for i, name in reversed(list(enumerate(layout.columns)))}
        self._i = cols
        self._need = max(cols["dst"], cols["start"]) + 1
        self._hours: dict[str, float] = {}

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
            self._hours[text[:13]] = hour
        mm, ss = text[14:16], text[17:19]
        if not (mm.isdigit() and ss.isdigit()):
            return None
        return hour + int(mm) * 60 + int(ss)

    def calls(self, rows: Iterable[list[str]], first_line_no: int = 1) -> Iterator[Call]:
        i = self._i
        i_dst, i_start = i["dst"], i["start"]
        i_chan, i_acc, i_src = i.get("channel"), i.get("accountcode"), i.get("src")
        i_end, i_dur, i_bill = i.get("end"), i.get("duration"), i.get("billsec")
        i_disp, i_uid, i_ip = i.get("disposition"), i.get("uniqueid"), i.get("ip")
        need = self._need
        errors = self.errors
        epoch = self.epoch
        line_no = first_line_no - 1
        skip_header = self.layout.header and first_line_no == 1
        for row in rows:
            line_no += 1
            if skip_header:
                skip_header = False
                continue
            self.rows += 1
            n = len(row)
            if n < need or n > MAX_FIELDS:
                errors["field_count"] += 1
                continue
            start = epoch(row[i_start])
            if start is None:
                errors["bad_time"] += 1
                continue
            end = epoch(row[i_end]) if i_end is not None and i_end < n else None
            try:
                billsec = int(row[i_bill]) if i_bill is not None and i_bill < n else 0
                if end is None:
                    end = start + (int(row[i_dur]) if i_dur is not None and i_dur < n else 0)
            except ValueError:
                errors["bad_number"] += 1
                continue
            channel = row[i_chan] if i_chan is not None and i_chan < n else ""
            account = account_of(
                channel,
                row[i_acc] if i_acc is not None and i_acc < n else "",
                row[i_src] if i_src is not None and i_src < n else "",
            )
            dst = row[i_dst]
            if len(dst) > 64:
                errors["long_field"] += 1
                dst = dst[:64]
            uid = row[i_uid][:150] if i_uid is not None and i_uid < n else ""
            yield Call(
                uid or f"{self.source}:{line_no}",
                account,
                dst,
                start,
                end,
                float(billsec),
                (row[i_disp] == "ANSWERED") if i_disp is not None and i_disp < n else billsec > 0,
                channel[:200],
                row[i_ip][:64] if i_ip is not None and i_ip < n else "",
                line_no,
            )

    def read_file(self, path: str | Path) -> Iterator[Call]:
        """Every call in a CDR file (errors counted, never raised, except for an unreadable file)."""
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            yield from self.calls(self._safe(csv.reader(f)))

    def read_lines(self, lines: Iterable[str], first_line_no: int) -> Iterator[Call]:
        """Rows from a follower's batch of whole lines."""
        yield from self.calls(self._safe(csv.reader(lines)), first_line_no)

    def _safe(self, reader: Iterator[list[str]]) -> Iterator[list[str]]:
        """Rows; one the csv module refuses (an oversized field) becomes an empty row, which
        `calls` counts as malformed, so line numbers stay aligned and the scan goes on."""
        while True:
            try:
                yield from reader
                return
            except csv.Error:
                yield []
