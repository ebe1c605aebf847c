"""LogNormalizer: Asterisk log bytes in, Events out. Pure: no files, no clock (time is passed in).

Most lines of a real log are noise, so `feed_chunk` finds candidate lines with one compiled regex
over the whole chunk (the distinctive phrase of every line we parse) and decodes and parses only
those. Hostile input (binary, huge lines, latin-1) is counted in `stats`, never raised.
"""

from __future__ import annotations

import re
from datetime import tzinfo

from sipguard.core.asterisk.candidate import LOG, SECURITY, Candidate
from sipguard.core.asterisk.lines import parse_message
from sipguard.core.asterisk.linker import Linker, NormalizerStats
from sipguard.core.asterisk.prefix import ANSI, TimeParser, split_prefix
from sipguard.core.asterisk.security import EVENT_KINDS
from sipguard.core.events import Event, Kind, Origin

MAX_LINE = 8192
ORIGIN_TEXT = 512

#: a phrase found in every line a grammar in lines.py handles ("failed" covers "failed for '",
#: "failed MD5 authentication" and "failed to authenticate as")
PHRASES = (
    "failed",
    "SecurityEvent=",
    "to authenticate ",
    "fake auth rejection",
    "username mismatch",
    "missing 'sip:'",
    "non-critical invite",
    "no configured AORs",
    "logged on from",
    "bytes packet from",
    "Registered SIP '",
    "Added contact '",
    "rejected because extension",
)
#: lines that start "No " (found with one regex: see _FIND_NO)
NO_PHRASES = ("No closing bracket", "No field 'From'", "No registration for peer")
_NO = "No (?:" + "|".join(re.escape(p.removeprefix("No ")) for p in NO_PHRASES) + ")"
_FINDS = tuple(p.encode() for p in PHRASES)
# sre scans an alternation of different first letters slowly (each byte tries each branch), but a
# literal (prefix) at memchr speed: so one pass per phrase beats one regex over the chunk.
_FIND_NO = re.compile(_NO.encode())
_CANDIDATE_S = re.compile("|".join([*(re.escape(p) for p in PHRASES), _NO]))


