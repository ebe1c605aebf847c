"""The parallel offline scan (`fraud.parallel`) against the one-process scan: same JSON report,
byte for byte (alerts, rows, calls, and the malformed counts in the same order), on the
generator's fraud week and on damaged rows spread over several files and byte ranges.
"""

from __future__ import annotations

import csv
import importlib
import io
import json
import random
import sys
from pathlib import Path
from typing import Any

import pytest

import sipguard.fraud.parallel as parallel_module
import sipguard.fraud.split as split_module
from sipguard.cli.main import main
from sipguard.fraud.config import build_config, load_config
from sipguard.fraud.parallel import ranges_of, scan_parallel
from sipguard.fraud.report import ScanResult
from sipguard.fraud.scan import build_engine, scan
from sipguard.fraud.tables import RateTable, load_hotlist, load_rates

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from fraudgen import Generated, generate

COLUMNS = ["accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp",
           "lastdata", "start", "answer", "end", "duration", "billsec", "disposition",
           "amaflags", "uniqueid", "userfield"]  # fmt: skip
DSTS = ["030123456", "00441234567890", "0090012345", "00881612345", "1001", "015112345678",
        "0033123456789", "00492211234"]  # fmt: skip
CHANNELS = ["PJSIP/1001-0000001a", "SIP/1001-00000003", "PJSIP/1002-000000ff", "IAX2/1003-7",
            "Local/1@x-1;1", "", "PJSIP/-1", "DAHDI/1004", "PJSIP/1005-1"]  # fmt: skip


def report(result: ScanResult) -> str:
    """The CLI's JSON report."""
    out = {
        "alerts": [i.to_dict() for i in result.incidents],
        "rows": result.rows,
        "calls": result.calls,
        "malformed": dict(result.errors),
    }
    return json.dumps(out, indent=1)


def small_engine(baseline: dict[str, list[str]] | None = None) -> Any:
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
                "new_country": {"learn_seconds": 600},
            },
        }
    )
    rates = RateTable()
    rates.add("49", 0.02)
    rates.add("44", 0.5)
    engine = build_engine(config, rates)
    if baseline is not None:
        engine.load_baseline(baseline)
    return engine


def damaged_row(rng: random.Random, t: int) -> str:
    """A Master.csv row, now and then damaged as real files are."""
    start = f"2026-11-{11 + t // 86400:02d} {t // 3600 % 24:02d}:{t // 60 % 60:02d}:{t % 60:02d}"
    cells = {k: "" for k in COLUMNS}
    bill = rng.choice([0, 2, 30, 600])
    cells.update(
        src="1001", dst=rng.choice(DSTS), dcontext="from-internal", clid='"Ext" <1001>',
        channel=rng.choice(CHANNELS), lastapp="Dial", lastdata="PJSIP/x@trunk,60", start=start,
        end=start, duration=str(bill + rng.randint(0, 20)), billsec=str(bill),
        disposition=rng.choice(["ANSWERED", "NO ANSWER"]), uniqueid=f"1763.{rng.random():.9f}",
        userfield=rng.choice(["", "", "10.0.0.7", "81.2.69.160", "2.16.0.1"]),
    )  # fmt: skip
    damage = rng.randrange(14)
    if damage == 0:
        cells["start"] = start[:14] + "²" + start[15:]
    elif damage == 1:
        cells["start"] = "yesterday"
    elif damage == 2:
        cells["duration"] = "12x"
    elif damage == 3:
        cells["dst"] = "0044" + "1" * 70
    elif damage in (4, 5):
        cells["uniqueid"] = ""  # named by file and line: line numbers must survive the split
    values = [cells[k] for k in COLUMNS]
    if damage == 6:
        values = values[:4]
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(values)
    text = out.getvalue()
    if damage == 7 and rng.random() < 0.2:
        text += "\n"  # an empty line
    if damage == 8 and rng.random() < 0.1:
        text = '"' + "x" * (csv.field_size_limit() + 5) + '"\n'  # csv.Error
    return text


