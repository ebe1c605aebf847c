"""`sipguard scan` runs with the cycle collector off (cli/scan.py): that is only sound while the
pipeline (normalizer, engine, policy, report, render) makes no reference cycles, so memory is
freed by reference counting alone. Any input: generated logs, lines the C normalizer leaves to
the Python parser, malformed lines, random bytes."""

from __future__ import annotations

import gc
import io
import random
import sys
from pathlib import Path

from sipguard.config.rules import load_rules
from sipguard.policy import AllowList, Policy
from sipguard.report.render import render
from sipguard.report.scan import Scanner

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from genlog import generate


def scan(chunks: list[bytes]) -> None:
    policy = Policy(allowlist=AllowList.from_strings(["2000::/3"]), simulate=True)
    scanner = Scanner(load_rules(), 2026, policy)
    scanner.feed_file_chunks("log", chunks)
    report = scanner.finish()
    for fmt in ("json", "csv", "text"):
        render(report, fmt, io.StringIO())


def inputs(tmp_path: Path) -> list[bytes]:
    log = tmp_path / "a.log"
    generate(log, tmp_path / "a.tsv", 8000, 5, 0.3, 500)
    data = log.read_bytes()
    r = random.Random(5)
    lines = data.split(b"\n")
    mutated = []
    for line in lines[:4000]:
        i = r.randrange(len(line) + 1)
        mutated.append(
            line[:i] + r.choice([b"\xc3\xa9", b"\x1b[2J", b"\xff", b"'", b"("]) + line[i:]
        )
    junk = bytes(r.getrandbits(8) for _ in range(200_000))
    return [data, b"\n".join(mutated), junk, data[: len(data) // 2]]


def test_no_cyclic_garbage(tmp_path: Path) -> None:
    cases = inputs(tmp_path)
    scan([cases[0]])  # imports and first-use set-up (classes, caches) out of the way
    collecting = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for data in cases:
            scan([data[i : i + 65536] for i in range(0, len(data), 65536)])
        assert gc.collect() == 0
    finally:
        if collecting:
            gc.enable()