class LogNormalizer:
    """Feed lines or chunks of Asterisk logs (any prefix form), get normalized Events back.

    Address-bearing events are returned at once; address-less lines wait up to `link_window`
    seconds (event time) for the line that carries their address, and ChallengeSent events wait
    `challenge_window` seconds for an answer before becoming CHALLENGE_UNANSWERED.
    """

    def __init__(
        self,
        default_year: int = 2026,
        tz: tzinfo | None = None,
        link_window: float = 2.0,
        challenge_window: float = 5.0,
    ) -> None:
        self.stats = NormalizerStats()
        self._clock = TimeParser(default_year, tz)
        self._linker = Linker(self.stats, link_window, challenge_window)
        self._last_time = 0.0

    # -- input ----------------------------------------------------------------------------------
    def feed_line(self, line: bytes | str, source: str, line_no: int) -> list[Event]:
        self.stats.lines += 1
        if isinstance(line, str):
            if "\x00" in line:
                self.stats.binary += 1
                return []
            if len(line) > MAX_LINE:
                self.stats.too_long += 1
                line = line[:MAX_LINE]
            if _CANDIDATE_S.search(line) is None:
                return []
            return self._parse(line.rstrip("\r\n"), source, line_no)
        if b"\x00" in line:
            self.stats.binary += 1
            return []
        if len(line) > MAX_LINE:
            self.stats.too_long += 1
            line = line[:MAX_LINE]
        text = decode_line(line.rstrip(b"\r\n"))
        if _CANDIDATE_S.search(text) is None:
            return []
        return self._parse(text, source, line_no)

    def feed_chunk(self, data: bytes, source: str, first_line_no: int) -> list[Event]:
        """`data` holds whole lines separated by b"\\n" (a last line without one is accepted)."""
        st = self.stats
        lines = data.count(b"\n")
        if data and not data.endswith(b"\n"):
            lines += 1
        st.lines += lines
        nul_lines = self._count_binary(data) if b"\x00" in data else ()
        self._count_long(data)
        out: list[Event] = []
        line_no = first_line_no
        counted_to = 0
        done_to = 0
        for s in _candidate_offsets(data):
            if s < done_to:
                continue  # another phrase in a line already parsed
            start = data.rfind(b"\n", 0, s) + 1
            end = data.find(b"\n", s)
            if end < 0:
                end = len(data)
            done_to = end
            line_no += data.count(b"\n", counted_to, start)
            counted_to = start
            if start in nul_lines:
                continue
            raw = data[start : min(end, start + MAX_LINE)]
            out.extend(self._parse(decode_line(raw.rstrip(b"\r")), source, line_no))
        return out

    def accept(self, event: Event) -> list[Event]:
        """An event from elsewhere (AMI security events) joins the same dedup and linking."""
        name = event.detail.split(" ", 1)[0]
        channel = SECURITY if name in EVENT_KINDS else LOG
        c = Candidate(event, channel, link_name=name if channel == SECURITY else None)
        return self._run(c, event.time)

    # -- time -----------------------------------------------------------------------------------
    def tick(self, now: float) -> list[Event]:
        return self._count(self._linker.release(now))

    def flush(self) -> list[Event]:
        return self._count(self._linker.release(None))

    # -- internals ------------------------------------------------------------------------------
    def _parse(self, text: str, source: str, line_no: int) -> list[Event]:
        st = self.stats
        st.candidates += 1
        clock, last = self._clock, self._last_time
        cand, bad, prefix_time = parse_candidate(text, source, line_no, clock, last)
        if cand is None:
            if bad:
                st.malformed += 1
            return []
        if prefix_time is not None:
            self._last_time = prefix_time
        return self._run(cand, cand.event.time)

    def _run(self, c: Candidate, now: float) -> list[Event]:
        out = self._linker.process(c)
        if self._linker.waiting:
            out.extend(self._linker.release(now))
        return self._count(out)

    def _count(self, out: list[Event]) -> list[Event]:
        self.stats.events += len(out)
        for ev in out:
            if ev.kind is Kind.LOG_TAMPERING:
                self.stats.tampering += 1
        return out

    def _count_binary(self, data: bytes) -> set[int]:
        """Lines holding NUL bytes: counted and skipped. Returns their start offsets."""
        starts: set[int] = set()
        i = data.find(b"\x00")
        while i >= 0:
            starts.add(data.rfind(b"\n", 0, i) + 1)
            end = data.find(b"\n", i)
            if end < 0:
                break
            i = data.find(b"\x00", end)
        self.stats.binary += len(starts)
        return starts

    def _count_long(self, data: bytes) -> None:
        """Count lines longer than MAX_LINE with one rfind per 8 KiB window."""
        s = 0
        n = len(data)
        while n - s > MAX_LINE:
            q = data.rfind(b"\n", s, s + MAX_LINE + 1)
            if q >= 0:
                s = q + 1
                continue
            self.stats.too_long += 1
            q = data.find(b"\n", s + MAX_LINE)
            if q < 0:
                break
            s = q + 1


def parse_candidate(
    text: str, source: str, line_no: int, clock: TimeParser, last_time: float
) -> tuple[Candidate | None, bool, float | None]:
    """One candidate line -> (candidate or None, malformed, the prefix's time or None).

    Shared by LogNormalizer and the C normalizer's fallback (fast.py), which keep the counts.
    """
    origin = Origin(source, line_no, text[:ORIGIN_TEXT])
    if "\x1b" in text:
        text = ANSI.sub("", text)
    try:
        prefix = split_prefix(text, clock)
        if prefix is None:
            return None, True, None
        time = prefix.time if prefix.time is not None else last_time
        cand, bad = parse_message(prefix, time, origin, clock)
    except (ValueError, IndexError, KeyError, OverflowError, TypeError):
        return None, True, None
    return cand, bad, prefix.time


def _candidate_offsets(data: bytes) -> list[int]:
    """Offsets of every phrase in the chunk, in order (several may fall in one line)."""
    found: list[int] = []
    for phrase in _FINDS:
        i = data.find(phrase)
        while i >= 0:
            found.append(i)
            i = data.find(phrase, i + 1)
    found.extend(m.start() for m in _FIND_NO.finditer(data))
    found.sort()
    return found


def decode_line(raw: bytes) -> str:
    """A line's text: UTF-8, else latin-1 (a log mixes both; nothing is refused)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1", errors="replace")
