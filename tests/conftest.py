"""Shared fixtures. Network-namespace tests need root; in CI (SIPGUARD_REQUIRE_NETNS=1) a missing
capability is a failure, not a skip, so a green CI always means the real kernel path ran."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sipguard.testing.netns import NetLab, netns_available


@pytest.fixture
def netlab() -> Iterator[NetLab]:
    if not netns_available():
        if os.environ.get("SIPGUARD_REQUIRE_NETNS") == "1":
            pytest.fail("network namespaces are required (root, iproute2) but unavailable")
        pytest.skip("needs root and network namespaces")
    with NetLab() as lab:
        yield lab


@pytest.fixture(scope="session")
def genlog(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., bytes]:
    """bench/genlog.py's seeded Asterisk logs (the benchmark's generator), made once per session:
    genlog(lines, seed, share=0.05, sources=0, slow=0) -> the log's bytes (slow: low-and-slow
    attackers from genlog.SLOW_NET and as many mistyping phones from genlog.PHONE_NET)."""
    bench = str(Path(__file__).resolve().parents[1] / "bench")
    sys.path.insert(0, bench)
    try:
        from genlog import generate
    finally:
        sys.path.remove(bench)
    out = tmp_path_factory.mktemp("genlog")
    made: dict[tuple[int, int, float, int, int], bytes] = {}

    def make(lines: int, seed: int, share: float = 0.05, sources: int = 0, slow: int = 0) -> bytes:
        key = (lines, seed, share, sources, slow)
        if key not in made:
            log = out / "-".join(map(str, key))
            generate(log, log.with_suffix(".tsv"), lines, seed, share, sources, slow)
            made[key] = log.read_bytes()
        return made[key]

    return make
