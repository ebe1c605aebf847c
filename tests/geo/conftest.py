"""The `geoip` fixture: writes the test's City and ASN databases (geodbs.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from geodbs import PLACES, write_dbs


@pytest.fixture
def geoip(tmp_path: Path) -> Callable[..., tuple[Path, Path]]:
    pytest.importorskip("maxminddb")
    pytest.importorskip("mmdb_writer")
    return lambda places=PLACES: write_dbs(tmp_path / "GeoIP", places)
