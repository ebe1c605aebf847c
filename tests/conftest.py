"""Shared fixtures. Network-namespace tests need root; in CI (SIPGUARD_REQUIRE_NETNS=1) a missing
capability is a failure, not a skip, so a green CI always means the real kernel path ran."""

from __future__ import annotations

import os
from collections.abc import Iterator

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
