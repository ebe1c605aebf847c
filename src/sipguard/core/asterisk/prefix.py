"""Line prefixes: syslog/journald headers, Asterisk's `[date] LEVEL[lwp][C-tag] file: `, and time.

Asterisk writes the same message under several prefixes depending on the channel and formatter
(see shared/asterisk-formats.md §1). `split_prefix` peels them off and returns the message with the
level, the call tag and the source file, so the message grammars never see the prefix.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, tzinfo

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

# Nov 22 01:02:03 host asterisk[123]:  |  2026-11-22T01:02:03.123456+00:00 host asterisk[123]:
_SYSLOG = re.compile(
    r"(?:<\d{1,3}>)?(?:(?P<bsd>[A-Z][a-z]{2} {1,2}\d{1,2} \d\d:\d\d:\d\d)"
    r"|(?P<iso>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:?\d\d)?))"
    r" [^\s\[]{1,255} [^\s\[:]{1,64}(?:\[\d{1,10}\])?: "
)
_DATE = re.compile(
    r"\[(?P<date>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{1,6})?"
    r"|[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d)\] ?"
)
_LEVEL = re.compile(
    r"(?P<level>[A-Z][A-Z0-9_]{1,15})\[\d{1,10}\]"
    r"(?:\[(?P<tag>C-[0-9A-Fa-f]{1,16})\])?(?P<colon>:)? "
)
# the two above in one pattern; it matches exactly when _DATE then _LEVEL would (neither can give
# back characters the other could use), so it is only a shortcut
_DATE_LEVEL = re.compile(_DATE.pattern + _LEVEL.pattern)
# plain formatter / syslog: `file.c:LINE function: ` or `file.c:LINE in function: `
_PLAIN_LOC = re.compile(r"(?P<file>[^\s:]{1,128}):\d{1,7} (?:in )?[^\s:]{0,128}: ")
_DEFAULT_LOC = re.compile(r"(?P<file>[^\s:]{1,128}): ")

_MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
_CACHE_MAX = 4096


@dataclass(slots=True)
class Prefix:
    time: float | None
    level: str
    tag: str | None  # Asterisk's [C-xxxxxxxx] call tag; None outside a channel
    file: str  # "chan_sip.c", "res_pjsip/pjsip_distributor.c", "pjproject", ... or ""
    message: str


class TimeParser:
    """Turns the date strings of the prefixes into POSIX seconds, with a per-second cache.

    Dates without a year (`[Nov 22 01:02:03]`, BSD syslog) take `default_year`, which moves on
    when the log passes from December to January. Local times are UTC unless `tz` is given.
    """

    def __init__(self, default_year: int, tz: tzinfo | None) -> None:
        self.year = default_year
        self.tz = tz
        self._last_month = 0
        self._cache: dict[tuple[int, str], float] = {}

    def _epoch(self, y: int, mo: int, d: int, h: int, mi: int, s: int) -> float:
        if self.tz is None:
            return float(calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)))
        return datetime(y, mo, d, h, mi, s, tzinfo=self.tz).timestamp()

    def _cached(self, year: int, key: str, fields: tuple[int, int, int, int, int, int]) -> float:
        k = (year, key)
        value = self._cache.get(k)
        if value is None:
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            value = self._cache[k] = self._epoch(*fields)
        return value

    def asterisk(self, text: str) -> float | None:
        """`2026-11-22 01:02:03[.456]` or `Nov 22 01:02:03`."""
        try:
            if text[0].isdigit():
                key = text[:19]
                base = self._cache.get((0, key))
                if base is None:
                    fields = (
                        int(key[0:4]),
                        int(key[5:7]),
                        int(key[8:10]),
                        int(key[11:13]),
                        int(key[14:16]),
                        int(key[17:19]),
                    )
                    if self.tz is None:
                        # UTC is midnight plus seconds (timegm is linear in them): one timegm per
                        # day instead of per second, which a day-long log never repeats
                        midnight = self._cached(1, key[:10], (*fields[:3], 0, 0, 0))
                        base = midnight + (fields[3] * 3600 + fields[4] * 60 + fields[5])
                        if len(self._cache) >= _CACHE_MAX:
                            self._cache.clear()
                        self._cache[(0, key)] = base
                    else:
                        base = self._cached(0, key, fields)
                return base + float("0" + text[19:]) if len(text) > 20 else base
            return self.bsd(text)
        except (ValueError, OverflowError):
            return None

    def bsd(self, text: str) -> float | None:
        """`Nov 22 01:02:03` / `Mar  1 00:00:00` / `Nov 4 18:30:40` (no year)."""
        month = _MONTHS.get(text[:3])
        parts = text[3:].split()
        if month is None or len(parts) != 2:
            return None
        if month == 1 and self._last_month == 12:
            self.year += 1  # New Year inside the log
        self._last_month = month
        try:
            day = int(parts[0])
            h, mi, s = (int(x) for x in parts[1].split(":"))
            return self._cached(self.year, text, (self.year, month, day, h, mi, s))
        except (ValueError, OverflowError):
            return None

    def iso(self, text: str) -> float | None:
        """RFC 3339 / ISO 8601 (`2026-11-22T01:02:03.123+0000`, `...Z`, naive = local)."""
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            return None
        if dt.tzinfo is None:
            if self.tz is None:
                return float(calendar.timegm(dt.timetuple())) + dt.microsecond / 1e6
            dt = dt.replace(tzinfo=self.tz)
        try:
            return dt.timestamp()
        except (OverflowError, ValueError):
            return None


def event_tv(text: str, clock: TimeParser) -> float | None:
    """A SecurityEvent `EventTV`: ISO 8601 (12+) or `secs-usecs` (11 and older)."""
    secs, dash, usecs = text.partition("-")
    if dash and secs.isdigit() and usecs.isdigit() and len(secs) <= 12 and len(usecs) <= 6:
        return int(secs) + int(usecs) / 1e6
    return clock.iso(text.strip())


def split_prefix(text: str, clock: TimeParser) -> Prefix | None:
    """Peel the prefixes off one line (ANSI codes already removed). None: not an Asterisk line.

    Dialplan `Log()` lines (`Ext. 100:1 @ default:` where the file would be) carry text the
    dialplan author, and often the caller, chose: they are never parsed as Asterisk's own lines.
    """
    pos = 0
    time: float | None = None
    # Asterisk's own `[date] LEVEL[lwp]` (no syslog header can start with '['): one match
    lv = _DATE_LEVEL.match(text) if text.startswith("[") else None
    if lv is not None:
        time = clock.asterisk(lv.group("date")) or None
    else:
        m = _SYSLOG.match(text)
        if m is not None:
            pos = m.end()
            bsd = m.group("bsd")
            time = clock.bsd(bsd) if bsd is not None else clock.iso(m.group("iso"))
        d = _DATE.match(text, pos)
        if d is not None:
            pos = d.end()
            time = clock.asterisk(d.group("date")) or time
        lv = _LEVEL.match(text, pos)
        if lv is None:
            return None
    pos = lv.end()
    if text.startswith("Ext. ", pos):
        return None
    loc = None
    if lv.group("colon"):
        loc = _PLAIN_LOC.match(text, pos)
    if loc is None:
        loc = _DEFAULT_LOC.match(text, pos)
    file = ""
    if loc is not None:
        file = loc.group("file")
        pos = loc.end()
    return Prefix(time, lv.group("level"), lv.group("tag"), file, text[pos:].strip())