def write_damaged(path: Path, seed: int, rows: int, tail: str = "") -> Path:
    rng = random.Random(seed)
    t = rng.randrange(86400)
    parts = []
    for _ in range(rows):
        t += rng.choice([1, 5, 40, 300])
        parts.append(damaged_row(rng, t))
    path.write_text("".join(parts) + tail, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def fraud_set(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    return generate(tmp_path_factory.mktemp("fraud"), seed=7)


def gen_engine(g: Generated) -> Any:
    return build_engine(load_config(g.config), load_rates(g.rates), load_hotlist(g.hotlist))


def stages(monkeypatch: Any) -> list[str]:
    """Names of the functions the scan forked processes for, in order."""
    seen: list[str] = []
    fork_all = parallel_module._fork_all

    def spy(target: Any, calls: Any, here: bool = False) -> Any:
        seen.append(target.__name__)
        return fork_all(target, calls, here)

    monkeypatch.setattr(parallel_module, "_fork_all", spy)
    return seen


def parallel(paths: list[Path], engine: Any, jobs: int) -> ScanResult:
    """scan_parallel, else (rows across lines) the one-process scan, as `scan` does."""
    done = scan_parallel(paths, engine, 86400.0, jobs)
    return scan(paths, engine) if done is None else done


@pytest.mark.parametrize("jobs", [2, 3])
def test_generated_fraud_report_is_the_same(
    fraud_set: Generated, jobs: int, monkeypatch: Any
) -> None:
    seen = stages(monkeypatch)
    one = scan([fraud_set.cdr], gen_engine(fraud_set))
    assert len(one.incidents) >= 9 and one.calls > 1000  # a report worth comparing
    engine = gen_engine(fraud_set)
    many = parallel([fraud_set.cdr], engine, jobs)
    assert report(many) == report(one)
    assert engine.calls_seen == one.calls
    assert not engine.accounts  # the accounts were checked in the child processes
    assert seen == ["_parse_part", "_check_part"]  # ranges parsed apart, no fallback


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_damaged_rows_in_several_files_give_the_same_report(tmp_path: Path, seed: int) -> None:
    paths = [
        write_damaged(tmp_path / "a.csv", seed, 900),
        write_damaged(tmp_path / "b.csv", seed + 100, 700, tail="1,2"),  # no final newline
        write_damaged(tmp_path / "c.csv", seed + 200, 3),  # fewer rows than processes
    ]
    one = scan(paths, small_engine())
    assert sum(one.errors.values()) > 50 and len(one.errors) >= 4
    assert any(":" in c for i in one.incidents for c in i.calls if c.startswith(str(tmp_path)))
    for jobs in (2, 3):
        assert report(parallel(paths, small_engine(), jobs)) == report(one)


@pytest.mark.parametrize("block", [64, 1000, 4096])
def test_blocks_smaller_than_rows_and_ranges(tmp_path: Path, block: int, monkeypatch: Any) -> None:
    """Lines cut by the block size carry over to the next block (a 64-byte block is shorter
    than every row, and the csv.Error row is longer than 4 KiB): the same report."""
    monkeypatch.setattr(split_module, "BLOCK", block)
    seen = stages(monkeypatch)
    path = write_damaged(tmp_path / "a.csv", 4, 1200)
    one = scan([path], small_engine())
    assert sum(one.errors.values()) > 50 and one.calls > 100
    assert report(parallel([path], small_engine(), 2)) == report(one)
    assert seen == ["_parse_part", "_check_part"]  # parsed in ranges, no fallback


def test_with_a_baseline(tmp_path: Path) -> None:
    path = write_damaged(tmp_path / "a.csv", 5, 1500)
    baseline = {"1001": ["GB"], "1002": ["GB", "FR"]}
    one = scan([path], small_engine(baseline))
    assert report(parallel([path], small_engine(baseline), 2)) == report(one)
    assert report(one) != report(scan([path], small_engine()))  # the baseline matters here


@pytest.mark.parametrize(
    "odd", ['x,"two\nlines",y\n', "\r\n", "a,b\rc\n"], ids=["quoted-newline", "crlf", "cr"]
)
def test_rows_across_lines_or_cr_fall_back_and_agree(
    tmp_path: Path, odd: str, monkeypatch: Any
) -> None:
    """Byte ranges cannot be parsed apart: one process scans instead (the same loop)."""
    seen = stages(monkeypatch)
    path = write_damaged(tmp_path / "a.csv", 9, 1200)
    text = path.read_text(encoding="utf-8")
    cut = text.index("\n", len(text) // 3) + 1
    path.write_text(text[:cut] + odd + text[cut:], encoding="utf-8")
    one = scan([path], small_engine())
    assert report(parallel([path], small_engine(), 2)) == report(one)
    assert seen == ["_parse_part"]  # stage 1 found the odd row; no part checked calls
    assert scan_parallel([path], small_engine(), 86400.0, 2) is None


def test_ranges_start_at_lines(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("".join(f"{i},{'x' * (i % 37)}\n" for i in range(300)), encoding="utf-8")
    data = path.read_bytes()
    cuts = ranges_of(path, 4)
    assert cuts[0] == 0 and cuts[-1] == len(data) and cuts == sorted(cuts)
    assert all(c == 0 or c == len(data) or data[c - 1 : c] == b"\n" for c in cuts)
    assert len({c for c in cuts}) == 5  # 300 lines: no empty range


def test_small_inputs_stay_in_one_process(tmp_path: Path) -> None:
    path = write_damaged(tmp_path / "a.csv", 6, 200)
    engine = small_engine()
    scan([path], engine, jobs=4)
    assert engine.accounts  # the state is here: nothing was forked


def test_cli_jobs(tmp_path: Path, fraud_set: Generated, monkeypatch: Any, capsys: Any) -> None:
    args = ["fraud", "scan", str(fraud_set.cdr), "--format", "json", "--config"]
    args += [str(fraud_set.config), "--rates", str(fraud_set.rates)]
    args += ["--hotlist", str(fraud_set.hotlist)]
    scan_module = importlib.import_module("sipguard.fraud.scan")  # the package exports scan()
    monkeypatch.setattr(scan_module, "PARALLEL_MIN_BYTES", 0)
    outs = []
    for jobs in ("1", "2"):
        assert main([*args, "--jobs", jobs]) == 1  # alerts found
        outs.append(capsys.readouterr().out)
    assert outs[0] == outs[1] and '"alerts"' in outs[0]
    assert main([*args, "--jobs", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--jobs" in err and len(err.splitlines()) == 1


def test_custom_layout_with_header_rows(tmp_path: Path) -> None:
    """A header row only at the top of each file, never at the top of a later range; no
    duration column, so the end comes from its own date (sometimes malformed)."""
    config = build_config(
        {
            "home_country": "DE",
            "national_prefix": "0",
            "international_prefixes": ["00"],
            "rules": {"velocity": {"max_calls": 3, "window": 300}, "short_burst": {"min_calls": 3}},
            "cdr": {
                "columns": [
                    "uniqueid",
                    "start",
                    "end",
                    "channel",
                    "dst",
                    "billsec",
                    "ip",
                    "ignore",
                ],
                "header": True,
            },
        }
    )
    rng = random.Random(3)
    paths = []
    for name in ("x.csv", "y.csv"):
        lines = ["uniqueid,start,end,channel,dst,billsec,ip,note\n"]
        t = 0
        for i in range(800):
            t += rng.choice([2, 30, 200])
            when = f"2026-11-12 {t // 3600 % 24:02d}:{t // 60 % 60:02d}:{t % 60:02d}"
            end = rng.choice([when, when, "2026-11-12 99:00:00"])
            uid = rng.choice([f"u{name}{i}", ""])
            chan = rng.choice(CHANNELS)
            dst, ip = rng.choice(DSTS), rng.choice(["", "81.2.69.160"])
            lines.append(f"{uid},{when},{end},{chan},{dst},{rng.choice([0, 3, 90])},{ip},n\n")
        paths.append(tmp_path / name)
        paths[-1].write_text("".join(lines), encoding="utf-8")
    one = scan(paths, build_engine(config))
    assert one.rows == 1602 and not one.errors and len(one.incidents) > 3
    for jobs in (2, 3):
        assert report(parallel(paths, build_engine(config), jobs)) == report(one)
