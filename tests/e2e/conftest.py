"""Fixtures of the end-to-end tests: a real Asterisk 20 when one can run here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sipguard.testing.asterisk import AsteriskUnavailable, unpack


@pytest.fixture(scope="session")
def asterisk_prefix() -> Path:
    """The unpacked Asterisk 20.20.1 (`<repo>/../shared/asterisk/unpack`), or a skip saying why.

    Where the build is present but cannot be unpacked or run and CI requires the real kernel
    path (SIPGUARD_REQUIRE_NETNS=1), that is a failure, not a skip."""
    try:
        return unpack()
    except AsteriskUnavailable as exc:
        absent = "is absent" in str(exc)
        if os.environ.get("SIPGUARD_REQUIRE_NETNS") == "1" and not absent:
            pytest.fail(f"a real Asterisk is required here: {exc}")
        pytest.skip(f"no real Asterisk: {exc}")
