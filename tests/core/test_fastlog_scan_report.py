"""`sipguard scan`'s whole report is the same with the C normalizer as with the Python one.

The normalizer equivalence tests compare events; this compares what an operator reads (JSON, CSV,
text) after the engine, policy and report ran on them, on generated logs fed in reads of odd sizes.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from sipguard.config.rules import load_rules
from sipguard.core.asterisk import LogNormalizer, fast
from sipguard.policy import Policy
from sipguard.report.render import render
from sipguard.report.scan import Scanner

ROOT = Path(__file__).resolve().parents[2]

if not fast.available():
    if os.environ.get("SIPGUARD_REQUIRE_NATIVE") == "1":
        raise RuntimeError(f"the C normalizer is required here but: {fast.load_error()}")
    pytest.skip(f"C normalizer not built: {fast.load_error()}", allow_module_level=True)


def _reports(data: bytes, normalizer: object, read: int) -> dict[str, str]:
    scanner = Scanner(load_rules(None), 2026, Policy(simulate=True), normalizer=normalizer)
    reads = (data[i : i + read] for i in range(0, len(data), read))
    scanner.feed_file_chunks("messages", reads)
    report = scanner.finish()
    out = {}
    for fmt in ("json", "csv", "text"):
        buf = io.StringIO()
        render(report, fmt, buf)
        out[fmt] = buf.getvalue()
    return out


@pytest.mark.parametrize(
    ("seed", "share", "sources", "read"),
    [(5, 0.05, 0, 65536), (6, 0.3, 2000, 7777), (7, 0.6, 0, 1 << 20)],
)
def test_scan_report_is_the_same(
    genlog: Callable[..., bytes], seed: int, share: float, sources: int, read: int
) -> None:
    data = genlog(20_000, seed, share, sources)
    py = _reports(data, LogNormalizer(default_year=2026), read)
    c = _reports(data, fast.FastNormalizer(2026), read)
    assert '"attackers"' in py["json"] and py["json"].count('"ip"') > 5  # a real report
    for fmt in py:
        assert py[fmt] == c[fmt], fmt
