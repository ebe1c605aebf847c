"""Fraud intelligence over the fleet: destination number ranges that raised a fraud alert here
are published; ranges other nodes published become hotlist entries of the local fraud rules.

    FraudComponent.on_alert (risky destination, E.164 number) --number_range--> publish_range
    FleetRuntime.on_range (prefix, "fleet:<node>") --> FraudEngine.add_hotlist

The range is the dialled E.164 number cut to its first RANGE_DIGITS digits (country code
included): deep enough to stay inside one operator's premium block, short enough to catch the
neighbouring numbers a fraud campaign rotates through. The rate table's prefixes are not used:
they are often just a country code, which would hotlist a whole country on every node.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sipguard.daemon.fleet import FleetRuntime
from sipguard.daemon.fraud import FraudComponent
from sipguard.fraud.stage import FraudAlert

RANGE_DIGITS = 8
MIN_DIGITS = 4  # a shorter range would cover a whole country's numbering: not shared
RANGE_TTL = 7 * 86400.0  # how long other nodes keep a shared range
MAX_SENT = 10_000  # ranges remembered as published (a flood of distinct ranges stays bounded)


def number_range(e164: str) -> str:
    """The shared range of an E.164 number: its first RANGE_DIGITS digits, at least two digits
    short of the whole number; "" when that leaves fewer than MIN_DIGITS."""
    digits = e164.lstrip("+")
    if not digits.isdigit():
        return ""
    prefix = digits[: min(RANGE_DIGITS, len(digits) - 2)]
    return prefix if len(prefix) >= MIN_DIGITS else ""


class RangeShare:
    """Connects one daemon's fraud component (which a reload may replace) to its fleet."""

    def __init__(self, fleet: FleetRuntime, fraud: Callable[[], FraudComponent | None]) -> None:
        self.fleet = fleet
        self.fraud = fraud
        self.sent: dict[str, float] = {}  # prefix -> when to publish it again
        fleet.on_range = self.received

    def link(self) -> None:
        """The fraud component is new or has a new engine: alerts flow out again, and the
        ranges the fleet holds (unexpired) are its hotlist entries again."""
        fraud = self.fraud()
        if fraud is None:
            return
        fraud.on_alert = self.alert
        for prefix, label in self.fleet.hotlist(time.time()).items():
            fraud.stage.engine.add_hotlist(prefix, label)

    def alert(self, fa: FraudAlert) -> None:
        prefix = number_range(fa.dest) if fa.dest else ""
        if not prefix or prefix in self.fleet.ranges:
            return  # not destination-based, too short, or the fleet's own range: no echo
        now = time.time()
        if self.sent.get(prefix, 0.0) > now:
            return
        if len(self.sent) >= MAX_SENT:
            self.sent.clear()
        self.sent[prefix] = now + RANGE_TTL / 2  # refreshed before the other nodes forget it
        self.fleet.publish_range(prefix, f"fleet:{self.fleet.cfg.node}", now + RANGE_TTL)

    def received(self, prefix: str, label: str) -> None:
        fraud = self.fraud()
        if fraud is not None:
            fraud.stage.engine.add_hotlist(prefix, label or "fleet")
