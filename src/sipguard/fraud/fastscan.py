"""The offline scan's hot loop: CSV rows straight into the engine's state.

Most CDR rows change a few counters and fire nothing. For those, this loop does in place
exactly the bookkeeping `FraudEngine.cdr_call` would do (velocity window, call intervals,
daily spend, short-call ranges), with every lookup hoisted out of the loop. A row on which
any rule could fire (a risky destination, a call after hours, a new country, an overlap, a
full window, a spend near the limit, a short call near a burst, an address with a country)
becomes a `Call` and takes the full path. Parsing matches `CdrParser.run` row for row,
errors included; tests/fraud checks that both give the same report.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from sipguard.fraud.cdr import _TECHS, MAX_FIELDS, CdrParser
from sipguard.fraud.engine import MAX_CALL_SECONDS, MAX_EVIDENCE, MAX_RANGES, FraudEngine
from sipguard.fraud.model import Call, account_of

_UNSEEN = object()


def owner(account: str, parts: int) -> int:
    """The part that checks an account: every rule's state is per account.

    str hash is salted per interpreter, which forked parts share; the report does not depend
    on which part an account lands in.
    """
    return hash(account) % parts


def scan_file(
    engine: FraudEngine, parser: CdrParser, path: str | Path, part: int = 0, parts: int = 1
) -> None:
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        scan_rows(engine, parser, csv.reader(f), part=part, parts=parts)


def scan_rows(
    engine: FraudEngine,
    parser: CdrParser,
    rows: Iterable[list[str]],
    first_line_no: int = 1,
    part: int = 0,
    parts: int = 1,
) -> None:
    """Scan rows; with `parts` > 1, only the rows of accounts that `part` owns (see `owner`).

    Each part reads every row (so line numbers stay right) but parses and checks only its
    own accounts' rows. Errors found before the account is known (short rows, CSV errors)
    are counted by part 0 alone; every row's other errors by the part that owns it.
    `parser.first_error` keeps the line where each kind of error was first seen, so parts
    can be merged in the order one scan would have counted them.
    """
    i = parser._i
    i_dst, i_start = i["dst"], i["start"]
    i_chan, i_acc, i_src = i.get("channel", -1), i.get("accountcode", -1), i.get("src", -1)
    i_dur, i_bill, i_end = i.get("duration", -1), i.get("billsec", -1), i.get("end", -1)
    i_disp, i_uid, i_ip = i.get("disposition", -1), i.get("uniqueid", -1), i.get("ip", -1)
    need, errors, hours, epoch = parser._need, parser.errors, parser._hours, parser.epoch
    minutes = parser._minutes
    names: dict[str, str] = {}  # channel up to its last "-" -> account
    source = parser.source
    infos, info_of, accounts, new_state = engine._info, engine.info, engine.accounts, engine.state
    slots, local, ignore = engine._slots, engine.local, engine._ignore
    ip_cc, ip_country = engine._ip_cc, engine.ip_country
    vel_on, vel_max, vel_window = engine._vel_on, engine._vel_max, engine._vel_window
    conc_on, spend_on = engine._conc_on, engine._spend_on
    short_on, short_max = engine._short_on, engine._short_max
    short_min, short_window = engine._short_min, engine._short_window
    full, on_hit = engine.cdr_call, engine.on_hit
    bh_days, bh_start, bh_end = engine._bh_days, engine._bh_start, engine._bh_end
    learning = engine.learn_until is None  # until the first call sets the learning period
    first_error = parser.first_error
    split, counts_all = parts > 1, part == 0
    owned: dict[str, bool] = {}  # channel up to its last "-" -> this part owns the account
    quiet = 0  # calls handled in place (the full path counts its own)
    line_no = first_line_no - 1
    skip_header = parser.layout.header and first_line_no == 1
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
                    if counts_all:
                        errors["field_count"] += 1
                        first_error.setdefault("field_count", line_no)
                    continue
                if split:
                    channel = row[i_chan] if 0 <= i_chan < n else ""
                    dash = channel.rfind("-")
                    mine = owned.get(channel[:dash]) if dash > 0 else None
                    if mine is None:
                        slash = channel.find("/")
                        if 0 < slash < dash - 1 and channel[:slash] in _TECHS:
                            mine = owner(channel[slash + 1 : dash][:80], parts) == part
                            if len(owned) > 65_536:
                                owned.clear()
                            owned[channel[:dash]] = mine
                        else:
                            other = account_of(
                                channel,
                                row[i_acc] if 0 <= i_acc < n else "",
                                row[i_src] if 0 <= i_src < n else "",
                            )
                            mine = owner(other, parts) == part
                    if not mine:
                        continue
                text = row[i_start]
                try:
                    if len(text) != 19:
                        raise ValueError(text)
                    start = minutes[text[:16]] + int(text[17:19])
                except (KeyError, ValueError):
                    try:  # CdrParser.run's steps; a minute seen once is then one lookup
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
                # The account is the channel's name part, which depends only on the text
                # before the last "-": one lookup per row, and one account string per account.
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
                if not account or account in ignore:
                    continue
                uid = row[i_uid][:150] if 0 <= i_uid < n else ""
                uid = uid or f"{source}:{line_no}"
                ip = row[i_ip][:64] if 0 <= i_ip < n else ""
                st = accounts.get(account) or new_state(account)
                key = int(start // 900)
                slot = slots.get(key)
                if slot is None:
                    local(start)  # fills the cache
                    slot = slots[key]
                cc = ip_cc.get(ip, _UNSEEN) if ip else None
                if cc is _UNSEEN:
                    cc = ip_country(ip)
                short = billsec <= short_max
                rate = info.rate
                after_hours = False
                if info.after_hours:  # e.g. any international call: is it business hours?
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
                        and (st.spent if slot[2] == st.day else 0.0) + rate * billsec / 60.0
                        > st.limit
                    )
                ):
                    disp = row[i_disp] == "ANSWERED" if 0 <= i_disp < n else billsec > 0
                    chan = channel if len(channel) < 200 else channel[:200]
                    call = Call(uid, account, dst, start, end, billsec, disp, chan, ip, line_no)
                    hits = full(call)
                    learning = engine.learn_until is None
                    if on_hit is not None:
                        for hit in hits:
                            on_hit(hit)
                    continue
                # Nothing can fire: the bookkeeping of _at_start, concurrency and _at_end.
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
                    if len(ivs) > st.ivs_cap:  # amortized: prune when the list doubles
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
            parser.rows += line_no - first_line_no + 1
            engine.calls_seen += quiet
            return
        except csv.Error:
            line_no += 1
            if counts_all:
                errors["csv_error"] += 1
                first_error.setdefault("csv_error", line_no)
