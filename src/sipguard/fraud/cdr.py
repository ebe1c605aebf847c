"""CDR readers: cdr_csv's Master.csv and custom CSV layouts, to `Call`s.

cdr_csv quotes strings, leaves integers bare and writes dates as `%Y-%m-%d %H:%M:%S` in local
time (GMT with `usegmtime=yes`); an unanswered call has an empty answer date. Rows are written
when a call ends, so a file is in hangup order. Bad rows never stop a scan: each is counted by
reason in `CdrParser.errors`.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sipguard.fraud.config import CdrLayout
from sipguard.fraud.model import Call, account_of

MAX_FIELD = 4096  # no CDR field is longer; longer ones are cut (and the row counted)
MAX_FIELDS = 64
# One call as the row loop yields it, plain data (the parallel scan marshals these):
# (line, account, dst, start, end, billsec, answered, channel, uid, ip, inbound). An inbound
# call's account is its trunk: the trunk endpoint, else its inbound context.
CallTuple = tuple[int, str, str, float, "float | None", int, bool, str, str, str, bool]
_TECHS = frozenset({"SIP", "PJSIP", "IAX2", "DAHDI", "WebRTC"})


class CdrParser:
    """Turns CSV rows into Calls for one layout and time zone."""

    def __init__(
        self,
        layout: CdrLayout,
        timezone: str = "UTC",
        source: str = "-",
        outbound: Callable[[str], bool] | None = None,
        ignore: frozenset[str] = frozenset(),
        inbound_contexts: frozenset[str] = frozenset(),
        trunks: frozenset[str] = frozenset(),
    ) -> None:
        """`outbound(dst)`: whether the rules look at a call to that dialled string (cached);
        None keeps every row, each marked outbound. `ignore`: accounts whose outbound calls
        are never the rules' business. With `outbound` set, a row from one of `trunks` or
        whose `dcontext` is one of `inbound_contexts` is an inbound call (to the office's
        DID), whatever its destination: yielded marked inbound, its trunk as the account (the
        inbound-volume rule counts it; no account rule does)."""
        self.layout = layout
        self.source = source
        self.outbound = outbound
        self.ignore = ignore
        self.inbound_contexts = inbound_contexts
        self.trunks = trunks
        self._keep: dict[str, bool] = {}
        self._names: dict[str, str] = {}  # channel up to its last "-" -> account
        self.tz = ZoneInfo(timezone)
        self.errors: Counter[str] = Counter()
        self.first_error: dict[str, int] = {}  # kind -> line where first seen
        self.rows = 0
        self.parsed = 0  # rows that read as a call (0 of many: the input is not CDRs)
        # With `outbound` None (every row: the sample runner), the dcontext of the row just
        # yielded, for a consumer that decides the direction itself (the live tracker).
        self.context = ""
        cols = {name: i for i, name in reversed(list(enumerate(layout.columns)))}
        self._i = cols
        self._need = max(cols["dst"], cols["start"]) + 1
        self._hours: dict[str, float] = {}
        # `YYYY-MM-DD HH:MM` -> its first second, taken from the hour cache
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

    def records(
        self, rows: Iterable[list[str]], first_line_no: int = 1, header: bool | None = None
    ) -> Iterator[CallTuple]:
        """THE CDR row loop: every call in `rows`, as a plain tuple (see CallTuple).

        With `outbound` set, only the calls the fraud rules look at (a dialled string it
        accepts, an account not ignored); every row's errors are counted all the same. The
        uid is "" when the layout has none: the consumer names the call `source:line`. This
        loop is the offline scan's hot path (bench/fraud): caches for dates and channel
        names, no object but the tuple per call. `header`: whether the first row is the
        layout's header (default: when `first_line_no` is 1).
        """
        i = self._i
        i_dst, i_start = i["dst"], i["start"]
        i_chan, i_acc, i_src = i.get("channel", -1), i.get("accountcode", -1), i.get("src", -1)
        i_dur, i_bill, i_end = i.get("duration", -1), i.get("billsec", -1), i.get("end", -1)
        i_disp, i_uid, i_ip = i.get("disposition", -1), i.get("uniqueid", -1), i.get("ip", -1)
        i_ctx = i.get("dcontext", -1)
        inbound = self.inbound_contexts if i_ctx >= 0 else frozenset()
        need, errors, hours, epoch = self._need, self.errors, self._hours, self.epoch
        minutes, first_error = self._minutes, self.first_error
        names = self._names
        keep, wanted, ignore, trunks = self._keep, self.outbound, self.ignore, self.trunks

        def keeps(dst: str) -> bool:  # outbound(dst), into the cache the loop reads
            if len(keep) > 262_144:
                keep.clear()
            ok = keep[dst] = wanted(dst) if wanted is not None else True
            return ok

        good = 0  # rows read as a call
        line_no = first_line_no - 1
        skip_header = self.layout.header and (first_line_no == 1 if header is None else header)
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
                        first_error.setdefault("field_count", line_no)
                        continue
                    text = row[i_start]
                    try:
                        if len(text) != 19:
                            raise ValueError(text)
                        start = minutes[text[:16]] + int(text[17:19])
                    except (KeyError, ValueError):
                        try:  # a minute seen once is then one lookup
                            if len(text) != 19:
                                raise ValueError(text) from None
                            minute = hours[text[:13]] + int(text[14:16]) * 60
                            if len(minutes) > 200_000:
                                minutes.clear()
                            minutes[text[:16]] = minute
                            start = minute + int(text[17:19])
                        except (KeyError, ValueError):
                            parsed = epoch(text)  # strict, and fills the hour cache
                            if parsed is None:
                                errors["bad_time"] += 1
                                first_error.setdefault("bad_time", line_no)
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
                        first_error.setdefault("bad_number", line_no)
                        continue
                    dst = row[i_dst]
                    if len(dst) > 64:
                        errors["long_field"] += 1
                        first_error.setdefault("long_field", line_no)
                        dst = dst[:64]
                    good += 1
                    came_in, ok = False, True  # ok: the destination is one the rules look at
                    if wanted is not None:
                        # an inbound call counts whatever it dialled (often an extension)
                        came_in = 0 <= i_ctx < n and row[i_ctx] in inbound
                        if not came_in:
                            known = keep.get(dst)
                            ok = keeps(dst) if known is None else known
                            if not (ok or trunks):  # (a trunk's call to an extension counts)
                                continue
                    channel = row[i_chan] if 0 <= i_chan < n else ""
                    # The account is the channel's name part, which depends only on the text
                    # before the last "-": one lookup per row, one account string per account.
                    dash = channel.rfind("-")
                    account = names.get(channel[:dash]) if dash > 0 else None
                    if account is None:
                        slash = channel.find("/")
                        if 0 < slash < dash - 1 and channel[:slash] in _TECHS:
                            account = channel[slash + 1 : dash][:80]
                            if len(names) > 65_536:
                                names.clear()
                            names[channel[:dash]] = account
                        else:
                            account = account_of(
                                channel,
                                row[i_acc] if 0 <= i_acc < n else "",
                                row[i_src] if 0 <= i_src < n else "",
                            )
                    if wanted is not None:
                        if came_in or account in trunks:
                            if not account and came_in:
                                account = row[i_ctx]  # the trunk: its endpoint, else context
                            if not account:
                                continue
                            came_in = True
                        elif not ok or not account or account in ignore:
                            continue
                    else:
                        self.context = row[i_ctx] if 0 <= i_ctx < n else ""
                    yield (
                        line_no,
                        account,
                        dst,
                        start,
                        end,
                        billsec,
                        row[i_disp] == "ANSWERED" if 0 <= i_disp < n else billsec > 0,
                        channel if len(channel) < 200 else channel[:200],
                        row[i_uid][:150] if 0 <= i_uid < n else "",
                        row[i_ip][:64] if 0 <= i_ip < n else "",
                        came_in,
                    )
                self.rows += line_no - first_line_no + 1
                self.parsed += good
                return
            except csv.Error:
                # An oversized field: count it and go on with the next row.
                line_no += 1
                errors["csv_error"] += 1
                first_error.setdefault("csv_error", line_no)

    def call(self, rec: CallTuple, offset: int = 0) -> Call:
        """A record as a `Call` object (uid named `source:line` when the layout has none)."""
        line, account, dst, start, end, billsec, answered, channel, uid, ip, _ = rec
        line += offset
        uid = uid or f"{self.source}:{line}"
        return Call(uid, account, dst, start, end, billsec, answered, channel, ip, line)

    def read_file(self, path: str | Path) -> Generator[CallTuple, None, None]:
        """Every record in a CDR file (bad rows counted, never raised; OSError is the caller's)."""
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            yield from self.records(csv.reader(f))

    def calls(self, lines: Iterable[str], first_line_no: int = 1) -> list[Call]:
        """The calls in some CSV lines (a follower's batch, tests), as objects."""
        return [self.call(r) for r in self.records(csv.reader(lines), first_line_no)]
