"""`sipguard scan`: plain, gz, stdin, rotated order, JSON/CSV shape, exit codes, hostile input."""

from __future__ import annotations

import csv
import gzip
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from sipguard.cli.main import main
from sipguard.cli.scan import rotation_order
from sipguard.report import scan as scan_mod
from sipguard.report.scan import ChunkSplitter

pytest.importorskip("sipguard.core.asterisk", reason="log normalizer not installed yet")

NOISE = (
    "[2026-11-22 01:33:59.596] Asterisk 20.20.1 built by root @ buildhost on a x86_64\n"
    "[2026-11-22 01:34:00.000] VERBOSE[1490] manager.c: Manager 'ami' logged on from 127.0.0.1\n"
)


def svcrack(ip: str = "127.0.0.1", n: int = 6, minute: int = 37) -> str:
    """PJSIP wrong passwords as svcrack leaves them (one Call-ID for all guesses)."""
    lines = []
    for i in range(n):
        lines.append(
            f"[2026-11-22 01:{minute}:0{i}.992] NOTICE[18562] res_pjsip/pjsip_distributor.c: "
            f"Request 'REGISTER' from '\"100{i}\" <sip:100{i}@10.0.0.1>' failed for '{ip}:5301' "
            "(callid: 1951665900) - Failed to authenticate\n"
        )
    return "".join(lines)


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    code = main(["scan", "--format", "json", "--year", "2026", *args])
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_attack_found_json_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "messages"
    log.write_text(
        NOISE + svcrack() + svcrack("2001:db8:1:2::7", 2, 38) + svcrack("2001:db8:1:2::8", 4, 38)
    )
    code, report = run_json(capsys, str(log))
    assert code == 1
    assert {"attackers", "accounts", "stats", "timeline"} <= set(report)
    by_ip = {a["ip"]: a for a in report["attackers"]}
    assert set(by_ip) == {"127.0.0.1", "2001:db8:1:2::/64"}
    a = by_ip["127.0.0.1"]
    assert a["events"] == 6 and a["kinds"] == {"wrong_password": 6}
    assert a["accounts"][:2] == ["1000", "1001"] and len(a["accounts"]) == 6
    d = a["decision"]
    assert d["action"] == "ban" and d["simulated"] is True  # scan shows the decision, simulated
    assert d["duration"] == 600 and d["network"] == "127.0.0.1/32"
    # six accounts in six seconds: enumeration and guessing fire on the same (5th) event;
    # the second alert finds the ban running and does not escalate
    assert d["rule"] == "extension-enumeration" and d["level"] == 0
    assert a["rules"] == ["extension-enumeration", "password-guessing"]
    v6 = by_ip["2001:db8:1:2::/64"]
    assert sorted(v6["addresses"]) == ["2001:db8:1:2::7", "2001:db8:1:2::8"]
    assert report["stats"]["normalizer"]["lines"] == 2 + 12
    assert sum(m["total"] for m in report["timeline"]) == 12
    assert {m["minute"] % 60 for m in report["timeline"]} == {0}
    assert any(
        acc["account"] == "1000" and acc["distinct_sources"] == 2 for acc in report["accounts"]
    )


def test_no_attack_exit_zero_and_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "messages"
    log.write_text(NOISE + svcrack("10.0.0.9", 2))
    assert main(["scan", "--year", "2026", str(log)]) == 0
    out = capsys.readouterr().out
    assert "No attacker crossed a rule threshold" in out


def test_gz_equals_plain_and_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = NOISE + svcrack()
    plain = tmp_path / "messages"
    plain.write_text(text)
    packed = tmp_path / "old-log"  # gzip found by its magic bytes, not the name
    packed.write_bytes(gzip.compress(text.encode()))
    _, a = run_json(capsys, str(plain))
    _, b = run_json(capsys, str(packed))
    assert a["attackers"] == [
        {**x, "lines": [ln.replace(str(packed), str(plain)) for ln in x["lines"]]}
        for x in b["attackers"]
    ]
    assert main(["scan", "--format", "csv", "--year", "2026", str(packed)]) == 1
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows[0]["ip"] == "127.0.0.1" and rows[0]["action"] == "ban" and rows[0]["ban"] == "10m"
    assert rows[0]["simulated"] == "yes"


def test_rotated_set_read_oldest_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    names = ["messages", "messages.1", "messages.2.gz", "messages.10.gz", "security", "security.1"]
    assert [Path(p).name for p in rotation_order([str(tmp_path / n) for n in names])] == [
        "messages.10.gz",
        "messages.2.gz",
        "messages.1",
        "messages",
        "security.1",
        "security",
    ]
    assert rotation_order(["m-20261122", "m-20261101", "m"]) == ["m-20261101", "m-20261122", "m"]
    # three guesses in each of three rotated files: only in time order do they cross together
    (tmp_path / "messages.2.gz").write_bytes(gzip.compress(svcrack(n=2, minute=30).encode()))
    (tmp_path / "messages.1").write_text(svcrack(n=2, minute=31))
    (tmp_path / "messages").write_text(svcrack(n=2, minute=32))
    _, report = run_json(
        capsys, *(str(tmp_path / n) for n in ("messages", "messages.1", "messages.2.gz"))
    )
    assert [Path(f).name for f in report["stats"]["files"]] == [
        "messages.2.gz",
        "messages.1",
        "messages",
    ]
    a = report["attackers"][0] if report["attackers"] else report["below_threshold"][0]
    assert a["events"] == 6 and a["first_seen"] < a["last_seen"]


