"""A seeded generator of realistic CDR files: office weeks plus injected fraud of every kind.

The office is in Germany (Europe/Berlin, national prefix 0, international 00). Each account
makes a handful of calls a business day between 08:30 and 17:30, one at a time: local and
national numbers from a pool of regular contacts, mobiles, toll-free, and a few international
calls to the one or two countries it usually calls (each called in the first, learning, week).
Inbound and internal calls are mixed in (the rules must ignore them). Rows are cdr_csv's
Master.csv with loguniqueid and loguserfield on; the userfield carries the caller's address
(configured as the `ip` column), so the address rules can be tested from CDRs too.

Tests and `bench/fraud` share this module; `generate()` returns what was injected.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import PhoneNumberType as T

from sipguard.fraud.config import MASTER_CSV_COLUMNS

TZ = ZoneInfo("Europe/Berlin")
FIRST_DAY = datetime(2026, 11, 2, tzinfo=TZ)  # a Monday
USUAL = ("AT", "CH", "FR", "GB", "NL", "US", "IT", "ES", "PL")
RATES = """prefix,cost_per_minute,label
49,0.01,DE fixed
4915,0.05,DE mobile
4916,0.05,DE mobile
4917,0.05,DE mobile
49800,0.00,DE toll-free
49900,1.99,DE premium
43,0.03,AT
41,0.04,CH
33,0.02,FR
44,0.02,GB fixed
447,0.30,GB mobile
31,0.02,NL
1,0.01,US/CA
39,0.02,IT
34,0.02,ES
48,0.03,PL
81,0.05,JP
53,1.20,CU
881,4.00,satellite
882,3.50,international networks
"""
HOTLIST = "prefix,label\n+88213,known IRSF range\n+3716,LV premium-like\n"
LAYOUT = [*MASTER_CSV_COLUMNS[:17], "ip"]  # userfield holds the caller's address


@dataclass(slots=True)
class Injected:
    rule: str
    account: str
    uids: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Generated:
    cdr: Path
    config: Path
    rates: Path
    hotlist: Path
    rows: int
    injected: list[Injected]


def config_text(accounts: int) -> str:
    return f"""[fraud]
home_country = "DE"
national_prefix = "0"
international_prefixes = ["00"]
timezone = "Europe/Berlin"
ignore_accounts = ["trunk"]

[fraud.cdr]
columns = {LAYOUT!r}
timezone = "UTC"   # cdr.conf [csv] usegmtime=yes

[fraud.rules.address_country]
allowed = ["DE"]

