"""The two halves of `fastscan.scan_rows`, for the parallel scan's two stages.

Stage 1 (`parse_range`): one process per byte range of a file parses its rows (the CSV and
the fields) and sorts the outbound calls by the part that owns their account, as plain
tuples written with `marshal` to files of the scan's own temporary directory (numbers and
strings only; nothing read back is ever code, and nothing comes from anyone but our parts).
Stage 2 (`check_calls`): one process per part runs its accounts' calls, range after range
(so in file order), through the engine's bookkeeping and rules.

The code is `scan_rows` cut in two, line for line; tests/fraud checks the parallel report
against the single scan on generated fraud and on damaged rows.
"""

from __future__ import annotations

import csv
import marshal
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sipguard.fraud.cdr import _TECHS, MAX_FIELDS, CdrParser
from sipguard.fraud.engine import MAX_CALL_SECONDS, MAX_EVIDENCE, MAX_RANGES, FraudEngine
from sipguard.fraud.fastscan import owner
from sipguard.fraud.model import Call, account_of

BLOCK = 8 << 20  # bytes parsed at a time
_UNSEEN = object()

# (line in range, account, dst, start, end, billsec, answered, channel, uid, ip)
CallTuple = tuple[int, str, str, float, "float | None", int, bool, str, str, str]


class Irregular(Exception):
    """A row spans lines or the file has CR line ends: ranges cannot be parsed apart."""


def parse_range(
    engine: FraudEngine,
    parser: CdrParser,
    path: str | Path,
    begin: int,
    end: int,
    outs: list[Any],
    first: bool,
) -> int:
    """Parse bytes [begin, end) of `path` (whole lines); calls go to `outs[owner]`.

    `first`: the range starts the file (where a layout's header row is).

    Returns the number of rows (one per line). Line numbers in `parser.first_error` and in
    the tuples count from 1 at `begin`. Raises Irregular when rows and lines differ.
    """
    parts = len(outs)
    done = 0
    carry = b""
    with open(path, "rb") as f:
        f.seek(begin)
        left = end - begin
        while left > 0 or carry:
            chunk = f.read(min(BLOCK, left)) if left > 0 else b""
            left -= len(chunk)
            data = carry + chunk
            if left > 0 and chunk:
                cut = data.rfind(b"\n") + 1
                if cut == 0:
                    carry = data
                    continue
                data, carry = data[:cut], data[cut:]
            else:
                carry = b""
            if not data:
                break
            text = data.decode("utf-8", "replace")
            if "\r" in text:
                raise Irregular(str(path))
            # Without CR, lines end at "\n" alone: split() is what a file read gives, faster
            lines = text.split("\n")
            if not lines[-1]:
                lines.pop()
            shelves: list[list[CallTuple]] = [[] for _ in range(parts)]
            header = first and done == 0 and parser.layout.header
            rows = _parse(engine, parser, csv.reader(lines), done, shelves, header)
            if rows - done != len(lines):
                raise Irregular(str(path))
            done = rows
            for out, shelf in zip(outs, shelves, strict=True):
                if shelf:
                    blob = marshal.dumps(shelf)
                    out.write(len(blob).to_bytes(8, "little"))
                    out.write(blob)
            if not chunk:
                break
    return done


def _parse(
    engine: FraudEngine,
    parser: CdrParser,
    rows: Iterable[list[str]],
    line_no: int,
    shelves: list[list[CallTuple]],
    skip_header: bool,
) -> int:
    """`scan_rows` up to the account: errors counted, calls shelved by owner. Returns the
    line number reached."""
    i = parser._i
    i_dst, i_start = i["dst"], i["start"]
    i_chan, i_acc, i_src = i.get("channel", -1), i.get("accountcode", -1), i.get("src", -1)
    i_dur, i_bill, i_end = i.get("duration", -1), i.get("billsec", -1), i.get("end", -1)
    i_disp, i_uid, i_ip = i.get("disposition", -1), i.get("uniqueid", -1), i.get("ip", -1)
    need, errors, hours, epoch = parser._need, parser.errors, parser._hours, parser.epoch
    minutes, first_error = parser._minutes, parser.first_error
    infos, info_of, ignore = engine._info, engine.info, engine._ignore
    names: dict[str, tuple[str, int]] = {}  # channel up to its last "-" -> (account, owner)
    parts = len(shelves)
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
                    try:
                        if len(text) != 19:
                            raise ValueError(text) from None
                        minute = hours[text[:13]] + int(text[14:16]) * 60
                        if len(minutes) > 200_000:
                            minutes.clear()
                        minutes[text[:16]] = minute
                        start = minute + int(text[17:19])
                    except (KeyError, ValueError):
                        parsed = epoch(text)
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
                info = infos.get(dst) or info_of(dst)
                if not info.external:
                    continue
                channel = row[i_chan] if 0 <= i_chan < n else ""
                dash = channel.rfind("-")
                known = names.get(channel[:dash]) if dash > 0 else None
                if known is None:
                    slash = channel.find("/")
                    if 0 < slash < dash - 1 and channel[:slash] in _TECHS:
                        account = channel[slash + 1 : dash][:80]
                        known = (account, owner(account, parts))
                        if len(names) > 65_536:
                            names.clear()
                        names[channel[:dash]] = known
                    else:
                        account = account_of(
                            channel,
                            row[i_acc] if 0 <= i_acc < n else "",
                            row[i_src] if 0 <= i_src < n else "",
                        )
                        known = (account, owner(account, parts))
                account, part = known
                if not account or account in ignore:
                    continue
                shelves[part].append(
                    (
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
                    )
                )
            return line_no
        except csv.Error:
            line_no += 1
            errors["csv_error"] += 1
            first_error.setdefault("csv_error", line_no)