def test_stdin_and_exit_codes_in_a_real_process(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "sipguard", "scan", "--year", "2026", "--format", "json", "-"]
    done = subprocess.run(cmd, input=(NOISE + svcrack()).encode(), capture_output=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["attackers"][0]["ip"] == "127.0.0.1"
    missing = tmp_path / "nope.log"
    done = subprocess.run([*cmd[:-1], str(missing)], capture_output=True, timeout=60)
    assert done.returncode == 2 and done.stdout == b""
    assert done.stderr.decode() == f"sipguard: error: {missing}: No such file or directory\n"


def test_unreadable_and_bad_rules_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad_gz = tmp_path / "broken.gz"
    bad_gz.write_bytes(gzip.compress(svcrack().encode())[:40])
    assert main(["scan", str(bad_gz)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sipguard: error: {bad_gz}: cannot read") and err.count("\n") == 1
    rules = tmp_path / "rules" / "x"
    rules.mkdir(parents=True)
    (rules / "rule.toml").write_text('id = "x"\n')
    assert main(["scan", "--rules", str(tmp_path / "rules"), str(bad_gz)]) == 2
    err = capsys.readouterr().err
    assert f"{rules}/rule.toml" in err and err.count("\n") == 1


def test_garbage_binary_and_huge_line_are_counted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.log"
    with junk.open("wb") as f:
        f.write(bytes(b for b in range(256) if b != 10) * 64 + b"\n")
        f.write(b"A" * (1024 * 1024) + b" failed for '6.6.6.6:5060' - Wrong password\n")
        head = "[2026-11-22 01:37:07] NOTICE[1] chan_sip.c: Registration from "
        f.write(f"{head}'Jos\xe9' failed for\n".encode("latin-1"))  # latin-1, truncated
        f.write(f"{head}'\"x\" <sip:x@y>' failed for '".encode())  # cut mid-line
        f.write(svcrack().encode())
        f.write(b"\x00\xff" * 1000)  # no newline at the end
    code, report = run_json(capsys, str(junk))
    norm = report["stats"]["normalizer"]
    assert norm["lines"] == 10
    assert norm.get("binary", 0) + norm.get("too_long", 0) + norm.get("malformed", 0) >= 2
    assert code == 1 and report["attackers"][0]["ip"] == "127.0.0.1"
    assert all(a["ip"] != "6.6.6.6" for a in report["attackers"] + report["below_threshold"])


def test_chunk_splitter_whole_lines_and_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    s = ChunkSplitter()
    pieces = list(s.feed(b"a\nb")) + list(s.feed(b"c\nd\n")) + list(s.feed(b"e")) + list(s.flush())
    assert pieces == [(b"a\n", 1), (b"bc\nd\n", 2), (b"e\n", 4)]
    monkeypatch.setattr(scan_mod, "MAX_CARRY", 10)
    s = ChunkSplitter()
    assert list(s.feed(b"x" * 8)) == []
    assert list(s.feed(b"y" * 8)) == [(b"x" * 8 + b"y" * 8 + b"\n", 1)]
    assert s.cut_lines == 1 and s.carry == b""


def test_allow_list_reports_allowed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "messages"
    log.write_text(svcrack() + svcrack("10.1.2.3"))
    code, report = run_json(capsys, "--allow", "127.0.0.0/8", str(log))
    actions = {a["ip"]: a["decision"]["action"] for a in report["attackers"]}
    assert actions == {"127.0.0.1": "allowed", "10.1.2.3": "ban"} and code == 1
    simulated = {a["ip"]: a["decision"]["simulated"] for a in report["attackers"]}
    assert simulated == {"127.0.0.1": False, "10.1.2.3": True}
    assert main(["scan", "--allow", "nonsense", str(log)]) == 2
    assert "--allow[0]: not an address or network" in capsys.readouterr().err


def test_text_output_never_passes_terminal_escapes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "messages"
    evil = svcrack().replace('"1000"', '"\x1b]0;pwned\x07\x1b[2J"')
    log.write_text(evil)
    assert main(["scan", "--year", "2026", str(log)]) == 1
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b]0;pwned" in out


def test_json_is_written_piecewise_with_the_same_text() -> None:
    """render() writes the JSON report one attacker at a time: the text must be exactly what
    json.dumps(report.to_dict(), indent=2) gives, for a full report and for an empty one."""
    from sipguard.config.rules import load_rules
    from sipguard.report.render import render
    from sipguard.report.scan import Scanner

    text = NOISE + svcrack() + svcrack("2001:db8:1:2::7", 2, 38) + svcrack("192.0.2.9", 1, 39)
    for data in (text.encode(), b""):
        scanner = Scanner(load_rules(None), 2026)
        scanner.feed_file_chunks("messages", [data])
        report = scanner.finish()
        out = io.StringIO()
        render(report, "json", out)
        assert out.getvalue() == json.dumps(report.to_dict(), indent=2) + "\n"
        if data:
            assert report.attackers() and report.below_threshold()


def test_ipv4_attackers_share_no_address_state(tmp_path: Path) -> None:
    """IPv4 attackers list themselves as their address; only /64 attackers collect addresses."""
    from sipguard.config.rules import load_rules
    from sipguard.report.scan import Scanner

    scanner = Scanner(load_rules(None), 2026)
    text = svcrack("192.0.2.9", 2) + svcrack("192.0.2.10", 2) + svcrack("2001:db8:9::1", 2, 38)
    scanner.feed_file_chunks("messages", [text.encode()])
    report = scanner.finish()
    v4, v4b, v6 = (report.sources[k] for k in ("192.0.2.9", "192.0.2.10", "2001:db8:9::/64"))
    assert v4.to_dict()["addresses"] == ["192.0.2.9"] and not v4.addresses and not v4b.addresses
    assert v6.to_dict()["addresses"] == ["2001:db8:9::1"]
    assert v4.to_dict()["services"] == ["pjsip"]


def test_input_that_is_not_an_asterisk_log_is_an_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 200)  # binary, with some newlines in it
    other = tmp_path / "auth.log"
    other.write_text("Dec  6 10:00:00 host sshd[1]: Failed password for root from 6.6.6.6\n" * 50)
    empty = tmp_path / "messages"
    empty.touch()
    for path, what in ((junk, " of them binary"), (other, "50 lines")):
        cmd = [sys.executable, "-m", "sipguard", "scan", str(path)]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert res.returncode == 2 and res.stdout == ""
        assert res.stderr.startswith(f"sipguard: error: {path}: nothing in it reads as an Asterisk")
        assert what in res.stderr and res.stderr.count("\n") == 1
    # a freshly rotated (empty) log, or a real one without attacks, stays a clean report
    res = subprocess.run(
        [sys.executable, "-m", "sipguard", "scan", str(empty)], capture_output=True, timeout=60
    )
    assert res.returncode == 0
    log = tmp_path / "quiet"
    log.write_text(NOISE)
    res = subprocess.run(
        [sys.executable, "-m", "sipguard", "scan", str(log)], capture_output=True, timeout=60
    )
    assert res.returncode == 0


def test_text_shows_the_simulated_ban_and_multi_line_reasons(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sipguard.report.text import reason_lines

    log = tmp_path / "messages"
    log.write_text(svcrack())
    assert main(["scan", "--year", "2026", str(log)]) == 1
    out = capsys.readouterr().out
    assert "ban 10m (simulated)" in out and "simulate " not in out and "\\x0a" not in out
    # a reason of several lines prints as lines; control characters within them stay escaped
    assert reason_lines("5 wrong passwords\r\nlast: \x1b[2J") == [
        "5 wrong passwords",
        "last: \\x1b[2J",
    ]


def test_text_fits_an_80_column_terminal_and_wraps(tmp_path: Path) -> None:
    """Over SSH: a pty of 80 columns; every line fits, long values wrap instead of being cut."""
    import os
    import re

    log = tmp_path / "messages"
    long_v6 = "2001:db8:1234:5678:9abc:def0:1234:5678"
    log.write_text(NOISE + svcrack() + svcrack(long_v6, 6, 38))
    env = {**os.environ, "LINES": "40", "TERM": "xterm"}
    env.pop("COLUMNS", None)
    cmd = f"stty cols 80; {sys.executable} -m sipguard scan --year 2026 --no-progress {log}"
    res = subprocess.run(
        ["script", "-qec", cmd, "/dev/null"], capture_output=True, text=True, env=env, timeout=60
    )
    lines = re.sub(r"\x1b\[[0-9;]*m", "", res.stdout).replace("\r", "").splitlines()
    assert max(len(line) for line in lines) <= 80, max(lines, key=len)
    text = "\n".join(lines)
    assert "…" not in text and "2001:db8:1234:5678::/64  ban 10m (simulated) by " in text
    assert "1000, 1001, 1002, 1003, 1004, 1005" in text
    # a pipe gets whole lines (160 columns), JSON is unchanged by any width
    piped = subprocess.run(
        [sys.executable, "-m", "sipguard", "scan", "--year", "2026", str(log)],
        capture_output=True,
        text=True,
        env={k: v for k, v in env.items() if k != "COLUMNS"},
        timeout=60,
    )
    assert max(len(line) for line in piped.stdout.splitlines()) > 80
    assert "┃ source" in piped.stdout
    narrow_json = subprocess.run(
        [sys.executable, "-m", "sipguard", "scan", "--year", "2026", "--format", "json", str(log)],
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "80"},
        timeout=60,
    )
    wide_json = subprocess.run(
        [sys.executable, "-m", "sipguard", "scan", "--year", "2026", "--format", "json", str(log)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert narrow_json.stdout == wide_json.stdout and json.loads(wide_json.stdout)["attackers"]