[fraud.accounts."{1000 + min(accounts, 11)}"]
countries = ["DE", "BR"]   # a salesman who travels to Brazil
""".replace("'", '"')


class _Office:
    def __init__(self, rng: random.Random, accounts: int) -> None:
        self.rng = rng
        self.seq = 0
        self.rows: list[tuple[float, str]] = []
        self.accounts = [str(1001 + i) for i in range(accounts)]
        self.usual = {a: rng.sample(USUAL, rng.choice((1, 1, 2))) for a in self.accounts}
        self.contacts = [self.number("DE", T.FIXED_LINE) for _ in range(300)]
        self.mobiles = [self.number("DE", T.MOBILE) for _ in range(200)]
        self.abroad = {c: [self.number(c, T.FIXED_LINE) for _ in range(20)] for c in USUAL}
        self.ips = {c: self.ip_in(c) for c in ("DE", "BR", "CN")}

    def number(self, region: str, kind: int, keep: int = 4) -> str:
        """A valid E.164 number of this type: the library's example with its tail varied."""
        sample = phonenumbers.example_number_for_type(region, kind)
        if sample is None:
            raise ValueError(f"phonenumbers has no example of type {kind} for {region}")
        example = phonenumbers.format_number(sample, phonenumbers.PhoneNumberFormat.E164)
        for _ in range(50):
            tail = "".join(self.rng.choice("0123456789") for _ in range(keep))
            cand = example[:-keep] + tail
            num = phonenumbers.parse(cand)
            if phonenumbers.number_type(num) in (kind, T.FIXED_LINE_OR_MOBILE):
                return cand
        return example

    def ip_in(self, country: str) -> str:
        import iptocc

        for a in range(11, 224):
            for b in range(0, 256, 7):
                ip = f"{a}.{b}.{self.rng.randrange(1, 255)}.{self.rng.randrange(1, 255)}"
                if iptocc.country_code(ip) == country:
                    return ip
        raise RuntimeError(f"no address for {country}")

    @staticmethod
    def dialled(e164: str) -> str:
        return "0" + e164[3:] if e164.startswith("+49") else "00" + e164[1:]

    def call(
        self,
        account: str,
        dst: str,
        start: datetime,
        billsec: int,
        ring: int = 5,
        ip: str = "",
        answered: bool | None = None,
    ) -> str:
        """One Master.csv row; returns its uniqueid."""
        self.seq += 1
        uid = f"{int(start.timestamp())}.{self.seq}"
        answered = billsec > 0 if answered is None else answered
        end = start + timedelta(seconds=ring + billsec)
        answer = start + timedelta(seconds=ring) if answered else None
        chan = f"PJSIP/{account}-{self.seq:08x}"
        disp = "ANSWERED" if answered else self.rng.choice(("NO ANSWER", "NO ANSWER", "BUSY"))

        def q(s: str) -> str:
            return '"' + s.replace('"', '""') + '"'

        def d(t: datetime | None) -> str:
            return q(t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")) if t else ""

        cells = [
            q(""),
            q(account),
            q(dst),
            q("from-internal"),
            q(f'"Ext {account}" <{account}>'),
            q(chan),
            q(f"PJSIP/trunk-{self.seq + 7:08x}"),
            q("Dial"),
            q(f"PJSIP/{dst}@trunk,60"),
            d(start),
            d(answer),
            d(end),
            str(ring + billsec),
            str(billsec),
            q(disp),
            q("DOCUMENTATION"),
            q(uid),
            q(ip or f"10.1.0.{int(account) % 250 + 1}"),
        ]
        self.rows.append((end.timestamp(), ",".join(cells)))
        return uid

    def day(self, day: datetime, week: int) -> None:
        rng = self.rng
        for account in self.accounts:
            t = day.replace(hour=8, minute=30) + timedelta(seconds=rng.randrange(0, 3600))
            todo = list(self.usual[account]) if week == 0 and day.weekday() == 1 else []
            for _ in range(rng.randint(2, 10) + len(todo)):
                kind = rng.random()
                if todo:
                    dst = rng.choice(self.abroad[todo.pop()])
                elif kind < 0.05:
                    dst = rng.choice(self.abroad[rng.choice(self.usual[account])])
                elif kind < 0.55:
                    dst = rng.choice(self.contacts)
                elif kind < 0.85:
                    dst = rng.choice(self.mobiles)
                elif kind < 0.9:
                    dst = "+49800" + str(rng.randrange(1000000, 9999999))
                else:
                    dst = rng.choice(self.accounts)  # internal
                    if dst == account:
                        continue
                answered = rng.random() < 0.8
                billsec = min(3600, int(rng.lognormvariate(4.5, 1.0))) if answered else 0
                ring = rng.randint(3, 20) if answered else rng.randint(15, 30)
                if t >= day.replace(hour=17, minute=30):
                    break
                self.call(
                    account,
                    dst if len(dst) < 6 else self.dialled(dst),
                    t,
                    billsec,
                    ring,
                    answered=answered,
                )
                t += timedelta(seconds=ring + billsec + rng.randrange(300, 3600))
            # an inbound call from the trunk to this extension
            when = day.replace(hour=9) + timedelta(seconds=rng.randrange(0, 8 * 3600))
            self.inbound(account, when, rng.randint(10, 600))

    def inbound(self, account: str, start: datetime, billsec: int) -> None:
        self.seq += 1
        self.call("trunk", account, start, billsec, ip=self.ips["DE"])  # an ignored account

    def week_days(self, weeks: int) -> list[tuple[int, datetime]]:
        return [(w, FIRST_DAY + timedelta(days=7 * w + d)) for w in range(weeks) for d in range(5)]


def _inject(o: _Office, weeks: int) -> list[Injected]:
    rng = o.rng
    wed = FIRST_DAY + timedelta(days=7 * (weeks - 1) + 2)
    sat = FIRST_DAY + timedelta(days=7 * (weeks - 1) + 5)
    out: list[Injected] = []
    acc = o.accounts

    def at(day: datetime, h: int, m: int = 0) -> datetime:
        return day.replace(hour=h, minute=m)

    inj = Injected("velocity", acc[2])  # 40 calls in 10 minutes
    for i in range(40):
        dst = o.dialled(o.number("DE", T.MOBILE, keep=7))
        inj.uids.append(
            o.call(inj.account, dst, at(wed, 10, 30) + timedelta(seconds=15 * i), 12, ring=2)
        )
    out.append(inj)
    inj = Injected("concurrent", acc[3])  # 4 calls at once
    for i in range(4):
        start = at(wed, 10) + timedelta(seconds=40 * i)
        inj.uids.append(o.call(inj.account, o.dialled(rng.choice(o.contacts)), start, 600))
    out.append(inj)
    inj = Injected("after_hours", acc[4])  # Saturday 03:00 to a country it usually calls
    dst = rng.choice(o.abroad[o.usual[acc[4]][0]])
    inj.uids.append(o.call(inj.account, o.dialled(dst), at(sat, 3), 1200))
    out.append(inj)
    inj = Injected("new_country", acc[5])  # Japan, never called before
    inj.uids.append(o.call(inj.account, o.dialled(o.number("JP", T.FIXED_LINE)), at(wed, 11), 300))
    out.append(inj)
    inj = Injected("spend", acc[6])  # 4 x 50 minutes to GB mobiles at 0.30/min
    o.usual[acc[6]] = ["GB"]
    o.call(acc[6], o.dialled(o.abroad["GB"][0]), FIRST_DAY + timedelta(days=1, hours=9), 60)
    for i in range(4):
        dst = o.dialled(o.number("GB", T.MOBILE))
        inj.uids.append(o.call(inj.account, dst, at(wed, 12) + timedelta(minutes=52 * i), 3000))
    out.append(inj)
    inj = Injected("short_burst", acc[7])  # 12 short calls through one number range
    base = o.contacts[0][:-2]
    for i in range(12):
        start = at(wed, 14) + timedelta(seconds=25 * i)
        inj.uids.append(o.call(inj.account, o.dialled(f"{base}{i:02d}"), start, i % 3, ring=4))
    out.append(inj)
    inj = Injected("risky_destination", acc[8])  # premium, satellite, hotlist, Cuba
    for n, dst in enumerate(
        (o.number("DE", T.PREMIUM_RATE), "+881612345678", "+882130001234", o.number("CU", 0))
    ):
        inj.uids.append(o.call(inj.account, o.dialled(dst), at(wed, 15, 10 * n), 60))
    out.append(inj)
    inj = Injected("address_country", acc[9])  # a call from a Chinese address
    dst = o.dialled(rng.choice(o.contacts))
    inj.uids.append(o.call(inj.account, dst, at(wed, 16), 90, ip=o.ips["CN"]))
    out.append(inj)
    inj = Injected("distant_registrations", acc[10])  # DE, then Brazil 20 minutes later
    for n, country in enumerate(("DE", "BR")):
        dst = o.dialled(rng.choice(o.contacts))
        start = at(wed, 16) + timedelta(minutes=20 * n)
        inj.uids.append(o.call(inj.account, dst, start, 60, ip=o.ips[country]))
    out.append(inj)
    return out


def generate(
    out_dir: str | Path, seed: int = 1, accounts: int = 20, weeks: int = 2, fraud: bool = True
) -> Generated:
    """Write Master.csv, fraud.toml, rates.csv and hotlist.csv into `out_dir`."""
    if fraud and accounts < 11:
        raise ValueError("fraud injection needs at least 11 accounts")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    office = _Office(random.Random(seed), accounts)
    injected = _inject(office, weeks) if fraud else []
    for week, day in office.week_days(weeks):
        office.day(day, week)
    office.rows.sort(key=lambda r: r[0])
    paths = [out / "Master.csv", out / "fraud.toml", out / "rates.csv", out / "hotlist.csv"]
    paths[0].write_text("".join(r + "\n" for _, r in office.rows), encoding="utf-8")
    paths[1].write_text(config_text(accounts), encoding="utf-8")
    paths[2].write_text(RATES, encoding="utf-8")
    paths[3].write_text(HOTLIST, encoding="utf-8")
    return Generated(paths[0], paths[1], paths[2], paths[3], len(office.rows), injected)


def main(argv: list[str] | None = None) -> int:
    """`python bench/fraudgen.py OUT_DIR [--seed N] [--accounts N] [--weeks N] [--no-fraud]`"""
    import argparse

    ap = argparse.ArgumentParser(prog="python bench/fraudgen.py", description=main.__doc__)
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--accounts", type=int, default=20)
    ap.add_argument("--weeks", type=int, default=2)
    ap.add_argument("--no-fraud", action="store_true")
    args = ap.parse_args(argv)
    if not 1 <= args.accounts <= 100_000 or not 1 <= args.weeks <= 52:
        ap.error("--accounts must be 1..100000 and --weeks 1..52")
    g = generate(args.out_dir, args.seed, args.accounts, args.weeks, not args.no_fraud)
    print(f"{g.rows} rows in {g.cdr}; config {g.config}, rates {g.rates}, hotlist {g.hotlist}")
    for inj in g.injected:
        print(f"injected {inj.rule} on account {inj.account}: {len(inj.uids)} calls")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
