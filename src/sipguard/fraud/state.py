"""What the fraud edge keeps per account and per destination (plain data, no logic).

The detectors' own state lives in their rule kinds (`detect/fraudcounts.py`,
`detect/fraudkinds.py`); the edge keeps only what it needs to drive them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sipguard.fraud.classify import Destination
from sipguard.fraud.model import Call


@dataclass(slots=True)
class AccountState:
    last: float = 0.0  # the latest call start: idle accounts expire
    active: dict[str, Call] = field(default_factory=dict)  # live calls (channels, answers)


@dataclass(frozen=True, slots=True)
class DestInfo:
    """Everything the rules need to know about one dialled string, computed once."""

    dest: Destination
    rate: float  # cost per minute
    after_hours: bool  # in the after-hours rule's scopes
    risky: str  # why the destination itself is risky, "" if it is not
    range_key: str  # the number range, for short-call bursts
    external: bool  # national or international: the calls the rules look at
    country: str  # the country of an international destination, "" otherwise
    special: bool  # risky or in the after-hours scopes