def check_calls(engine: FraudEngine, shelf: list[CallTuple], offset: int, source: str) -> None:
    """`scan_rows` from the account on: the calls of one range, lines shifted by `offset`."""
    infos, info_of, accounts, new_state = engine._info, engine.info, engine.accounts, engine.state
    slots, local = engine._slots, engine.local
    ip_cc, ip_country = engine._ip_cc, engine.ip_country
    vel_on, vel_max, vel_window = engine._vel_on, engine._vel_max, engine._vel_window
    conc_on, spend_on = engine._conc_on, engine._spend_on
    short_on, short_max = engine._short_on, engine._short_max
    short_min, short_window = engine._short_min, engine._short_window
    full, on_hit = engine.cdr_call, engine.on_hit
    bh_days, bh_start, bh_end = engine._bh_days, engine._bh_start, engine._bh_end
    learning = engine.learn_until is None
    quiet = 0
    for line, account, dst, start, end, billsec, disp, chan, uid, ip in shelf:
        info = infos.get(dst) or info_of(dst)
        uid = uid or f"{source}:{line + offset}"
        st = accounts.get(account) or new_state(account)
        key = int(start // 900)
        slot = slots.get(key)
        if slot is None:
            local(start)
            slot = slots[key]
        cc = ip_cc.get(ip, _UNSEEN) if ip else None
        if cc is _UNSEEN:
            cc = ip_country(ip)
        short = billsec <= short_max
        rate = info.rate
        after_hours = False
        if info.after_hours:
            minute = slot[1] + int(start - key * 900) // 60
            after_hours = slot[0] not in bh_days or not bh_start <= minute < bh_end
        if (
            info.risky
            or after_hours
            or (info.country and info.country not in st.countries)
            or len(st.starts) >= vel_max
            or st.max_end > start
            or learning
            or cc
            or (short and len(st.ranges.get(info.range_key, ())) >= short_min - 1)
            or (
                rate
                and billsec > 0
                and (st.spent if slot[2] == st.day else 0.0) + rate * billsec / 60.0 > st.limit
            )
        ):
            call = Call(uid, account, dst, start, end, billsec, disp, chan, ip, line + offset)
            hits = full(call)
            learning = engine.learn_until is None
            if on_hit is not None:
                for hit in hits:
                    on_hit(hit)
            continue
        end_t = end if end is not None else start
        quiet += 1
        if start > st.last:
            st.last = start
        if vel_on:
            starts = st.starts
            starts.append((start, uid))
            horizon = start - vel_window
            while starts[0][0] < horizon:
                del starts[0]
        if conc_on:
            ivs = st.intervals
            ivs.append((start, end_t, uid))
            if len(ivs) > st.ivs_cap:
                ivs[:] = [v for v in ivs if v[1] >= end_t - MAX_CALL_SECONDS][-256:]
                st.ivs_cap = max(8, 2 * len(ivs))
            if end_t > st.max_end:
                st.max_end = end_t
        if billsec > 0 and rate > 0.0 and spend_on:
            if slot[2] != st.day:
                st.day, st.spent, st.spend_calls = slot[2], 0.0, []
            st.spent += rate * billsec / 60.0
            st.spend_calls.append(uid)
            if len(st.spend_calls) > MAX_EVIDENCE:
                del st.spend_calls[0]
        if short and short_on:
            q = st.ranges.get(info.range_key)
            if q is None:
                if len(st.ranges) >= MAX_RANGES:
                    del st.ranges[next(iter(st.ranges))]
                q = st.ranges[info.range_key] = []
            q.append((end_t, uid))
            edge = end_t - short_window
            while q[0][0] < edge:
                del q[0]
    engine.calls_seen += quiet


def load_shelves(f: Any) -> Iterable[list[CallTuple]]:
    """The lists one range wrote for one part, in order (each read whole: marshal.load on
    a file reads object by object, several times slower)."""
    while True:
        head = f.read(8)
        if not head:
            return
        size = int.from_bytes(head, "little")
        blob = f.read(size)
        if len(head) != 8 or len(blob) != size:
            raise ValueError("truncated list of calls")
        shelf = marshal.loads(blob)
        if not isinstance(shelf, list):
            raise ValueError("not a list of calls")
        yield shelf
