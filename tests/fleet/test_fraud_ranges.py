"""The shared range of a dialled number (daemon/fraudranges.py). The wiring between two real
daemons and a real redis-server: test_fleet_daemons.py::test_fraud_range_from_one_node_..."""

from __future__ import annotations

import pytest

from sipguard.daemon.fraudranges import number_range


@pytest.mark.parametrize(
    ("e164", "prefix"),
    [
        ("+4990012345678", "49900123"),  # first 8 digits
        ("+88234567", "882345"),  # short number: two digits short of the whole
        ("+4912", ""),  # too short to name a range that is not a country
        ("", ""),
        ("+49a0012345678", ""),  # garbage is no range
    ],
)
def test_number_range(e164: str, prefix: str) -> None:
    assert number_range(e164) == prefix
